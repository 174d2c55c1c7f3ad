"""Synthetic multi-tenant corpora: vectors, text, exact ground truth and a fast bulk loader.

Shared by `bench/search.py` and `tests/integration/test_search_recall.py` (which imports this
file by path). numpy is needed; the database side (`load`) needs SQLAlchemy + pg8000 and the
ragline schema, and is imported lazily so `bench/peer_langchain.py` can use the rest from its
own virtualenv.

Vectors are a mixture of gaussian clusters, L2-normalised, three levels deep like real chunk
embeddings: topic centres (shared by all orgs) → document centres → chunks. Chunks of one
document sit close together, so the exact top-10 of a query is well separated from the rest
and recall measures the search, not floating-point ties. Queries are perturbed members.

Text is made of pseudo-words (consonant-vowel syllables, so no stop words and no stemming
surprises): words of the document, of its topic and general filler. A text query is two words
of its source chunk's document plus one of its topic, so full text can find it.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

DIM = 384
#: `chunk.embedding_model` of every synthetic chunk: searches must use an embedder of this name.
SYNTHETIC_MODEL = "synthetic-gauss-384"
CHUNKS_PER_DOC = 10
TOPICS = 256
#: Spread of a document around its topic and of a chunk around its document (noise norm).
DOC_SPREAD = 0.6
CHUNK_SPREAD = 1.0
QUERY_SPREAD = 0.4
VOCABULARY = 6000
DOC_WORDS = 8
TOPIC_WORDS = 40
#: Rate limits of synthetic orgs: the HTTP bench sends hundreds of searches a minute.
ORG_SETTINGS = {"rate_limits": {"crud": 1_000_000, "agent": 1_000_000}}

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class OrgData:
    """One org of a corpus: its rows are `start .. start + size` of the corpus arrays."""

    slug: str
    org_id: uuid.UUID
    start: int
    size: int

    @property
    def rows(self) -> slice:
        return slice(self.start, self.start + self.size)


@dataclass(frozen=True)
class Queries:
    """Planned queries of one org: vectors, the row each was perturbed from, and text."""

    org: OrgData
    vectors: Floats
    sources: list[int]
    texts: list[str]


@dataclass
class Corpus:
    """Rows are grouped by org (org after org) and, inside an org, by document."""

    orgs: list[OrgData]
    vectors: Floats
    chunk_ids: list[uuid.UUID]
    doc_of_chunk: npt.NDArray[np.int64]
    ords: npt.NDArray[np.int64]
    texts: list[str]
    doc_ids: list[uuid.UUID]
    doc_org: list[int]
    doc_topic: list[int]
    doc_words: list[list[str]]
    topic_words: list[list[str]]
    model: str = SYNTHETIC_MODEL
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def org(self, slug: str) -> OrgData:
        return next(o for o in self.orgs if o.slug == slug)

    def describe(self) -> dict[str, Any]:
        """What the data is, for the bench output."""
        return {
            "vectors": (
                f"synthetic {DIM}-d: mixture of gaussian clusters ({TOPICS} topics shared by "
                f"all orgs → documents of {CHUNKS_PER_DOC} chunks → chunks), L2-normalised; "
                "queries are perturbed members of the org"
            ),
            "text": "pseudo-words: document words + topic words + filler",
            "model": self.model,
            "seed": self.seed,
            "rows": len(self),
        }


def _unit(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = rows / np.linalg.norm(rows, axis=-1, keepdims=True)
    return out


def _noise(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Gaussian noise of norm ≈ 1 per row."""
    out: npt.NDArray[np.float64] = rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    return out


def vocabulary(size: int = VOCABULARY, seed: int = 7) -> list[str]:
    """`size` distinct pseudo-words of three or four consonant-vowel syllables."""
    rng = np.random.default_rng(seed)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < size:
        n = 3 + int(rng.integers(0, 2))
        word = "".join(syllables[int(i)] for i in rng.integers(0, len(syllables), n))
        if word not in words:
            words.add(word)
            ordered.append(word)
    return ordered


