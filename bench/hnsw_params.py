"""HNSW build parameters against recall under the tenant filter (issue 14).

Builds one shared table (synthetic clusters: the measured orgs plus unmeasured filler orgs),
then for each (m, ef_construction) rebuilds `ix_chunk_embedding_hnsw` and runs ragline's own
vector statement (the HNSW branch, as searches run it) for each measured org at several
`ef_search` values: recall@10 against the exact top 10 (numpy), mean and min, and client-side
p50/p95. Appends one JSON line to bench/results/hnsw_params.jsonl.

    PYTHONPATH=shared .venv/bin/python bench/hnsw_params.py \
        [--sizes 10000,100000] [--fill-to 211110] [--builds 16:64,16:128,24:128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import exit_on_sigterm, percentile, record, scratch_database
from synthetic import exact_top_k, load, make_corpus, make_queries


def _graph(m: int, efc: int) -> str:
    """How `pg_indexes.indexdef` words an HNSW graph's build parameters."""
    return f"WITH (m='{m}', ef_construction='{efc}')"


def say(message: str) -> None:
    print(f"[hnsw] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="measured org sizes")
    parser.add_argument("--fill-to", type=int, default=211_110, help="table rows in all")
    parser.add_argument("--builds", default="16:64,16:128,24:128", help="m:ef_construction,...")
    parser.add_argument("--ef-search", default="100,200,400")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--maintenance-work-mem", default="2GB")
    args = parser.parse_args()
    exit_on_sigterm()

    from ragline.core.config import Settings, get_settings
    from ragline.db import engine as db
    from ragline.db import tenancy
    from ragline.retrieval import search, spaces
    from ragline.testing.hashing import HASHING_NAME

    sizes = [int(s) for s in args.sizes.split(",")]
    fill: list[int] = []
    while sum(sizes) + sum(fill) < args.fill_to:
        fill.append(min(100_000, args.fill_to - sum(sizes) - sum(fill)))
    builds = [tuple(int(x) for x in b.split(":")) for b in args.builds.split(",")]
    efs = [int(e) for e in args.ef_search.split(",")]
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    with scratch_database() as url:
        corpus = make_corpus(sizes + fill, seed=0, slug_prefix="hnsw", model=HASHING_NAME)
        owner = sa.create_engine(url)
        say(f"loading {sum(sizes) + sum(fill)} chunks")
        with owner.connect() as c:  # the migrations' graph, before `load` drops it
            default = c.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                {"n": "ix_chunk_embedding_hnsw"},
            ).scalar_one()
        # The migrations' graph is built by `load` only when it is one of the builds measured.
        own = any(_graph(m, efc) in default for m, efc in builds)
        timings = load(
            owner,
            corpus,
            progress=say,
            maintenance_work_mem=args.maintenance_work_mem,
            skip=() if own else ("ix_chunk_embedding_hnsw",),
        )
        built = default if own else ""  # the graph the table has now
        orgs = corpus.orgs[: len(sizes)]
        queries = {}
        for org in orgs:
            q = make_queries(corpus, org, args.queries, seed=1)
            truth = [
                {str(corpus.chunk_ids[r]) for r in t}
                for t in exact_top_k(corpus, org, q.vectors, 10)
            ]
            queries[org.slug] = ([spaces.vector_literal(v) for v in q.vectors], truth)
        for m, efc in builds:
            began = time.monotonic()
            if _graph(m, efc) in built:
                # The migrations' own graph, built by `load`: not built twice (12+ min at 1M).
                build_s = timings["ix_chunk_embedding_hnsw_s"]
            else:
                with owner.begin() as c:
                    c.execute(sa.text("DROP INDEX IF EXISTS ix_chunk_embedding_hnsw"))
                    c.execute(sa.text(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'"))
                    c.execute(
                        sa.text(
                            "CREATE INDEX ix_chunk_embedding_hnsw ON chunk USING hnsw "
                            f"(embedding vector_cosine_ops) WITH (m = {m}, ef_construction = {efc})"
                        )
                    )
                build_s = round(time.monotonic() - began, 1)
                built = _graph(m, efc)
            say(f"m={m} ef_construction={efc}: built in {build_s} s")
            app = db.build_engine(Settings(database_url=url, db_pool_size=1))
            for org in orgs:
                vectors, truth = queries[org.slug]
                with tenancy.tenant_session(org.org_id, engine=app) as s:
                    where = search._conditions(s, HASHING_NAME, None, None)
                statement = sa.text(search._vector_sql(where))
                for ef in efs:
                    recalls, latencies, plans = [], [], set()
                    for vector, best in zip(vectors, truth, strict=True):
                        params = {
                            **where.params,
                            "vector": vector,
                            "limit": 10,
                            "bound": search.EXACT_MAX_ROWS + 1,
                            "max_exact": search.EXACT_MAX_ROWS,
                        }
                        with tenancy.tenant_session(org.org_id, engine=app) as s:
                            s.execute(sa.text(f"SET LOCAL hnsw.ef_search = {ef}"))
                            began = time.perf_counter()
                            rows = s.execute(statement, params).all()
                            latencies.append((time.perf_counter() - began) * 1000)
                        plans.update(str(r.plan) for r in rows)
                        recalls.append(len({str(r.id) for r in rows} & best) / 10)
                    entry = {
                        "m": m,
                        "ef_construction": efc,
                        "build_s": build_s,
                        "org_chunks": org.size,
                        "ef_search": ef,
                        "plans": sorted(plans),
                        "recall_mean": round(statistics.fmean(recalls), 4),
                        "recall_min": min(recalls),
                        "p50_ms": round(percentile(latencies, 0.5), 2),
                        "p95_ms": round(percentile(latencies, 0.95), 2),
                    }
                    say(str(entry))
                    results.append(entry)
            app.dispose()
        owner.dispose()
    get_settings.cache_clear()
    record(
        "hnsw_params",
        {
            "table_rows": sum(sizes) + sum(fill),
            "queries_per_org": args.queries,
            "how": "ragline's vector statement (HNSW branch: every measured org is above "
            "EXACT_MAX_ROWS), one tenant transaction per query with SET LOCAL "
            "hnsw.ef_search; recall@10 vs numpy's exact top 10; no miss check, no retry",
            "results": results,
            "elapsed_s": round(time.monotonic() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
