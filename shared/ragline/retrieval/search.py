"""Tenant-safe hybrid search: vector (pgvector) + full text (tsvector, pg_trgm), fused by
score-aware convex fusion (docs/search.md).

Recall under the tenant filter does not depend on the planner's mood: the plan is chosen per
query from the number of candidate chunks. Up to `EXACT_MAX_ROWS` candidates get an exact scan
(btree on org_id, distance computed for every row); above it, HNSW with iterative scans
(pgvector >= 0.8), a generous `ef_search`, the rows re-sorted by true distance and checked
against a sample of the org (`hnswcheck`). Custom plans are forced, except for the one
statement that is safe on any plan, so a driver's cached generic plan cannot silently switch
strategy.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import ValidationError
from ragline.db import tenancy, wire
from ragline.db.engine import SESSION_SETTINGS
from ragline.retrieval import orggraphs, spaces
from ragline.retrieval.embeddings import Embedder
from ragline.retrieval.spaces import Space

if TYPE_CHECKING:
    from ragline.retrieval.rerank import Reranker

Mode = Literal["hybrid", "vector", "text"]
RRF_K = 60
#: Hybrid = HYBRID_VECTOR_WEIGHT * min-max(cosine) + the rest * min-max(ts_rank_cd) over the
#: chunks matching *every* query term. Chosen on three labelled sets (pydoc, stdlib, man
#: pages; bench/fusion_tuning.py): equal-weight RRF over the any-term list lost to vector
#: alone on two of them (issue 14); 0.6-0.7 with the all-terms list beat vector on all three.
HYBRID_VECTOR_WEIGHT = 0.7
#: Candidate counts up to this use an exact scan (~1-2 ms at 1 000 rows on 2 cores, with the
#: vectors stored inline: migration 0004); above it HNSW with iterative scans (issue 14).
EXACT_MAX_ROWS = 2_000
#: ef_search of the HNSW branch: 200 on graphs built with ef_construction 128 (migration 0012;
#: on the old graphs even 400 lost neighbours at large orgs, bench/hnsw_params.py, issue 14).
#: Set for every connection by `db.engine.SESSION_SETTINGS`; a deeper search sets its own.
HNSW_EF_SEARCH = int(SESSION_SETTINGS["hnsw.ef_search"])
#: From this many rows in the searched table, the walk goes deeper: a 10 000-chunk org of a
#: 1 000 000-row table lost neighbours at ef_search 200 (recall 0.943, min 0.7) that 400
#: found (bench/README.md, the 1 000 000-row runs; issue 14). 200 held at 211 110 rows.
LARGE_TABLE_ROWS = 500_000
LARGE_TABLE_EF_SEARCH = 400
#: Seconds a table's row estimate is reused (a catalog read, not worth one per search).
TABLE_ROWS_TTL_S = 300.0
#: Each list feeds this many candidates into the fusion.
FUSION_DEPTH = 50
#: A query of at most this many words that full text does not match is matched by trigram
#: similarity instead (a misspelled word or two).
SHORT_QUERY_WORDS = 3


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(default=None, max_length=64)
    document_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)
    metadata: dict[str, Any] | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=10, ge=1, le=100)
    mode: Mode = "hybrid"
    filters: Filters | None = None
    #: Re-score the best `RERANK_DEPTH` candidates with the configured reranker (off by default).
    rerank: bool = False

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip() or "\x00" in v:
            raise ValueError("query must be non-blank text without NUL")
        return v


@dataclass
class Hit:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    title: str
    section_label: str | None
    text: str
    score: float = 0.0
    vector_rank: int | None = None
    text_rank: int | None = None
    page: int | None = None  # 1-based, documents with pages (PDF)
    start: int = 0  # character offsets of the chunk in the document's (extracted) text
    end: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chunk_id": str(self.chunk_id),
            "document_id": str(self.document_id),
            "title": self.title,
            "section_label": self.section_label,
            "text": self.text,
            "score": round(self.score, 6),
            "start": self.start,
            "end": self.end,
        }
        if self.page is not None:
            out["page"] = self.page
        if self.vector_rank is not None:
            out["vector_rank"] = self.vector_rank
        if self.text_rank is not None:
            out["text_rank"] = self.text_rank
        return out


@dataclass
class SearchResult:
    hits: list[Hit]
    complete: bool
    took_ms: float
    plan: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": [h.as_dict() for h in self.hits],
            "complete": self.complete,
            "took_ms": round(self.took_ms, 2),
        }


@dataclass(frozen=True)
class _Where:
    """The WHERE clause both lists share, as SQL text and bind parameters: this org, ready
    documents, this model, the filters. The hot path is plain SQL text: building the same
    statement with SQLAlchemy Core cost ~2 ms of Python per search (issue 14)."""

    sql: str
    params: dict[str, Any]
    filtered: bool
    #: The vectors searched and how they join the chunk: `c.embedding` and nothing for an
    #: org without spaces (the SQL text is then exactly what it was before issue 17), the
    #: space's `chunk_vector_<dim>` row otherwise.
    vec: str = "c.embedding"
    join: str = ""
    space: Space | None = None
    #: The caller reads with principals (an end user, issue 18): the count and the exact scan
    #: start from the documents it may see (`_visible_docs`), not from every chunk of the org.
    docs: str | None = None


def _conditions(
    session: Session, model_name: str, filters: Filters | None, space: Space | None = None
) -> _Where:
    org = tenancy.current_org(session)
    parts = ["c.org_id = :org", "d.org_id = :org", "d.status = 'ready'"]
    #: The same conditions on the document alone (alias `dv`): the visible-documents list.
    doc_parts = ["dv.org_id = :org", "dv.status = 'ready'"]
    params: dict[str, Any] = {"org": org, "model": model_name}
    vec, join = "c.embedding", ""
    if space is None or space.legacy:
        parts.append("c.embedding_model = :model")
    else:
        # Only chunks with a vector in this space exist for the search (issue 17).
        vec, join = "v.embedding", f" JOIN {space.storage} v ON v.chunk_id = c.id"
        parts.append("v.space_id = :space")
        params["space"] = space.id
    filtered = False
    if filters:
        if filters.kind:
            parts.append("d.kind = :kind")
            doc_parts.append("dv.kind = :kind")
            params["kind"] = filters.kind
            filtered = True
        if filters.document_ids is not None:
            parts.append("c.document_id = ANY(CAST(:document_ids AS uuid[]))")
            doc_parts.append("dv.id = ANY(CAST(:document_ids AS uuid[]))")
            params["document_ids"] = [str(d) for d in filters.document_ids]
            filtered = True
        if filters.metadata:
            parts.append("d.metadata @> CAST(:metadata AS jsonb)")
            doc_parts.append("dv.metadata @> CAST(:metadata AS jsonb)")
            params["metadata"] = json.dumps(filters.metadata)
            filtered = True
    docs = None
    if tenancy.current_principals(session) is not None:
        docs = " AND ".join(doc_parts)
    return _Where(" AND ".join(parts), params, filtered, vec, join, space, docs)


#: What a hit shows (title, section, text, position).
_DISPLAY = (
    "c.id, c.document_id, d.title, c.section_label, c.text, c.page, c.start_offset, c.end_offset"
)
_FROM = (
    f"SELECT {_DISPLAY} {{extra}} "
    "FROM chunk c JOIN document d ON d.id = c.document_id{join} WHERE {where}"
)


def _hit(row: Any) -> Hit:
    return Hit(
        row.id,
        row.document_id,
        row.title,
        row.section_label,
        row.text,
        page=row.page,
        start=row.start_offset,
        end=row.end_offset,
    )


def _visible_docs(where: _Where) -> str:
    """The ids of the documents the caller may see (RLS on `document`) that pass the
    document-level conditions, as an array: a user who sees 10 of an org's 100 000 chunks
    reaches them through the (document_id, ord) index, not through a scan of the org whose
    rows the ACL policy then drops one by one (issue 18)."""
    return f"ARRAY(SELECT dv.id FROM document dv WHERE {where.docs})"


def _bound_count_sql(where: _Where) -> str:
    """The candidate count, counted only up to `EXACT_MAX_ROWS + 1`: enough to choose the
    plan, never a scan of a large org. Unfiltered, an index scan of (org_id,
    embedding_model) gives an upper bound (chunks of documents not yet ready included); with
    filters, the rows that match them. For a caller with principals, the `chunk_count` of
    the documents it may see (an upper bound; unknown counts as many): counting through the
    org's chunks reads every one of them when the caller sees few (issue 18)."""
    if where.docs is not None:
        inner = (
            "SELECT 1 FROM document dv CROSS JOIN LATERAL "
            f"generate_series(1, coalesce(dv.chunk_count, :bound)) WHERE {where.docs}"
        )
    elif where.filtered:
        inner = (
            "SELECT 1 FROM chunk c JOIN document d ON d.id = c.document_id"
            f"{where.join} WHERE {where.sql}"
        )
    elif where.space is not None and where.join:
        inner = f"SELECT 1 FROM {where.space.storage} v WHERE v.space_id = :space"
    else:
        inner = "SELECT 1 FROM chunk c WHERE c.org_id = :org AND c.embedding_model = :model"
    return f"SELECT count(*) AS n FROM ({inner} LIMIT :bound) b"