def make_corpus(
    sizes: Sequence[int],
    *,
    seed: int = 0,
    slug_prefix: str = "syn",
    model: str = SYNTHETIC_MODEL,
    words_per_chunk: int = 24,
) -> Corpus:
    """Orgs of the given chunk counts, named `<prefix>-<index>-<size>`."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary()
    topics = _unit(rng.standard_normal((TOPICS, DIM)))
    topic_words = [
        [vocab[int(i)] for i in rng.choice(len(vocab), TOPIC_WORDS, replace=False)]
        for _ in range(TOPICS)
    ]
    orgs: list[OrgData] = []
    vectors: list[npt.NDArray[np.float64]] = []
    doc_of_chunk: list[npt.NDArray[np.int64]] = []
    ords: list[npt.NDArray[np.int64]] = []
    doc_org: list[int] = []
    doc_topic: list[int] = []
    doc_words: list[list[str]] = []
    start = 0
    for index, size in enumerate(sizes):
        if size < 1:
            raise ValueError("org sizes must be positive")
        orgs.append(OrgData(f"{slug_prefix}-{index}-{size}", _uuid(rng), start, size))
        n_docs = -(-size // CHUNKS_PER_DOC)
        # An org covers a few topics (more when it is larger), drawn from the shared pool.
        own_topics = rng.choice(TOPICS, min(TOPICS, max(1, size // 400)), replace=False)
        topic_of_doc = own_topics[rng.integers(0, len(own_topics), n_docs)]
        doc_centres = _unit(topics[topic_of_doc] + DOC_SPREAD * _noise(rng, n_docs))
        first_doc = len(doc_org)
        local_doc = np.arange(size) // CHUNKS_PER_DOC
        vectors.append(_unit(doc_centres[local_doc] + CHUNK_SPREAD * _noise(rng, size)))
        doc_of_chunk.append(first_doc + local_doc)
        ords.append(np.arange(size) % CHUNKS_PER_DOC)
        for topic in topic_of_doc:
            doc_org.append(index)
            doc_topic.append(int(topic))
            doc_words.append([vocab[int(i)] for i in rng.integers(0, len(vocab), DOC_WORDS)])
        start += size
    all_docs = np.concatenate(doc_of_chunk)
    texts = _texts(rng, vocab, all_docs, doc_topic, doc_words, topic_words, words_per_chunk)
    return Corpus(
        orgs=orgs,
        vectors=np.concatenate(vectors).astype(np.float32),
        chunk_ids=_uuids(rng, start),
        doc_of_chunk=all_docs,
        ords=np.concatenate(ords),
        texts=texts,
        doc_ids=_uuids(rng, len(doc_org)),
        doc_org=doc_org,
        doc_topic=doc_topic,
        doc_words=doc_words,
        topic_words=topic_words,
        model=model,
        seed=seed,
    )


def _uuid(rng: np.random.Generator) -> uuid.UUID:
    return uuid.UUID(bytes=rng.bytes(16), version=4)


def _uuids(rng: np.random.Generator, n: int) -> list[uuid.UUID]:
    raw = rng.bytes(16 * n)
    return [uuid.UUID(bytes=raw[i : i + 16], version=4) for i in range(0, 16 * n, 16)]


def _texts(
    rng: np.random.Generator,
    vocab: list[str],
    doc_of_chunk: npt.NDArray[np.int64],
    doc_topic: list[int],
    doc_words: list[list[str]],
    topic_words: list[list[str]],
    words_per_chunk: int,
) -> list[str]:
    """Each chunk: a quarter document words, a third topic words, the rest filler."""
    n = len(doc_of_chunk)
    n_doc = max(2, words_per_chunk // 4)
    n_topic = max(1, words_per_chunk // 3)
    n_fill = max(0, words_per_chunk - n_doc - n_topic)
    index = {w: i for i, w in enumerate(vocab)}
    doc_vocab = np.array([[index[w] for w in ws] for ws in doc_words])
    topic_vocab = np.array([[index[w] for w in ws] for ws in topic_words])
    chunk_topic = np.asarray(doc_topic)[doc_of_chunk]
    picks = np.concatenate(
        [
            doc_vocab[doc_of_chunk[:, None], rng.integers(0, DOC_WORDS, (n, n_doc))],
            topic_vocab[chunk_topic[:, None], rng.integers(0, TOPIC_WORDS, (n, n_topic))],
            rng.integers(0, len(vocab), (n, n_fill)),
        ],
        axis=1,
    )
    # Shuffle the words of every chunk at once.
    picks = np.take_along_axis(picks, np.argsort(rng.random(picks.shape), axis=1), axis=1)
    return [" ".join([vocab[j] for j in row]).capitalize() + "." for row in picks.tolist()]


def make_queries(corpus: Corpus, org: OrgData, count: int, *, seed: int = 1) -> Queries:
    """`count` queries near random members of `org` (vector) and about them (text)."""
    rng = np.random.default_rng([seed, org.start, org.size])
    sources = [int(org.start + i) for i in rng.integers(0, org.size, count)]
    base = corpus.vectors[sources].astype(np.float64)
    vectors = _unit(base + QUERY_SPREAD * _noise(rng, count)).astype(np.float32)
    texts: list[str] = []
    for row in sources:
        words = corpus.texts[row].rstrip(".").lower().split()
        doc = int(corpus.doc_of_chunk[row])
        own = [w for w in dict.fromkeys(words) if w in corpus.doc_words[doc]]
        topical = [w for w in words if w in corpus.topic_words[corpus.doc_topic[doc]]]
        picked = list(rng.choice(own, min(2, len(own)), replace=False)) if own else []
        if topical:
            picked.append(str(rng.choice(topical)))
        texts.append(" ".join(picked) or words[0])
    return Queries(org, vectors, sources, texts)


def exact_top_k(corpus: Corpus, org: OrgData, vectors: Floats, k: int = 10) -> list[list[int]]:
    """Row numbers of the exact `k` nearest chunks of `org` by cosine, nearest first."""
    members = corpus.vectors[org.rows].astype(np.float64)
    sims = np.asarray(vectors, dtype=np.float64) @ members.T
    k = min(k, org.size)
    out: list[list[int]] = []
    for row in sims:
        part = np.argpartition(-row, k - 1)[:k]
        best = part[np.argsort(-row[part], kind="stable")]
        out.append([org.start + int(i) for i in best])
    return out


def recall(found: Iterable[uuid.UUID | str], truth: Sequence[uuid.UUID | str]) -> float:
    """|found ∩ truth| / |truth|."""
    want = {str(t) for t in truth}
    return len(want & {str(f) for f in found}) / len(want) if want else 1.0


# --------------------------------------------------------------------------- COPY BINARY

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
_NULL = struct.pack(">i", -1)


def _field(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def _int4(value: int) -> bytes:
    return b"\x00\x00\x00\x04" + struct.pack(">i", value)


def _vector(be_floats: bytes, dim: int = DIM) -> bytes:
    """pgvector's binary form: int16 dim, int16 unused, dim float4 values (network order)."""
    return _field(struct.pack(">hh", dim, 0) + be_floats)


