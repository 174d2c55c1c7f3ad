"""Tenant-filtered search: recall@10 and latency per org size, ragline vs langchain-postgres.

One `chunk` table holds orgs of several sizes (default 10, 100, 1 000, 10 000 and 100 000
chunks) of synthetic data (see bench/synthetic.py: gaussian-mixture vectors, pseudo-word
text), bulk-loaded with COPY. Per org, planned queries (perturbed members) run:

- through the library: `ragline.retrieval.search.search()` in a tenant session (app role,
  RLS on), with
  an embedder that returns the planned vector: recall@10 against the exact top-10 by cosine
  within the org, p50/p95 latency, for the `vector`, `text` and `hybrid` modes;
- over HTTP: the `search` function served by functions-framework. It embeds the query *text*
  with a registered provider (EMBEDDING_PROVIDER=hashing, so the synthetic chunks are labelled
  `hashing-v1`); only text mode returns meaningful results there, so HTTP gives end-to-end
  latency (all modes) and the overhead over the library call (text mode, same queries);
- through the peer, langchain-postgres `PGVectorStore`, on the same server and vectors
  (bench/peer_langchain.py, in its own virtualenv).

`--scaling` adds: vector-search p95 of a mid-size org when the table holds 10 000 and 100 000
chunks in total (1 000 000 with `--scaling-totals`).

`--acl` adds one more org of `--acl-org` (100 000) chunks whose documents all carry an ACL,
searched by end users who may see 10, 1 000 and every chunk of it (issue 18): recall@10
against the exact top-10 among the chunks they may see, p95, and the plain reference with the
ACL as a filter (`acl && principals`).

    .venv/bin/python bench/search.py [--sizes 10,100,1000] [--queries 30] [--no-peer]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import exit_on_sigterm, record, scratch_database, summary_ms
from synthetic import (
    CHUNKS_PER_DOC,
    Corpus,
    OrgData,
    PlannedEmbedder,
    Queries,
    exact_top_k,
    load,
    make_corpus,
    make_queries,
    recall,
)

if TYPE_CHECKING:
    from ragline.retrieval.search import Mode

BENCH = Path(__file__).resolve().parent
PEER_PYTHON = BENCH / ".venv-peer" / "bin" / "python"
MODES: tuple[Mode, ...] = ("vector", "text", "hybrid")
TOP_K = 10


def say(message: str) -> None:
    print(f"[search] {message}", file=sys.stderr, flush=True)


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


# --------------------------------------------------------------------------- library


def _stats(
    latencies: list[float],
    found: list[list[str]],
    truth: list[list[str]] | None,
    sources: list[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = summary_ms(latencies)
    if truth is not None:
        recalls = [recall(f, t) for f, t in zip(found, truth, strict=True)]
        out["recall@10"] = round(statistics.fmean(recalls), 4)
        out["recall_min"] = round(min(recalls), 4)
    out["hit@10"] = round(statistics.fmean(s in f for f, s in zip(found, sources, strict=True)), 4)
    out["rows"] = round(statistics.fmean(len(f) for f in found), 2)
    out.update(extra or {})
    return out


def run_library(
    engine: Engine,
    org: OrgData,
    queries: Queries,
    truth: list[list[str]],
    sources: list[str],
    mode: Mode,
    embedder: PlannedEmbedder,
    warmup: int = 2,
    plain: PlainReference | None = None,
    principals: frozenset[str] | None = None,
) -> dict[str, Any]:
    """`search()` through a tenant session per query, as a function would call it (as an end
    user with `principals`). With `plain`, a reference query runs right after each search
    (same moment, so both see the same load on shared cores; the query half the list away,
    so neither finds the other's walk in the CPU caches); its stats go under "plain"."""
    from ragline.db import tenancy
    from ragline.retrieval import search

    latencies: list[float] = []
    found: list[list[str]] = []
    complete = 0
    plans: Counter[str] = Counter()
    n = len(queries.texts)
    for i in range(-warmup, n):
        j = max(i, 0)
        embedder.plan(queries.vectors[j])
        req = search.SearchRequest(query=queries.texts[j], top_k=TOP_K, mode=mode)
        started = time.perf_counter()
        with tenancy.tenant_session(org.org_id, engine=engine, principals=principals) as session:
            result = search.search(session, req, embedder=embedder)
        elapsed = (time.perf_counter() - started) * 1000
        if i < 0:
            continue
        latencies.append(elapsed)
        found.append([str(h.chunk_id) for h in result.hits])
        complete += result.complete
        plans[str(result.plan.get("vector", "-"))] += 1
        if plain is not None:
            # Not the query ragline just ran: the second walk of the same graph region finds
            # it in the CPU caches and ran ~40 % faster (measured both ways round, issue 14).
            # Each side sees each query once, half the list apart.
            plain.run(org, queries.vectors[(j + n // 2) % n])
    extra: dict[str, Any] = {"complete": round(complete / len(found), 4), "plans": dict(plans)}
    if plain is not None:
        order = sorted(range(n), key=lambda k: (k + n // 2) % n)
        extra["plain"] = _stats(
            [plain.latencies[k] for k in order], [plain.found[k] for k in order], truth, sources
        )
    return _stats(latencies, found, truth if mode != "text" else None, sources, extra)


# --------------------------------------------------------------------------- plain pgvector

PLAIN_EF_SEARCH = 200


class PlainReference:
    """The hand-tuned plain pgvector reference on the same table and queries: btree on
    org_id, HNSW with `hnsw.iterative_scan = relaxed_order`, ef_search 200 (session
    settings), the planner free to choose per query, among every index of the table (ragline's
    `ix_chunk_exact_scan` serves it an index-only scan, an org's own graph its walk); one
    autocommit statement per query as the owner (no tenant transaction, no RLS, no join).
    With `principals`, the ACL is one more filter: `acl && principals`."""

    STMT = sa.text(
        "SELECT id FROM chunk WHERE org_id = :org "
        "ORDER BY embedding <=> CAST(:vector AS vector) LIMIT :k"
    )
    ACL_STMT = sa.text(
        "SELECT id FROM chunk WHERE org_id = :org AND acl && CAST(:principals AS text[]) "
        "ORDER BY embedding <=> CAST(:vector AS vector) LIMIT :k"
    )

    def __init__(self, owner: Engine, principals: frozenset[str] | None = None) -> None:
        self._principals = sorted(principals) if principals is not None else None
        self._conn = owner.connect()
        self._conn.execute(sa.text("SET hnsw.iterative_scan = relaxed_order"))
        self._conn.execute(sa.text(f"SET hnsw.ef_search = {PLAIN_EF_SEARCH}"))
        self._conn.commit()
        self._auto = self._conn.execution_options(isolation_level="AUTOCOMMIT")
        self.latencies: list[float] = []
        self.found: list[list[str]] = []

    def run(self, org: OrgData, vector: Any) -> None:
        from ragline.retrieval.spaces import vector_literal  # the fastest text form we know

        # Timed from the vector, as ragline's search is: both turn it into pgvector text.
        started = time.perf_counter()
        literal = vector_literal(vector)
        params: dict[str, Any] = {"org": org.org_id, "vector": literal, "k": TOP_K}
        stmt = self.STMT
        if self._principals is not None:
            stmt, params["principals"] = self.ACL_STMT, self._principals
        rows = self._auto.execute(stmt, params).all()
        self.latencies.append((time.perf_counter() - started) * 1000)
        self.found.append([str(r.id) for r in rows])

    def close(self) -> None:
        self._conn.close()


def summary_row(entry: dict[str, Any]) -> dict[str, Any]:
    """The figures issue 14 asks for, per org size."""
    lib, plain = entry["ragline"], entry.get("plain", {})
    peer = entry.get("peer", {}).get("vector_column", {})
    row = {
        "size": entry["size"],
        "plan": ",".join(lib["vector"].get("plans", {})),
        "ragline_p95_ms": lib["vector"]["p95_ms"],
        "plain_p95_ms": plain.get("p95_ms"),
        "ratio_p95": _ratio(lib["vector"]["p95_ms"], plain.get("p95_ms")),
        "recall_mean": lib["vector"]["recall@10"],
        "recall_min": lib["vector"]["recall_min"],
        "plain_recall_mean": plain.get("recall@10"),
        "plain_recall_min": plain.get("recall_min"),
        "hybrid_p95_ms": lib["hybrid"]["p95_ms"],
        "peer_p95_ms": peer.get("p95_ms"),
        "peer_recall_mean": peer.get("recall@10"),
    }
    return row


def print_summary(rows: list[dict[str, Any]]) -> None:
    cols = [
        ("size", "org chunks"),
        ("plan", "plan"),
        ("ragline_p95_ms", "ragline p95"),
        ("plain_p95_ms", "plain p95"),
        ("ratio_p95", "ratio"),
        ("recall_mean", "recall mean"),
        ("recall_min", "recall min"),
        ("plain_recall_mean", "plain recall"),
        ("plain_recall_min", "plain min"),
        ("hybrid_p95_ms", "hybrid p95"),
        ("peer_p95_ms", "peer p95"),
    ]
    cells = [[h for _, h in cols]] + [
        ["-" if r[k] is None else str(r[k]) for k, _ in cols] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)), file=sys.stderr)


# --------------------------------------------------------------------------- real vectors


def use_real_vectors(corpus: Corpus, pool: dict[str, Any], seed: int) -> None:
    """Replace the corpus' vectors and texts by real MiniLM chunks (bench/real_vectors.py):
    each org draws distinct chunks from the pool (with replacement only when larger)."""
    rng = np.random.default_rng(seed)
    vectors = pool["vectors"]
    for org in corpus.orgs:
        rows = rng.choice(len(vectors), org.size, replace=org.size > len(vectors))
        corpus.vectors[org.rows] = vectors[rows]
        for i, r in enumerate(rows.tolist()):
            corpus.texts[org.start + i] = pool["texts"][r]


def real_queries(corpus: Corpus, org: OrgData, pool: dict[str, Any], count: int) -> Queries:
    """`count` real questions (embedded as queries); the source is their nearest chunk."""
    rng = np.random.default_rng([org.start, org.size])
    picks = rng.choice(len(pool["queries"]), count, replace=False)
    vectors = pool["query_vectors"][picks].astype(np.float32)
    texts = [pool["queries"][int(i)] for i in picks]
    nearest = [best[0] for best in exact_top_k(corpus, org, vectors, 1)]
    return Queries(org, vectors, nearest, texts)


# --------------------------------------------------------------------------- HTTP


def _api_key(owner: Engine, org: OrgData) -> str:
    from sqlalchemy.orm import Session

    from ragline.db import tenancy
    from ragline.guardrails import apikeys

    with Session(owner) as session, session.begin():
        tenancy.bind_org(session, org.org_id)
        _, raw = apikeys.create_key(session, "bench", ["read"])
    return raw


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"search function exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)  # GET → 405 once it serves
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("search function did not answer")


def run_http(
    url: str,
    owner: Engine,
    corpus: Corpus,
    queries: dict[str, Queries],
    sources: dict[str, list[str]],
    library: dict[str, dict[str, Any]],
    warmup: int = 3,
) -> dict[str, Any]:
    """Latency through the real `search` function (functions-framework, real HTTP)."""
    from ragline.dev import devstack
    from ragline.dev.demo import _post

    home = Path(tempfile.mkdtemp(prefix="rlbh-", dir="/tmp"))
    port = devstack.free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        {
            "DATABASE_URL": url,
            "EMBEDDING_PROVIDER": "hashing",
            "ENVIRONMENT": "test",  # the hashing provider is a test double
            "RAGLINE_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
    )
    proc = devstack.start_function("search", port, env, home / "logs")
    base = f"http://127.0.0.1:{port}/"
    out: dict[str, Any] = {}
    try:
        _wait_http(base, proc)
        for org in corpus.orgs:
            key = _api_key(owner, org)
            q = queries[org.slug]
            per: dict[str, Any] = {}
            for mode in MODES:
                latencies: list[float] = []
                found: list[list[str]] = []
                for i in range(-warmup, len(q.texts)):
                    body = {"query": q.texts[max(i, 0)], "top_k": TOP_K, "mode": mode}
                    started = time.perf_counter()
                    status, reply = _post(base, key, body)
                    elapsed = (time.perf_counter() - started) * 1000
                    if status != 200:
                        raise RuntimeError(f"HTTP search failed: {status} {reply}")
                    if i >= 0:
                        latencies.append(elapsed)
                        found.append([r["chunk_id"] for r in reply["results"]])
                stats = summary_ms(latencies)
                if mode == "text":
                    stats.update(_stats(latencies, found, None, sources[org.slug]))
                    lib = library[org.slug]["text"]
                    stats["overhead_p50_ms"] = round(stats["p50_ms"] - lib["p50_ms"], 2)
                per[mode] = stats
            out[org.slug] = per
    finally:
        devstack.kill(proc.pid)
        shutil.rmtree(home, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- peer


def psycopg_url(url: str) -> str:
    """The same database as a `postgresql+psycopg://` URL (libpq takes a socket dir as host)."""
    parsed = make_url(url)
    sock = parsed.query.get("unix_sock")
    if isinstance(sock, str):
        path = Path(sock)
        port = path.name.rsplit(".", 1)[1]
        return f"postgresql+psycopg://{parsed.username}@/{parsed.database}?host={path.parent}&port={port}"
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def run_peer(
    url: str,
    corpus: Corpus,
    queries: dict[str, Queries],
    python: Path,
    add_sample: int,
) -> dict[str, Any]:
    """Run bench/peer_langchain.py in its own virtualenv; returns its raw output."""
    folder = Path(tempfile.mkdtemp(prefix="rlbp-", dir="/tmp"))
    try:
        np.save(folder / "vectors.npy", corpus.vectors)
        (folder / "texts.json").write_text(json.dumps(corpus.texts))
        row_org = [corpus.orgs[corpus.doc_org[int(d)]].slug for d in corpus.doc_of_chunk]
        meta = {
            "chunk_ids": [str(c) for c in corpus.chunk_ids],
            "row_org": row_org,
            "orgs": [
                {
                    "slug": o.slug,
                    "query_vectors": queries[o.slug].vectors.tolist(),
                    "query_texts": queries[o.slug].texts,
                }
                for o in corpus.orgs
            ],
        }
        (folder / "meta.json").write_text(json.dumps(meta))
        out = folder / "out.json"
        cmd = [str(python), str(BENCH / "peer_langchain.py"), "--url", psycopg_url(url)]
        cmd += ["--data", str(folder), "--out", str(out), "--add-sample", str(add_sample)]
        subprocess.run(cmd, check=True, stdout=sys.stderr)
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def peer_stats(
    raw: dict[str, Any], truth: dict[str, list[list[str]]], sources: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for slug, per in raw["results"].items():
        out[slug] = {
            name: _stats(r["latencies_ms"], r["ids"], truth[slug], sources[slug])
            for name, r in per.items()
        }
    return out


# --------------------------------------------------------------------------- scaling


def _database(url: str, name: str, *, drop: bool = False) -> str:
    admin = sa.create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not drop:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def run_scaling(
    url: str, totals: Sequence[int], mid: int, n_queries: int, model: str
) -> list[dict[str, Any]]:
    """Vector-search latency of a mid-size org (and of one holding a quarter of the table)
    as the table around it grows; fillers are orgs of 5 000 chunks."""
    from ragline.core.config import Settings
    from ragline.db import engine as db
    from ragline.dev import migrate

    out: list[dict[str, Any]] = []
    for total in totals:
        quarter = total // 4
        sizes = [mid] + ([quarter] if quarter > mid else [])
        rest = total - sum(sizes)
        sizes += [5_000] * (rest // 5_000) + ([rest % 5_000] if rest % 5_000 else [])
        say(f"scaling: {total} chunks in {len(sizes)} orgs")
        name = f"bench_scale_{total}"
        scale_url = _database(url, name)
        owner = sa.create_engine(scale_url)
        app = db.build_engine(Settings(database_url=scale_url, db_pool_size=1))
        try:
            migrate.upgrade("head", engine=owner)
            corpus = make_corpus(sizes, seed=total, slug_prefix="scale", model=model)
            timings = load(owner, corpus, progress=say)
            embedder = PlannedEmbedder(model)
            entry: dict[str, Any] = {"total_chunks": total, "load": timings, "orgs": {}}
            for org in corpus.orgs[: 1 + (quarter > mid)]:
                q = make_queries(corpus, org, n_queries)
                truth = [
                    [str(corpus.chunk_ids[r]) for r in t]
                    for t in exact_top_k(corpus, org, q.vectors)
                ]
                srcs = [str(corpus.chunk_ids[r]) for r in q.sources]
                stats = run_library(app, org, q, truth, srcs, "vector", embedder)
                entry["orgs"][str(org.size)] = stats
            out.append(entry)
        finally:
            app.dispose()
            owner.dispose()
            _database(url, name, drop=True)
    return out


# --------------------------------------------------------------------------- permissions

#: Visible chunks of the ACL buckets (issue 18), inside one org of `--acl-org` chunks.
ACL_VISIBLE = (10, 1_000, None)  # None: every chunk of the org
ACL_MODES: tuple[Mode, ...] = ("vector", "hybrid")


def acl_groups(full: Corpus, org: OrgData) -> dict[str, list[Any]]:
    """Every document of `org` is in group `all`; its first documents also in `v<n>` for each
    bucket, so the chunks a member of `v<n>` sees are rows `org.start .. + n` (queries and
    the exact truth come from that slice, `visible_view`)."""
    docs = sorted({int(d) for d in full.doc_of_chunk[org.rows]})
    groups: dict[str, list[Any]] = {"all": [full.doc_ids[d] for d in docs]}
    for visible in ACL_VISIBLE:
        if visible is not None:
            first = docs[: -(-visible // CHUNKS_PER_DOC)]
            groups[f"v{visible}"] = [full.doc_ids[d] for d in first]
    return groups


def visible_view(org: OrgData, visible: int | None) -> OrgData:
    return dataclasses.replace(org, size=org.size if visible is None else min(visible, org.size))


def run_acl(
    app: Engine,
    owner: Engine,
    full: Corpus,
    org: OrgData,
    n_queries: int,
    seed: int,
    embedder: PlannedEmbedder,
) -> list[dict[str, Any]]:
    """Searches of end users who see part of `org` (ACL buckets), as `run_library` measures
    the org buckets; the truth is the exact top-10 among the chunks the user may see."""
    out: list[dict[str, Any]] = []
    for visible in ACL_VISIBLE:
        view = visible_view(org, visible)
        principals = frozenset({"group:all" if visible is None else f"group:v{visible}"})
        say(f"ACL: a user who sees {view.size} of {org.size} chunks")
        q = make_queries(full, view, n_queries, seed=seed + 2)
        truth = [[str(full.chunk_ids[r]) for r in t] for t in exact_top_k(full, view, q.vectors)]
        srcs = [str(full.chunk_ids[r]) for r in q.sources]
        reference = PlainReference(owner, principals)
        lib = {
            mode: run_library(
                app,
                org,
                q,
                truth,
                srcs,
                mode,
                embedder,
                plain=reference if mode == "vector" else None,
                principals=principals,
            )
            for mode in ACL_MODES
        }
        reference.close()
        plain = lib["vector"].pop("plain")
        entry: dict[str, Any] = {
            "size": view.size,
            "org_chunks": org.size,
            "principals": sorted(principals),
            "ragline": lib,
            "plain": plain,
        }
        entry["summary"] = summary_row(entry)
        out.append(entry)
    return out


# --------------------------------------------------------------------------- main


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return round(a / b, 3)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000,100000", help="org sizes (chunks)")
    parser.add_argument("--queries", type=int, default=30, help="queries per org")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-http", action="store_true", help="skip the functions-framework run")
    parser.add_argument("--no-peer", action="store_true", help="skip langchain-postgres")
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON)
    parser.add_argument("--peer-add-sample", type=int, default=300)
    parser.add_argument("--scaling", action="store_true", help="also the table-size scaling run")
    parser.add_argument("--scaling-totals", default="10000,100000")
    parser.add_argument("--scaling-org", type=int, default=1000, help="mid-size org (chunks)")
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument(
        "--vectors",
        choices=("synthetic", "real"),
        default="synthetic",
        help="real: MiniLM vectors of real text chunks and questions (bench/real_vectors.py)",
    )
    parser.add_argument("--real-pool", type=int, default=12_000, help="real chunks embedded")
    parser.add_argument(
        "--fill-to",
        type=int,
        default=0,
        help="add unmeasured orgs of --fill-org chunks until the table holds this many",
    )
    parser.add_argument("--fill-org", type=int, default=100_000)
    parser.add_argument("--maintenance-work-mem", default="1GB", help="for the index builds")
    parser.add_argument(
        "--shared-buffers", default=None, help="the server's buffer cache (default: 128MB)"
    )
    parser.add_argument(
        "--org-graphs",
        action="store_true",
        help="give orgs of 10 000+ chunks a graph of their own first (`ragline org-graphs`)",
    )
    parser.add_argument("--acl", action="store_true", help="also the permission buckets")
    parser.add_argument("--acl-org", type=int, default=100_000, help="chunks of the ACL org")
    args = parser.parse_args(argv)
    exit_on_sigterm()

    from ragline.core.config import Settings, get_settings
    from ragline.db import engine as db
    from ragline.testing.hashing import HASHING_NAME

    sizes = _sizes(args.sizes)
    # Labelled with the hashing provider's name so the HTTP function (EMBEDDING_PROVIDER=
    # hashing, a registered provider) searches the same chunks; the vectors are synthetic.
    model = HASHING_NAME
    notes: list[str] = []
    started = time.monotonic()
    with scratch_database(args.shared_buffers) as url:
        say(f"generating {sum(sizes)} chunks in orgs of {sizes}")
        fill: list[int] = []
        while sum(sizes) + sum(fill) < args.fill_to:
            fill.append(min(args.fill_org, args.fill_to - sum(sizes) - sum(fill)))
        if (fill or args.acl) and not args.no_peer:
            parser.error("--fill-to and --acl need --no-peer (the peer would load those too)")
        extra = [args.acl_org] if args.acl else []
        full = make_corpus(sizes + extra + fill, seed=args.seed, slug_prefix="bench", model=model)
        # Only the orgs of --sizes are measured as orgs; the ACL org through its users;
        # fillers just make the table larger.
        corpus = dataclasses.replace(full, orgs=full.orgs[: len(sizes)])
        acl_org = full.orgs[len(sizes)] if args.acl else None
        pool: dict[str, Any] | None = None
        if args.vectors == "real":
            from real_vectors import load_pool

            pool = load_pool(args.real_pool)
            use_real_vectors(corpus, pool, args.seed)
        owner = sa.create_engine(url)
        say("loading (COPY, then HNSW + GIN builds)")
        load_timings = load(
            owner,
            full,
            progress=say,
            maintenance_work_mem=args.maintenance_work_mem,
            acl_groups=acl_groups(full, acl_org) if acl_org is not None else None,
        )
        graphs: list[str] = []
        if args.org_graphs:
            from ragline.retrieval import orggraphs

            say("org graphs: a partial HNSW index per large org")
            built = time.monotonic()
            with owner.connect() as conn:
                todo = orggraphs.plan(conn)
            orggraphs.apply(
                owner, todo, maintenance_work_mem=args.maintenance_work_mem, progress=say
            )
            load_timings["org_graphs_s"] = round(time.monotonic() - built, 2)
            graphs = [g.name for g, _ in todo.build]
        app = db.build_engine(Settings(database_url=url, db_pool_size=1))
        with owner.connect() as conn:
            shared_buffers = conn.execute(sa.text("SHOW shared_buffers")).scalar()
        embedder = PlannedEmbedder(model)
        queries = {
            o.slug: (
                real_queries(corpus, o, pool, args.queries)
                if pool is not None
                else make_queries(corpus, o, args.queries, seed=args.seed + 1)
            )
            for o in corpus.orgs
        }
        truth = {
            o.slug: [
                [str(corpus.chunk_ids[r]) for r in t]
                for t in exact_top_k(corpus, o, queries[o.slug].vectors, TOP_K)
            ]
            for o in corpus.orgs
        }
        sources = {
            o.slug: [str(corpus.chunk_ids[r]) for r in queries[o.slug].sources] for o in corpus.orgs
        }
        library: dict[str, dict[str, Any]] = {}
        plain: dict[str, Any] = {}
        for org in corpus.orgs:
            say(f"library and plain pgvector: org of {org.size}")
            reference = PlainReference(owner)
            library[org.slug] = {
                mode: run_library(
                    app,
                    org,
                    queries[org.slug],
                    truth[org.slug],
                    sources[org.slug],
                    mode,
                    embedder,
                    plain=reference if mode == "vector" else None,
                )
                for mode in MODES
            }
            reference.close()
            plain[org.slug] = library[org.slug]["vector"].pop("plain")
        http: dict[str, Any] = {}
        if not args.no_http:
            say("HTTP: search function under functions-framework")
            http = run_http(url, owner, corpus, queries, sources, library)
        peer_raw: dict[str, Any] = {}
        peer: dict[str, dict[str, Any]] = {}
        if not args.no_peer:
            if args.peer_python.exists():
                say("peer: langchain-postgres PGVectorStore")
                peer_raw = run_peer(url, corpus, queries, args.peer_python, args.peer_add_sample)
                peer = peer_stats(peer_raw, truth, sources)
            else:
                notes.append(f"peer skipped: {args.peer_python} missing (make bench creates it)")
        acl: list[dict[str, Any]] = []
        if acl_org is not None:
            acl = run_acl(app, owner, full, acl_org, args.queries, args.seed, embedder)
        app.dispose()
        scaling: list[dict[str, Any]] = []
        if args.scaling:
            scaling = run_scaling(
                url, _sizes(args.scaling_totals), args.scaling_org, args.queries, model
            )
        owner.dispose()
    get_settings.cache_clear()

    orgs: list[dict[str, Any]] = []
    for org in corpus.orgs:
        lib = library[org.slug]
        entry: dict[str, Any] = {"size": org.size, "ragline": lib, "plain": plain[org.slug]}
        if http:
            entry["http"] = http[org.slug]
        if peer:
            p = peer[org.slug]
            entry["peer"] = p
            entry["ratios"] = {
                "vector_p95_ragline_over_peer_json": _ratio(
                    lib["vector"]["p95_ms"], p["vector_json"]["p95_ms"]
                ),
                "vector_p95_ragline_over_peer_column": _ratio(
                    lib["vector"]["p95_ms"], p["vector_column"]["p95_ms"]
                ),
                "hybrid_p95_ragline_over_peer": _ratio(
                    lib["hybrid"]["p95_ms"], p["hybrid_column"]["p95_ms"]
                ),
                "vector_recall": {
                    "ragline": lib["vector"]["recall@10"],
                    "peer_json": p["vector_json"]["recall@10"],
                    "peer_column": p["vector_column"]["recall@10"],
                },
            }
        entry["summary"] = summary_row(entry)
        orgs.append(entry)
    print_summary([o["summary"] for o in orgs])
    if acl:
        say(f"ACL buckets: end users of one org of {args.acl_org} chunks (org chunks = visible)")
        print_summary([b["summary"] for b in acl])
    result: dict[str, Any] = {
        "data": {
            **corpus.describe(),
            "vectors": (
                "real MiniLM vectors of real text chunks; queries are real one-line "
                "summaries (bench/real_vectors.py)"
                if args.vectors == "real"
                else corpus.describe()["vectors"]
            ),
            "label_note": "chunks labelled with the hashing "
            "provider's model name so the HTTP function can search them",
        },
        "vectors": args.vectors,
        "sizes": sizes,
        "table_rows": len(full),
        "filler_orgs": fill,
        "shared_buffers": shared_buffers,
        "org_graphs": len(graphs),
        "queries_per_org": args.queries,
        "top_k": TOP_K,
        "cpus": os.cpu_count(),
        "load": load_timings,
        "orgs": orgs,
        "how": {
            "recall@10": "vs the exact top-10 by cosine within the org (numpy, float64)",
            "hit@10": "the chunk the query was made from is among the 10 results",
            "latency": "client side, per query: tenant transaction + search (library); "
            "request → JSON reply (HTTP); the store's sync call (peer)",
            "http": "EMBEDDING_PROVIDER=hashing embeds the query text: text mode is "
            "comparable with the library, vector/hybrid over HTTP are latency only",
            "plain": "hand-tuned plain pgvector on the same table and queries: SELECT id "
            "FROM chunk WHERE org_id = $1 ORDER BY embedding <=> $2 LIMIT 10, btree on "
            "org_id, hnsw.iterative_scan = relaxed_order, ef_search 200, planner free "
            "(it also uses ragline's indexes: ix_chunk_exact_scan index-only, own graphs), "
            "one autocommit statement per query as the owner (no RLS, no join), timed "
            "from the vector (its pgvector text included, as in ragline); ratio_p95 = "
            "ragline vector p95 / plain p95",
            "peer": "langchain-postgres PGVectorStore (v2) in bench/.venv-peer; json = org in "
            "its JSON metadata (quickstart), column = org as a metadata column; default "
            "hnsw.ef_search (40); hybrid = its RRF over 50 + 50 candidates",
        },
        "notes": notes,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    if peer_raw:
        result["peer"] = {
            "version": peer_raw.get("langchain_postgres"),
            "add_embeddings": peer_raw.get("add_embeddings"),
            "load": peer_raw.get("load"),
        }
    if scaling:
        result["scaling"] = scaling
    if acl:
        result["acl"] = acl
        result["how"]["acl"] = (
            "one more org of --acl-org chunks, every document with an ACL; per bucket an end "
            "user (app.principals = one group) who sees `size` chunks; queries are perturbed "
            "members of the visible chunks; recall@10 vs the exact top-10 among them; plain = "
            "the reference with `AND acl && principals`, as the owner"
        )
    if args.no_record:
        print(json.dumps(result, indent=2))
    else:
        record("search", result)
    return result


if __name__ == "__main__":
    main()