def _exact_sql(where: _Where, sql: str, light: bool = False) -> str:
    """The exact scan: the distance to every candidate, the nearest `:limit` kept, and only
    those joined with what they show. The scan itself reads ids and vectors alone, which
    `ix_chunk_exact_scan` holds next to the org (an index-only scan, migration 0013); reading
    whole rows for it cost a heap page per chunk (issue 14)."""
    # `+ 0` makes the ORDER BY an expression the HNSW index cannot serve: exact scan. Equal
    # distances by id, as everywhere (`_vector_rows`): which tied chunks make the cut must not
    # depend on where the rows lie on disk.
    if where.docs is not None:
        sql = f"c.document_id = ANY({_visible_docs(where)}) AND {sql}"
    distance = f"{where.vec} <=> CAST(:vector AS vector)"
    nearest = (
        f"SELECT c.id FROM chunk c JOIN document d ON d.id = c.document_id{where.join} "
        f"WHERE {sql} ORDER BY ({distance}) + 0, c.id LIMIT :limit"
    )
    # The chosen ids as an array (an InitPlan): the rows they name are read by primary key
    # whatever plan the statement has (joined, a generic plan read the whole org again).
    # Their distance is `+ 0` too: ordered by it (hybrid's window), the plain expression let
    # a plan without sorts walk the HNSW index of the whole table for them (150 ms).
    extra = f", ({distance}) + 0 AS distance, 'exact' AS plan" + (", c.tsv" if light else "")
    return _FROM.format(
        extra=extra, join=where.join, where=f"c.id = ANY(ARRAY({nearest})) AND {where.sql}"
    )