def copy_tuples(rows: Iterable[Sequence[bytes]]) -> bytes:
    """COPY BINARY tuples of rows whose fields are already encoded (no header, no trailer)."""
    out = io.BytesIO()
    for fields in rows:
        out.write(struct.pack(">h", len(fields)))
        for f in fields:
            out.write(f)
    return out.getvalue()


def copy_binary(rows: Iterable[Sequence[bytes]]) -> bytes:
    """A whole COPY BINARY stream: header, tuples, trailer."""
    return COPY_HEADER + copy_tuples(rows) + COPY_TRAILER


def text_field(value: str | None) -> bytes:
    return _NULL if value is None else _field(value.encode())


def uuid_field(value: uuid.UUID) -> bytes:
    return _field(value.bytes)


def jsonb_field(value: Any) -> bytes:
    return _field(b"\x01" + json.dumps(value).encode())


def json_field(value: Any) -> bytes:
    return _field(json.dumps(value).encode())


def vector_fields(vectors: Floats) -> Iterator[bytes]:
    """One encoded `vector` field per row."""
    be = np.ascontiguousarray(vectors, dtype=">f4")
    dim = be.shape[1]
    for row in be:
        yield _vector(row.tobytes(), dim)


def chunk_order(corpus: Corpus, seed: int = 3) -> npt.NDArray[np.int64]:
    """Row order of the load: orgs interleaved, as when they ingest at the same time."""
    return np.random.default_rng(seed).permutation(len(corpus))


# --------------------------------------------------------------------------- ragline tables

DOCUMENT_COLUMNS = "id, org_id, title, kind, content, content_hash, metadata, status, chunk_count"
CHUNK_COLUMNS = "id, org_id, document_id, ord, text, token_count, embedding, embedding_model"
#: Indexes dropped during a bulk load and rebuilt after it (bulk build beats row inserts).
REBUILT_INDEXES = ("ix_chunk_embedding_hnsw", "ix_chunk_tsv", "ix_chunk_exact_scan")


def _document_rows(corpus: Corpus) -> Iterator[list[bytes]]:
    counts = np.bincount(corpus.doc_of_chunk, minlength=len(corpus.doc_ids))
    for d, doc_id in enumerate(corpus.doc_ids):
        org = corpus.orgs[corpus.doc_org[d]]
        title = f"Synthetic {org.slug} document {d}"
        yield [
            uuid_field(doc_id),
            uuid_field(org.org_id),
            text_field(title),
            text_field("synthetic"),
            text_field(" ".join(corpus.doc_words[d])),
            text_field(doc_id.hex),
            jsonb_field({"synthetic": True, "topic": corpus.doc_topic[d]}),
            text_field("ready"),
            _int4(int(counts[d])),
        ]


