"""The peer of `bench/search.py`: langchain-postgres `PGVectorStore` on the same server and data.

Runs in its own virtualenv (`bench/.venv-peer`, made by `make bench`): langchain-postgres pins
`pgvector<0.4`, which would downgrade the app's pgvector in `.venv`. `bench/search.py` writes
the corpus and the planned queries to a folder and reads back the results as JSON:

    bench/.venv-peer/bin/python bench/peer_langchain.py --url URL --data DIR --out FILE

What it does, with the library's own API (`PGEngine`, `PGVectorStore`, v2):
- times `add_embeddings` on a small sample (its own insert path: one INSERT per row),
- loads the full table with COPY (the add path would take minutes) into the table layout its
  `init_vectorstore_table` creates, with `org` both as a metadata column and in the JSON
  metadata, then builds its HNSW index (`apply_vector_index(HNSWIndex())`, m 16,
  ef_construction 64, as ragline's) and its full-text GIN index,
- per org: `similarity_search_by_vector(vector, k=10, filter={"org": slug})` with the org in
  the JSON metadata (its quickstart default) and as a column, and its hybrid search (RRF,
  50 candidates per list, like ragline's fusion depth) with the org as a column.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic

TABLE = "lc_chunks"
SAMPLE_TABLE = "lc_add_sample"


class PlannedEmbeddings:
    """langchain `Embeddings` returning the vector planned for the next query."""

    def __init__(self) -> None:
        self.next: list[float] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.next for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.next

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.next


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _psycopg(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="postgresql+psycopg:// URL of the bench DB")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--add-sample", type=int, default=300, help="rows through add_embeddings")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    from importlib.metadata import version

    from langchain_core.embeddings import Embeddings
    from langchain_postgres import Column, PGEngine, PGVectorStore
    from langchain_postgres.v2.hybrid_search_config import (
        HybridSearchConfig,
        reciprocal_rank_fusion,
    )
    from langchain_postgres.v2.indexes import HNSWIndex

    class Planned(PlannedEmbeddings, Embeddings):  # type: ignore[misc]  # (.venv-peer)
        pass

    meta = json.loads((args.data / "meta.json").read_text())
    vectors = np.load(args.data / "vectors.npy")
    texts: list[str] = json.loads((args.data / "texts.json").read_text())
    ids: list[str] = meta["chunk_ids"]
    row_org: list[str] = meta["row_org"]
    out: dict[str, Any] = {"langchain_postgres": version("langchain-postgres")}

    with _psycopg(args.url) as conn:
        dbname = conn.info.dbname
        # Same index-build memory as ragline's load (the store's own connections pick it up).
        conn.execute(f"ALTER DATABASE \"{dbname}\" SET maintenance_work_mem = '1GB'")

    engine = PGEngine.from_connection_string(args.url)
    embeddings = Planned()

    def hybrid_config() -> Any:
        # A fresh config per call: the store writes the query text into the one it is given.
        return HybridSearchConfig(
            tsv_column="content_tsv",
            fusion_function=reciprocal_rank_fusion,
            primary_top_k=50,
            secondary_top_k=50,
        )

    def make_table(name: str) -> None:
        engine.init_vectorstore_table(
            name,
            synthetic.DIM,
            metadata_columns=[Column("org", "TEXT")],
            hybrid_search_config=hybrid_config(),
            overwrite_existing=True,
        )

    # 1. Its own insert path, on a sample.
    n = min(args.add_sample, len(ids))
    make_table(SAMPLE_TABLE)
    sample = PGVectorStore.create_sync(
        engine,
        embeddings,
        SAMPLE_TABLE,
        metadata_columns=["org"],
        hybrid_search_config=hybrid_config(),
    )
    started = time.perf_counter()
    sample.add_embeddings(
        texts[:n],
        [[float(x) for x in v] for v in vectors[:n]],
        metadatas=[{"org": row_org[i]} for i in range(n)],
        ids=ids[:n],
    )
    add_s = time.perf_counter() - started
    out["add_embeddings"] = {
        "rows": n,
        "seconds": round(add_s, 2),
        "rows_per_s": round(n / add_s, 1),
        "extrapolated_full_load_s": round(len(ids) * add_s / n, 1),
    }
    with _psycopg(args.url) as conn:
        conn.execute(f'DROP TABLE "{SAMPLE_TABLE}"')

    # 2. Bulk load into the table layout it creates, then its own index builders.
    make_table(TABLE)
    started = time.perf_counter()
    with _psycopg(args.url) as conn:
        conn.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN content_tsv DROP NOT NULL')
        with conn.transaction(), conn.cursor() as cur:
            columns = "langchain_id, content, embedding, org, langchain_metadata"
            with cur.copy(f'COPY "{TABLE}" ({columns}) FROM STDIN WITH (FORMAT binary)') as cp:
                cp.write(synthetic.COPY_HEADER)
                step = 20_000
                for first in range(0, len(ids), step):
                    rows = range(first, min(first + step, len(ids)))
                    vec = synthetic.vector_fields(vectors[first : first + step])
                    cp.write(
                        synthetic.copy_tuples(
                            [
                                synthetic.uuid_field(uuid.UUID(ids[i])),
                                synthetic.text_field(texts[i]),
                                v,
                                synthetic.text_field(row_org[i]),
                                synthetic.json_field({"org": row_org[i]}),
                            ]
                            for i, v in zip(rows, vec, strict=True)
                        )
                    )
                cp.write(synthetic.COPY_TRAILER)
        conn.execute(
            f"UPDATE \"{TABLE}\" SET content_tsv = to_tsvector('pg_catalog.english', content)"
        )
        conn.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN content_tsv SET NOT NULL')
        conn.execute(f'VACUUM ANALYZE "{TABLE}"')
    load_s = time.perf_counter() - started
    store_col = PGVectorStore.create_sync(engine, embeddings, TABLE, metadata_columns=["org"])
    started = time.perf_counter()
    store_col.apply_vector_index(HNSWIndex())
    hnsw_s = time.perf_counter() - started
    started = time.perf_counter()
    PGVectorStore.create_sync(
        engine, embeddings, TABLE, hybrid_search_config=hybrid_config()
    ).apply_hybrid_search_index()
    gin_s = time.perf_counter() - started
    with _psycopg(args.url) as conn:
        conn.execute(f'ANALYZE "{TABLE}"')
    out["load"] = {
        "method": "COPY BINARY into its table (its add path is one INSERT per row)",
        "copy_and_tsv_s": round(load_s, 2),
        "hnsw_index_s": round(hnsw_s, 2),
        "gin_index_s": round(gin_s, 2),
    }

    # 3. Queries.
    store_json = PGVectorStore.create_sync(engine, embeddings, TABLE)  # org in JSON metadata
    results: dict[str, Any] = {}
    for org in meta["orgs"]:
        slug = org["slug"]
        qv = np.asarray(org["query_vectors"], dtype=np.float32)
        qt: list[str] = org["query_texts"]
        per: dict[str, Any] = {}
        runs: list[tuple[str, Any]] = [
            ("vector_json", lambda v, t, s=slug: _by_vector(store_json, v, s)),
            ("vector_column", lambda v, t, s=slug: _by_vector(store_col, v, s)),
            (
                "hybrid_column",
                lambda v, t, s=slug: store_col.similarity_search(
                    t, k=10, filter={"org": s}, hybrid_search_config=hybrid_config()
                ),
            ),
        ]
        for name, call in runs:
            latencies: list[float] = []
            found: list[list[str]] = []
            for i in range(-args.warmup, len(qt)):
                j = max(i, 0)
                embeddings.next = [float(x) for x in qv[j]]
                started = time.perf_counter()
                docs = call(embeddings.next, qt[j])
                elapsed = _ms(started)
                if i >= 0:
                    latencies.append(elapsed)
                    found.append([str(d.id) for d in docs])
            per[name] = {"latencies_ms": latencies, "ids": found}
        results[slug] = per
    out["results"] = results
    asyncio.run(engine.close())
    args.out.write_text(json.dumps(out))
    print(json.dumps({"peer": "langchain-postgres", "orgs": len(results), "out": str(args.out)}))


def _by_vector(store: Any, vector: Sequence[float], slug: str) -> Any:
    return store.similarity_search_by_vector(list(vector), k=10, filter={"org": slug})


if __name__ == "__main__":
    main()