def _approx_sql(where: _Where, gate: str = "", light: bool = False) -> str:
    """The HNSW branch: `ORDER BY distance LIMIT k` on the index (iterative scan)."""
    distance = f"{where.vec} <=> CAST(:vector AS vector)"
    return (
        _FROM.format(
            extra=f", {distance} AS distance, 'hnsw' AS plan{', c.tsv' if light else ''}",
            join=where.join,
            where=f"{where.sql}{gate}",
        )
        + f" ORDER BY {distance} LIMIT :limit"
    )


#: Columns every vector statement adds to its rows: whether the connection runs with the
#: search settings (`vector_hits`).
_VECTOR_COLUMNS = "current_setting('hnsw.iterative_scan', true) AS iterative"


#: The all-terms query of a hybrid search, parsed once per statement (an InitPlan), not per row.
_QUERY = "(SELECT websearch_to_tsquery('english', :query))"


#: What a hybrid candidate shows, sent only for the vector top `:want` (`_outer`): the
#: columns of `_DISPLAY` after the two ids.
_SHOWN = tuple(column.split(".")[1] for column in _DISPLAY.split(", ")[2:])


def _outer(light: bool) -> str:
    """The nearest rows as a vector statement returns them: whole, or (hybrid) with the
    full-text rank of those that match every query term (NULL for the others) and, of the
    50 candidates, only the vector top `:want` with what they show (`shown`): the fused top
    k is mostly among them, and `_displayed` reads the others. Reading the text of all 50
    cost ~1.5 ms at 1 000 chunks (issue 14).

    For a short query (`:short`) that no candidate matches in full (a misspelling), the
    shown rows also carry their trigram `word_similarity` to it (`sim`, NULL otherwise):
    the text list of `hybrid_hits`. Scoring all 50 candidates cost 4-12 ms (pg_trgm's
    trigram extraction, ~0.2 µs per character), a fifth of that for the shown ones."""
    if not light:
        return "nearest.*"
    shown = "row_number() OVER (ORDER BY nearest.distance, nearest.id) <= :want"
    columns = ", ".join(f"CASE WHEN {shown} THEN nearest.{c} END AS {c}" for c in _SHOWN)
    matched = f"nearest.tsv @@ {_QUERY}"
    rescue = f"{shown} AND :short AND NOT bool_or({matched}) OVER ()"
    return (
        f"nearest.id, nearest.document_id, nearest.distance, nearest.plan, {shown} AS shown, "
        f"{columns}, "
        f"CASE WHEN {matched} THEN ts_rank_cd(nearest.tsv, {_QUERY}) END AS rank, "
        f"CASE WHEN {rescue} THEN word_similarity(:query, nearest.text) END AS sim"
    )


def _vector_sql(where: _Where, light: bool = False) -> str:
    approx = _approx_sql(where, " AND (SELECT n FROM n) > :max_exact", light)
    exact = _exact_sql(where, f"{where.sql} AND (SELECT n FROM n) <= :max_exact", light)
    # Only the chosen branch runs: the gate is a one-time filter on the counted CTE.
    # relaxed_order may return rows slightly out of order: `vector_hits` re-sorts them.
    return (
        f"WITH n AS MATERIALIZED ({_bound_count_sql(where)}) "
        f"SELECT {_outer(light)}, (SELECT n FROM n) AS candidates, {_VECTOR_COLUMNS} "
        f"FROM (({exact}) UNION ALL ({approx})) nearest"
    )


def _one_branch_sql(branch: str, light: bool) -> str:
    """The vector statement of an org of a remembered size (`_org_sizes`): one branch alone,
    no count; `:bound` is the candidate count it reports."""
    return (
        f"SELECT {_outer(light)}, CAST(:bound AS bigint) AS candidates, {_VECTOR_COLUMNS} "
        f"FROM ({branch}) nearest"
    )


def _large_sql(where: _Where, light: bool = False) -> str:
    """An org known to be above `EXACT_MAX_ROWS`: the HNSW branch alone."""
    return _one_branch_sql(_approx_sql(where, light=light), light)


def _small_sql(where: _Where, light: bool = False) -> str:
    """An org known to have at most `EXACT_MAX_ROWS` candidates: the exact scan alone."""
    return _one_branch_sql(_exact_sql(where, where.sql, light), light)


def _fallback_sql(where: _Where, light: bool = False) -> str:
    """The exact scan of every candidate, ungated (after an HNSW walk that came back short)."""
    return f"SELECT {_outer(light)} FROM ({_exact_sql(where, where.sql, light)}) nearest"