def _chunk_rows(corpus: Corpus, order: Sequence[int]) -> Iterator[list[bytes]]:
    vectors = vector_fields(corpus.vectors[np.asarray(order)])
    model = text_field(corpus.model)
    for i, vec in zip(order, vectors, strict=True):
        d = int(corpus.doc_of_chunk[i])
        org = corpus.orgs[corpus.doc_org[d]]
        text = corpus.texts[i]
        yield [
            uuid_field(corpus.chunk_ids[i]),
            uuid_field(org.org_id),
            uuid_field(corpus.doc_ids[d]),
            _int4(int(corpus.ords[i])),
            text_field(text),
            _int4(len(text.split())),
            vec,
            model,
        ]


def load(
    engine: Any,
    corpus: Corpus,
    *,
    batch_rows: int = 20_000,
    maintenance_work_mem: str = "1GB",
    progress: Any = None,
    acl_groups: dict[str, Sequence[uuid.UUID]] | None = None,
    skip: Sequence[str] = (),
) -> dict[str, float]:
    """Bulk-load `corpus` into ragline's `org`/`document`/`chunk` as the owner (COPY BINARY),
    with the HNSW and GIN indexes dropped during the load and rebuilt after it with their
    exact definitions from the migrations. `acl_groups` (group name → document ids) puts
    `group:<name>` in those documents' ACLs before their chunks arrive (the chunk trigger
    copies it). Indexes named in `skip` are dropped and not rebuilt (a caller that builds its
    own). Returns timings in seconds."""
    import time

    say = progress or (lambda _m: None)
    timings: dict[str, float] = {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        started = time.perf_counter()
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunk' "
            "AND indexname = ANY(%s)",
            (list(REBUILT_INDEXES),),
        )
        defs = dict(cur.fetchall())
        for name in defs:
            cur.execute(f'DROP INDEX "{name}"')
        for org in corpus.orgs:
            cur.execute(
                "INSERT INTO org (id, name, slug, settings) VALUES (%s, %s, %s, %s)",
                (str(org.org_id), org.slug, org.slug, json.dumps(ORG_SETTINGS)),
            )
        cur.execute(
            f"COPY document ({DOCUMENT_COLUMNS}) FROM STDIN WITH (FORMAT binary)",
            stream=io.BytesIO(copy_binary(_document_rows(corpus))),
        )
        for group, ids in (acl_groups or {}).items():
            cur.execute(
                "UPDATE document SET acl = array_append(coalesce(acl, '{}'), %s) "
                "WHERE id = ANY(CAST(%s AS uuid[]))",
                (f"group:{group}", [str(i) for i in ids]),
            )
        order = [int(i) for i in chunk_order(corpus)]
        for first in range(0, len(order), batch_rows):
            part = order[first : first + batch_rows]
            cur.execute(
                f"COPY chunk ({CHUNK_COLUMNS}) FROM STDIN WITH (FORMAT binary)",
                stream=io.BytesIO(copy_binary(_chunk_rows(corpus, part))),
            )
            say(f"copied {min(first + batch_rows, len(order))}/{len(order)} chunks")
        raw.commit()
        timings["copy_s"] = time.perf_counter() - started
        cur.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        for name, definition in defs.items():
            if name in skip:
                continue
            began = time.perf_counter()
            say(f"building {name}")
            cur.execute(definition)
            raw.commit()
            timings[f"{name}_s"] = time.perf_counter() - began
        began = time.perf_counter()
        driver = raw.driver_connection  # VACUUM cannot run inside a transaction
        driver.autocommit = True
        cur.execute("VACUUM ANALYZE document")
        cur.execute("VACUUM ANALYZE chunk")
        driver.autocommit = False
        timings["analyze_s"] = time.perf_counter() - began
        cur.close()
    finally:
        raw.close()
    return {k: round(v, 2) for k, v in timings.items()}


class PlannedEmbedder:
    """An `Embedder` whose next query vector is set by the caller (`plan`): lets the library's
    own `search()` run with synthetic vectors."""

    dim: int = DIM

    def __init__(self, name: str = SYNTHETIC_MODEL) -> None:
        self.name = name
        self._next: list[float] | None = None

    def plan(self, vector: Sequence[float]) -> None:
        self._next = [float(x) for x in vector]

    def embed(self, texts: Sequence[str], *, kind: str = "document") -> list[list[float]]:
        if self._next is None:
            raise RuntimeError("PlannedEmbedder.embed called before plan()")
        return [self._next for _ in texts]