def _sample_sql(where: _Where) -> str:
    """The org's vectors `hnswcheck` compares an HNSW result with: ~1 % of the table's pages
    (the same ones in every process), at most `hnswcheck.SAMPLE_ROWS` of their rows, spread
    over all of them (ordered by a hash of the id, not by page)."""
    space = where.space
    if space is not None and not space.legacy:
        source, owner, ident = f"{space.storage} s", "s.space_id = :space", "s.chunk_id"
    else:
        source, owner, ident = "chunk s", "s.org_id = :org AND s.embedding_model = :model", "s.id"
    return (
        f"SELECT {ident} AS id, vector_send(s.embedding) AS v FROM {source} "
        "TABLESAMPLE SYSTEM (:sample_percent) REPEATABLE (14) "
        f"WHERE {owner} ORDER BY hashtext(CAST({ident} AS text)) LIMIT :sample_rows"
    )


#: Planner settings of an unfiltered vector statement (`_generic`), and their session values.
_GENERIC = {"plan_cache_mode": "force_generic_plan", "enable_sort": "off"}
_CUSTOM = {"plan_cache_mode": SESSION_SETTINGS["plan_cache_mode"], "enable_sort": "on"}


def _set_local(session: Session, values: dict[str, str]) -> None:
    wire.set_local(session.connection(), values)


def _vector_rows(session: Session, statement: str, params: dict[str, Any]) -> Sequence[Any]:
    """A vector statement's rows, by true distance."""
    rows = session.execute(_sql(statement), params).all()
    # Equal distances by id, as `_outer` ranks them: the same order on every plan.
    return sorted(rows, key=lambda r: (float(r.distance), r.id))


@contextmanager
def _plans_for(session: Session, where: _Where, custom: bool = False) -> Iterator[None]:
    """The vector statement of a search over the whole org runs on a plan made once per
    connection (generic): planning the two-branch statement under RLS cost more than running
    it at a small org (0.35-0.65 ms against ~0.1 ms; issue 14). Such a plan is safe for it,
    and only for it: the exact/HNSW choice is the runtime gate's, the exact branch only ever
    reads an org of at most `EXACT_MAX_ROWS` candidates (its org_id index is right for any),
    and `enable_sort = off` keeps the HNSW branch on its index whatever the estimate the plan
    was made with (the exact branch has no plan without a sort, so it keeps one). A generic
    plan is made with the estimates of the org bound when it is made (the planner folds
    `current_setting` for them): with filters or principals, the right index depends on this
    search's values, and a plan made for a small org scanned a large one; those stay custom,
    as does every other statement. Both settings are transaction-local and ride with the next
    statement (`db.wire.defer`).

    An org with a graph of its own (`orggraphs`) runs a statement that names it by a literal
    (`_pinned`): its generic plan is made with the constant the planner matches with the
    graph's predicate, once per connection and org (custom plans cost ~0.2 ms of planning
    per search at a 10 000-chunk org). With more graphs than `PINNED_GRAPHS_MAX`, their
    statements would not stay prepared (`db.wire.CACHE_SIZE`): the org stays a parameter
    and the statement runs on custom plans (`custom`), where it is a constant too, with
    `enable_sort = off`."""
    if custom:
        _set_local(session, {"enable_sort": "off"})
        try:
            yield
        finally:
            _set_local(session, {"enable_sort": "on"})
        return
    if _whole_org_key(where) is None:
        yield
        return
    _set_local(session, _GENERIC)
    try:
        yield
    finally:
        _set_local(session, _CUSTOM)


@functools.lru_cache(maxsize=256)
def _sql(text: str) -> Any:
    """`sa.text(text)`, parsed once per statement shape (~1 ms of regex per search)."""
    return sa.text(text)


#: ef_search of the second walk when the check finds a miss.
HNSW_RETRY_EF_SEARCH = 1000
#: Seconds a process remembers an org's bounded candidate count: a search over the whole org
#: then skips the count and runs one branch (`_large_sql` above `EXACT_MAX_ROWS`, `_small_sql`
#: up to it; the count was ~0.2 ms of a 1 000-chunk org's search). An org that shrinks below
#: the threshold meanwhile is searched by HNSW, whose short or missed results fall back to
#: the exact scan; one that grows above it gets an exact scan of more rows (exact still, and
#: slower: for at most this long).
ORG_SIZE_TTL_S = 60.0
#: Bounded candidate counts: (org, space, model) → (count, when that knowledge expires).
_org_sizes: dict[tuple[Any, ...], tuple[int, float]] = {}


def _vectors_key(where: _Where) -> tuple[Any, ...]:
    """The vectors a search reads: (org, space, model)."""
    return (where.params["org"], where.params.get("space"), where.params["model"])


def _whole_org_key(where: _Where) -> tuple[Any, ...] | None:
    """What a search over a whole org's vectors is remembered by; None for a search whose
    candidates depend on its filters or on the caller's permissions."""
    if where.filtered or where.docs is not None:
        return None
    return _vectors_key(where)


def _remember_size(key: tuple[Any, ...], candidates: int) -> None:
    now = time.monotonic()
    if len(_org_sizes) > 10_000:
        for stale, (_, until) in list(_org_sizes.items()):  # a copy: other threads insert
            if until <= now:
                _org_sizes.pop(stale, None)
    _org_sizes[key] = (candidates, now + ORG_SIZE_TTL_S)


def _known_size(key: tuple[Any, ...] | None) -> int | None:
    """The org's remembered bounded candidate count, if this process counted it lately."""
    if key is None:
        return None
    known = _org_sizes.get(key)
    if known is None or known[1] <= time.monotonic():
        return None
    return known[0]


def _own_graph(session: Session, where: _Where) -> orggraphs.Graph | None:
    """The graph of its own (`orggraphs`: large orgs, built by the operator) of the org (or
    its embedding space) when the search reads the whole org's vectors and there is one."""
    if _whole_org_key(where) is None:
        return None
    graph = orggraphs.graph_for(where.space, where.params["org"])
    return graph if orggraphs.owned(session.connection(), graph) else None


def _owns_graph(session: Session, where: _Where) -> bool:
    return _own_graph(session, where) is not None


#: Graphs of their own up to which their orgs' statements name them by a literal (`_pinned`):
#: each such org adds a statement or two to every connection's prepared ones (128, of which
#: the hot paths use a few dozen).
PINNED_GRAPHS_MAX = 32


def _pinned(where: _Where, graph: orggraphs.Graph) -> _Where:
    """`where` with the graph's own condition as a literal too (`org_id = '<org>'`, or the
    space's `space_id`): the statement's generic plan can use the partial index, whose
    predicate a parameter cannot prove. The key is a `uuid.UUID` (checked by `Graph`), so
    its text is hex digits and dashes."""
    alias = "c" if graph.table == "chunk" else "v"
    return replace(where, sql=f"{where.sql} AND {alias}.{graph.column} = '{graph.key}'")


def _missed(session: Session, where: _Where, vector: list[float], rows: Sequence[Any]) -> bool:
    """Whether the org's sample holds a closer chunk than the HNSW result's worst that the
    result lacks (`hnswcheck`)."""
    from ragline.retrieval import hnswcheck

    def read() -> Sequence[Any]:
        params = {
            **where.params,
            "sample_percent": hnswcheck.SAMPLE_PERCENT,
            "sample_rows": hnswcheck.SAMPLE_ROWS,
        }
        return session.execute(_sql(_sample_sql(where)), params).all()

    key = (*_vectors_key(where), tenancy.current_principals(session))
    found = hnswcheck.sample(key, read)
    worst = max(float(r.distance) for r in rows)
    return hnswcheck.missed(found, vector, (r.id for r in rows), worst)


def _nearest(
    session: Session,
    vector: list[float],
    where: _Where,
    limit: int,
    query: str | None = None,
    want: int = 0,
) -> tuple[Sequence[Any], str, int]:
    """The `limit` nearest candidates by cosine distance, in one statement: the bounded
    candidate count gates an exact scan (up to `EXACT_MAX_ROWS`) or an HNSW iterative scan
    (above it); an org this process counted lately (`_org_sizes`) goes to its plan without
    the count. Every full HNSW result is checked against a sample of the org (`hnswcheck`).
    With `query` (hybrid), rows with their full-text rank, only the first `want` with what
    they show (`_outer`).
    Returns rows by distance, plan and the (bounded) candidate count."""
    light = query is not None
    params = {
        **where.params,
        "vector": spaces.vector_literal(vector),
        "limit": limit,
        "bound": EXACT_MAX_ROWS + 1,
        "max_exact": EXACT_MAX_ROWS,
    }
    if light:
        assert query is not None
        params.update(query=query, want=want, short=len(query.split()) <= SHORT_QUERY_WORDS)
    key = _whole_org_key(where)
    graph = _own_graph(session, where)
    pinned = graph is not None and orggraphs.valid_count() <= PINNED_GRAPHS_MAX
    with _plans_for(session, where, custom=graph is not None and not pinned):
        known = EXACT_MAX_ROWS + 1 if graph is not None else _known_size(key)
        if known is None:
            statement = _vector_sql(where, light)
        elif known > EXACT_MAX_ROWS:
            statement = _large_sql(_pinned(where, graph) if graph and pinned else where, light)
        else:
            statement = _small_sql(where, light)
            params["bound"] = known  # the candidates it reports
        rows = _vector_rows(session, statement, params)
        unset = rows[0].iterative != "relaxed_order" if rows else not _has_settings(session)
        if unset and (not rows or rows[0].plan == "hnsw"):
            # A connection without the session settings (its HNSW walk may stop at ef_search
            # rows, even at none): set them here and search again.
            _settings(session, HNSW_EF_SEARCH)
            rows = _vector_rows(session, statement, params)
        if not rows:
            return [], "exact", 0
        plan, candidates = str(rows[0].plan), int(rows[0].candidates)
        if key is not None and known is None:
            _remember_size(key, candidates)
        if plan == "hnsw" and len(rows) >= limit and _missed(session, where, vector, rows):
            # The graph walk stayed in the wrong region (seen on clustered data, issue 14): a
            # much wider walk first, the exact scan if that misses too.
            _settings(session, HNSW_RETRY_EF_SEARCH)
            rows = _vector_rows(session, statement, params)
            plan = "hnsw-retry"
            if len(rows) >= limit and _missed(session, where, vector, rows):
                rows = []
        if plan.startswith("hnsw") and len(rows) < limit:
            # The graph walk gave up (max_scan_tuples) before finding `limit` rows of this
            # selection, or missed twice: the exact scan, whatever it costs.
            rows = _vector_rows(session, _fallback_sql(where, light), params)
            plan = "exact-fallback"
    return rows, plan, candidates


def vector_hits(
    session: Session, vector: list[float], where: _Where, limit: int
) -> tuple[list[Hit], str, int]:
    """The `limit` nearest chunks (`_nearest`), scored by cosine similarity.
    Returns hits, plan and the (bounded) candidate count."""
    rows, plan, candidates = _nearest(session, vector, where, limit)
    hits = []
    for row in rows:
        hit = _hit(row)
        hit.score = 1.0 - float(row.distance)
        hits.append(hit)
    return hits, plan, candidates


def hybrid_hits(
    session: Session, query: str, vector: list[float], where: _Where, depth: int, want: int
) -> tuple[list[Hit], str, int, int]:
    """The hybrid ranking of the `depth` nearest chunks (`fuse`), its best `want` with what
    they show. Usually one statement: the candidates with their full-text ranks and the
    display columns of the vector top `want` (and, for a short query no candidate matches
    in full, their trigram similarity to it). One more reads the fused hits outside those.

    The text list holds vector candidates only: under row-level security Postgres cannot
    use the GIN index for `@@` (ts_match_vq is not leakproof, so it may not run before the
    policy), and a full-text pass is a scan of the whole org (~250 ms at 100 000 chunks). On
    the labelled sets, text matches outside the vector top 50 never reached the fused top 10
    (bench/fusion_tuning.py; issue 14).
    Returns hits, plan, the (bounded) candidate count and the candidates read."""
    rows, plan, candidates = _nearest(session, vector, where, depth, query, want)
    vec = [
        Hit(row.id, row.document_id, "", None, "", score=1.0 - float(row.distance)) for row in rows
    ]
    ranked = [(float(row.rank), row.id) for row in rows if row.rank is not None]
    if not ranked:
        # A short query that no candidate matches in full (`_outer`): the shown candidates
        # whose words closely match it, scored below any full-text match.
        ranked = [(float(row.sim) * 0.1, row.id) for row in rows if (row.sim or 0.0) > 0.5]
    by_id = {h.chunk_id: h for h in vec}
    txt = [
        Hit(**{**by_id[chunk_id].__dict__, "score": score})
        for score, chunk_id in sorted(ranked, key=lambda p: (-p[0], str(p[1])))
    ]
    shown = {row.id: row for row in rows if row.shown}
    return _displayed(session, fuse(vec, txt, want), shown), plan, candidates, len(rows)


_STRICT = "websearch_to_tsquery('english', :query)"
_LOOSE = "CAST(replace(CAST(plainto_tsquery('english', :query) AS text), '&', '|') AS tsquery)"


def text_hits(
    session: Session, query: str, where: _Where, limit: int, *, strong_only: bool = False
) -> list[Hit]:
    """Full-text matches ranked by ts_rank_cd; trigram similarity rescues short or misspelled
    queries that full text misses. `strong_only` (hybrid): no any-term fill, so only chunks
    matching every term (or, for a short query, closely matching its words) come back."""
    params = {**where.params, "query": query, "limit": limit}
    hits: list[Hit] = []
    seen: set[uuid.UUID] = set()
    # All terms first (web search syntax: quotes, OR, -word); then any term, so a question
    # in plain language still finds the passages that share most of its words.
    passes = ((_STRICT, 1.0),) if strong_only else ((_STRICT, 1.0), (_LOOSE, 0.5))
    for tsq, weight in passes:
        if len(hits) >= limit:
            break
        extra = f", ts_rank_cd(c.tsv, {tsq}) AS rank"
        stmt = _FROM.format(extra=extra, join=where.join, where=f"{where.sql} AND c.tsv @@ {tsq}")
        stmt += " ORDER BY rank DESC, c.id LIMIT :limit"
        for row in session.execute(_sql(stmt), params).all():
            if row.id in seen or len(hits) >= limit:
                continue
            seen.add(row.id)
            hit = _hit(row)
            hit.score = float(row.rank) * weight
            hits.append(hit)
    if len(hits) < limit and len(query.split()) <= SHORT_QUERY_WORDS and not (strong_only and hits):
        extra = ", word_similarity(:query, c.text) AS sim"
        stmt = _FROM.format(
            extra=extra,
            join=where.join,
            where=f"{where.sql} AND word_similarity(:query, c.text) > 0.5",
        )
        stmt += " ORDER BY sim DESC, c.id LIMIT :limit"
        for row in session.execute(_sql(stmt), params).all():
            if row.id not in seen and len(hits) < limit:
                seen.add(row.id)
                hit = _hit(row)
                hit.score = float(row.sim) * 0.1  # below any real full-text match
                hits.append(hit)
    return hits


_DISPLAYED = (
    f"SELECT {_DISPLAY} FROM chunk c JOIN document d ON d.id = c.document_id "
    "WHERE c.id = ANY(CAST(:ids AS uuid[]))"
)


def _displayed(session: Session, hits: list[Hit], shown: dict[uuid.UUID, Any]) -> list[Hit]:
    """`hits` (ids and scores) with what they show, in their order: from `shown` (rows
    already read), the others read in one statement; a chunk deleted since the candidates
    were read drops out."""
    rows = dict(shown)
    ids = [str(h.chunk_id) for h in hits if h.chunk_id not in rows]
    if ids:
        rows.update((row.id, row) for row in session.execute(_sql(_DISPLAYED), {"ids": ids}))
    out = []
    for hit in hits:
        row = rows.get(hit.chunk_id)
        if row is not None:
            full = _hit(row)
            full.score, full.vector_rank, full.text_rank = hit.score, hit.vector_rank, hit.text_rank
            out.append(full)
    return out


#: A list's part in a fusion: its hits, the rank field it sets, the score each hit adds.
_Part = tuple[list[Hit], str, Callable[[int, Hit], float]]


def _combine(parts: Sequence[_Part], top_k: int) -> list[Hit]:
    """The best `top_k` chunks by their summed scores (equal scores by chunk id),
    each a copy of the first hit seen for it with the fused score and its rank in each list
    that holds it. Scores are summed as plain floats and only the winners copied (copying
    every candidate: 0.20 ms per fusion of 50 + 17 candidates, now 0.15; issue 14)."""
    scores: dict[uuid.UUID, float] = {}
    first: dict[uuid.UUID, Hit] = {}
    ranks: dict[uuid.UUID, dict[str, int]] = {}
    for hits, field_name, adds in parts:
        for rank, hit in enumerate(hits, start=1):
            chunk = hit.chunk_id
            if chunk not in first:
                first[chunk], scores[chunk], ranks[chunk] = hit, 0.0, {}
            ranks[chunk][field_name] = rank
            scores[chunk] += adds(rank, hit)
    # A UUID orders as its text does (fixed-width lowercase hex): no str() per candidate.
    best = sorted(scores, key=lambda chunk: (-scores[chunk], chunk))[:top_k]
    return [Hit(**{**first[c].__dict__, "score": scores[c], **ranks[c]}) for c in best]


def fuse_rrf(
    vector: list[Hit], text: list[Hit], top_k: int, *, text_weight: float = 1.0
) -> list[Hit]:
    """Reciprocal rank fusion (k = 60) of the two ranked lists, the text list weighted."""
    return _combine(
        (
            (vector, "vector_rank", lambda rank, _: 1.0 / (RRF_K + rank)),
            (text, "text_rank", lambda rank, _: text_weight / (RRF_K + rank)),
        ),
        top_k,
    )


def _min_max(hits: list[Hit]) -> dict[uuid.UUID, float]:
    if not hits:
        return {}
    top, low = max(h.score for h in hits), min(h.score for h in hits)
    span = top - low
    return {h.chunk_id: (h.score - low) / span if span > 0 else 1.0 for h in hits}


def fuse_convex(vector: list[Hit], text: list[Hit], top_k: int, *, alpha: float) -> list[Hit]:
    """Score-aware fusion: alpha * min-max(cosine) + (1 - alpha) * min-max(text rank), each
    normalised over its own list; a chunk missing from a list gets 0 from it."""
    on_vector, on_text = _min_max(vector), _min_max(text)
    return _combine(
        (
            (vector, "vector_rank", lambda _, hit: alpha * on_vector[hit.chunk_id]),
            (text, "text_rank", lambda _, hit: (1 - alpha) * on_text[hit.chunk_id]),
        ),
        top_k,
    )


def fuse(vector: list[Hit], text: list[Hit], top_k: int) -> list[Hit]:
    """The hybrid ranking: score-aware convex fusion, the vector list weighted
    `HYBRID_VECTOR_WEIGHT`, the text list holding only chunks that match every term."""
    return fuse_convex(vector, text, top_k, alpha=HYBRID_VECTOR_WEIGHT)


def rerank(reranker: Reranker, query: str, hits: list[Hit]) -> list[Hit]:
    """Hits re-ordered by the reranker's score of (query, title + section + text)."""
    passages = [
        "\n".join(part for part in (h.title, h.section_label, h.text) if part) for h in hits
    ]
    scores = reranker.score(query, passages)
    for hit, value in zip(hits, scores, strict=True):
        hit.score = float(value)
    return sorted(hits, key=lambda h: -h.score)


def describe() -> dict[str, Any]:
    """The search's tunables, for benchmark records."""
    return {
        "exact_max_rows": EXACT_MAX_ROWS,
        "hnsw_ef_search": HNSW_EF_SEARCH,
        "hnsw_ef_search_large_table": {"rows": LARGE_TABLE_ROWS, "ef": LARGE_TABLE_EF_SEARCH},
        "fusion": "convex(min-max cosine, min-max ts_rank_cd of all-terms matches)",
        "hybrid_vector_weight": HYBRID_VECTOR_WEIGHT,
        "fusion_depth": FUSION_DEPTH,
        "trigram_rescue": f"shown candidates, queries of <= {SHORT_QUERY_WORDS} words",
        "org_graph_min_chunks": orggraphs.ORG_GRAPH_MIN_CHUNKS,
    }


def _has_settings(session: Session) -> bool:
    """Whether the connection runs with the search settings (asked only when a search found
    nothing, so the rows could not tell)."""
    value = session.scalar(_sql("select current_setting('hnsw.iterative_scan', true)"))
    return bool(value == "relaxed_order")


_table_rows: dict[str, tuple[float, float]] = {}


def _estimated_rows(session: Session, table: str) -> float:
    """The planner's row estimate of `table` (`pg_class.reltuples`, kept by ANALYZE and
    autovacuum), read at most once per TABLE_ROWS_TTL_S in this process."""
    now = time.monotonic()
    cached = _table_rows.get(table)
    if cached is not None and cached[1] > now:
        return cached[0]
    rows = session.scalar(
        _sql("select greatest(reltuples, 0) from pg_class where oid = to_regclass(:t)"),
        {"t": table},
    )
    value = float(rows or 0.0)
    _table_rows[table] = (value, now + TABLE_ROWS_TTL_S)
    return value


def base_ef_search(session: Session, where: _Where) -> int:
    """ef_search for the table searched (`chunk`, or the space's vector table): deeper walks
    on large tables, where the graph's regions are many, unless the org walks a graph of
    its own (`orggraphs`)."""
    table = "chunk" if where.space is None or where.space.legacy else where.space.storage
    if _estimated_rows(session, table) >= LARGE_TABLE_ROWS and not _owns_graph(session, where):
        return LARGE_TABLE_EF_SEARCH
    return HNSW_EF_SEARCH


def _settings(session: Session, ef_search: int) -> None:
    """The connection's search settings (`SESSION_SETTINGS`) for this transaction only, sent
    with the next statement: for a search deeper than the default ef_search allows, or a
    connection that did not come from `db.engine.build_engine`."""
    _set_local(session, {**SESSION_SETTINGS, "hnsw.ef_search": str(ef_search)})


def search(
    session: Session,
    req: SearchRequest,
    embedder: Embedder | None = None,
    *,
    space: Space | None = None,
) -> SearchResult:
    """Run one search inside a tenant session (RLS active), in the org's active embedding
    space (or `space`, given with its `embedder`: `ragline embeddings compare`)."""
    started = time.monotonic()
    if embedder is None:
        embedder, space = spaces.for_search(session)
    reranker = None
    if req.rerank:
        from ragline.retrieval.rerank import get_reranker

        if get_settings().rerank_provider == "none":
            # The client asked for a feature this deployment does not offer: its request,
            # not the server, is what cannot be served (422, never a 500).
            raise ValidationError(
                "rerank is not available: the server has no RERANK_PROVIDER configured",
                details=[{"loc": ["rerank"], "type": "unavailable", "msg": "not configured"}],
            )
        reranker = get_reranker()
    where = _conditions(session, embedder.name, req.filters, space)
    want = req.top_k
    if reranker is not None:
        want = max(want, get_settings().rerank_depth)
    depth = want if req.mode != "hybrid" else max(want, FUSION_DEPTH)
    plan: dict[str, Any] = {}
    found = 0  # vector candidates read
    if req.mode == "text":
        hits = text_hits(session, req.query, where, depth)[:want]
        for i, h in enumerate(hits, start=1):
            h.text_rank = i
    else:
        vector = embedder.embed([req.query], kind="query")[0]
        ef_search = min(1000, max(base_ef_search(session, where), depth * 4))
        if ef_search != HNSW_EF_SEARCH:
            _settings(session, ef_search)
        if req.mode == "vector":
            vec, plan["vector"], plan["candidates"] = vector_hits(session, vector, where, depth)
            found, hits = len(vec), vec[:want]
            for i, h in enumerate(hits, start=1):
                h.vector_rank = i
        else:
            hits, plan["vector"], plan["candidates"], found = hybrid_hits(
                session, req.query, vector, where, depth, want
            )
    if reranker is not None and hits:
        hits = rerank(reranker, req.query, hits)[: req.top_k]
        plan["rerank"] = reranker.name
    # The guarantee: as many results as asked for whenever the org has that many candidates.
    # The exact plan returns every candidate up to the limit by construction; HNSW runs only
    # above EXACT_MAX_ROWS (> any limit) and falls back to exact when it comes back short.
    complete = True
    if req.mode != "text" and str(plan.get("vector", "")).startswith("hnsw"):
        complete = found >= depth
    return SearchResult(hits, complete, (time.monotonic() - started) * 1000, plan)


def search_logged(session: Session, req: SearchRequest) -> SearchResult:
    """`search` for the search endpoint: the query text also goes to the org's query log
    (one upsert in the same transaction, sent with its COMMIT, sampled;
    `ragline.retrieval.querylog`)."""
    from ragline.retrieval import querylog

    result = search(session, req)
    querylog.record(session, req.query)
    return result
