"""Faults during ingestion on the real local stack, measured (issue 16).

One local stack (embedded Postgres, Cloud Tasks emulator, functions, the reconcile ticker);
for each scenario a fresh org ingests a batch of documents over HTTP and, once embedding is
under way, the fault strikes:

- `embed_killed`: the embed function is SIGKILLed, kept down `--down` seconds, restarted;
- `db_stopped`: Postgres is stopped for `--db-down` seconds (10) and started again, while
  /ready is polled (503 within 2 s of the stop, 200 within 2 s of the start);
- `emulator_restarted`: the Cloud Tasks emulator is killed and started afresh (every queued
  task is lost: only reconcile can bring the documents home);
- `first_attempt_fails`: every stage raises on its first attempt for every document.

Each ends with every document ready and, counted in SQL against the chunker's own output,
no chunk missing or duplicated; the recovery time (fault over → last document ready) is
recorded. Appends one JSON line to bench/results/faults.jsonl.

    PYTHONPATH=shared .venv/bin/python bench/faults.py [--docs 10] [--only db_stopped]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import exit_on_sigterm, record

SCENARIOS = ("embed_killed", "db_stopped", "emulator_restarted", "first_attempt_fails")


def say(message: str) -> None:
    print(f"[faults] {message}", file=sys.stderr, flush=True)


def corpus(n: int, tag: str) -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    names = sorted(topics)[40 : 40 + n]
    return [(f"{name} ({tag})", f"{tag}.\n\n{topics[name]}") for name in names]


def expected_chunks(text: str) -> int:
    from ragline.core.config import get_settings
    from ragline.ingest.chunking import split_document

    s = get_settings()
    return len(
        split_document(text, max_tokens=s.chunk_tokens, overlap_tokens=s.chunk_overlap_tokens)
    )


def http(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    key: str = "",
    reply_headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """(status, JSON body); the reply's headers go into `reply_headers` when given."""
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            if reply_headers is not None:
                reply_headers.update(resp.headers.items())
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        if reply_headers is not None:
            reply_headers.update(err.headers.items())
        return err.code, None
    except OSError:
        return 0, None


def sql_counts(doc_ids: list[str]) -> dict[str, tuple[int, int, int]]:
    """Per document: (chunks, embedded, distinct ords), read as the owner."""
    import sqlalchemy as sa

    from ragline.db import engine as db

    with db.owner_session() as session:
        rows = session.execute(
            sa.text(
                "SELECT document_id::text, count(*), count(embedding), count(DISTINCT ord) "
                "FROM chunk WHERE document_id = ANY(CAST(:ids AS uuid[])) GROUP BY document_id"
            ),
            {"ids": doc_ids},
        ).all()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def statuses(stack: Any, key: str, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for doc_id in ids:
        status, body = http(stack.functions["documents"] + doc_id, key=key)
        out[doc_id] = str(body["status"]) if status == 200 and body else "unknown"
    return out


def new_org(slug: str) -> str:
    """A fresh org with a read/write API key (generous rate limits: faults, not limits)."""
    from ragline.db import engine as db
    from ragline.db import orgs, tenancy
    from ragline.guardrails import apikeys

    limits = {"rate_limits": {"crud": 100_000, "agent": 100_000}}
    with db.owner_session() as session:
        org_id, _ = orgs.ensure_org(session, slug, settings=limits)
        tenancy.bind_org(session, org_id)
        _, raw = apikeys.create_key(session, "faults", ["read", "write"])
    return raw


class ReadyProbe(threading.Thread):
    """Polls /ready every 0.1 s, keeping (monotonic time, status) pairs."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.samples, self.stop = url, [], threading.Event()
        self.samples: list[tuple[float, int]]

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), http(self.url)[0]))
            time.sleep(0.1)

    def first(self, after: float, want: int) -> float | None:
        for at, status in self.samples:
            if at >= after and status == want:
                return round(at - after, 2)
        return None


def run_scenario(stack: Any, name: str, n_docs: int, args: argparse.Namespace) -> dict[str, Any]:
    from ragline.db import engine as db
    from ragline.dev import chaos, devstack

    key = new_org(f"faults-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}")
    docs = corpus(n_docs, f"{name} {uuid.uuid4().hex[:8]}")
    expected = [expected_chunks(text) for _, text in docs]
    extra: dict[str, Any] = {}
    if name == "first_attempt_fails":
        env = {"ENVIRONMENT": "test", "FAULT_INJECT": "chunk:1,embed:1,finalize:1"}
        for stage in ("chunk", "embed", "finalize"):
            devstack.restart_function(stack, stage, extra_env=env)
    ids: list[str] = []
    started = time.monotonic()
    for title, text in docs:
        status, body = http(
            stack.functions["ingest"], method="POST", body={"title": title, "text": text}, key=key
        )
        if status not in (200, 202):
            raise RuntimeError(f"ingest failed: {status}")
        ids.append(body["document_id"])
    # Strike once embedding is under way (some vectors written), as the trials did.
    while time.monotonic() - started < 120 and not any(c[1] for c in sql_counts(ids).values()):
        time.sleep(0.05)
    fault_at = time.monotonic()
    if name == "embed_killed":
        chaos.kill_function(stack, "embed", args.down)
    elif name == "db_stopped":
        probe = ReadyProbe(stack.functions["health"] + "ready")
        probe.start()
        time.sleep(0.5)
        stopped_at = time.monotonic()
        stopped = chaos.stop_database(stack)
        time.sleep(args.db_down)
        restart_at = time.monotonic()
        chaos.start_database(stopped)
        db.reset_engines()
        time.sleep(3)
        probe.stop.set()
        extra["ready_503_after_stop_s"] = probe.first(stopped_at, 503)
        extra["ready_200_after_start_s"] = probe.first(restart_at, 200)
    elif name == "emulator_restarted":
        chaos.restart_emulator(stack, args.down)
    fault_over = time.monotonic()
    deadline = fault_over + args.timeout
    final: dict[str, str] = {}
    while time.monotonic() < deadline:
        final = statuses(stack, key, ids)
        if all(s in ("ready", "failed") for s in final.values()):
            break
        time.sleep(0.5)
    done = time.monotonic()
    if name == "first_attempt_fails":
        for stage in ("chunk", "embed", "finalize"):
            devstack.restart_function(stack, stage)
    counts = sql_counts(ids)
    problems = []
    for doc_id, n in zip(ids, expected, strict=True):
        got = counts.get(doc_id, (0, 0, 0))
        if final.get(doc_id) != "ready" or got != (n, n, n):
            problems.append({"document": doc_id, "status": final.get(doc_id), "sql": got, "n": n})
    result = {
        "documents": len(ids),
        "chunks_expected": sum(expected),
        "ready": sum(s == "ready" for s in final.values()),
        "failed": sum(s == "failed" for s in final.values()),
        "stuck": sum(s not in ("ready", "failed") for s in final.values()),
        "chunks_missing_or_duplicated": len(problems),
        "fault_s": round(fault_over - fault_at, 2),
        "recovery_s": round(done - fault_over, 2),
        "total_s": round(done - started, 2),
        "ok": not problems,
        **extra,
    }
    if problems:
        result["problems"] = problems[:5]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--down", type=float, default=11.0, help="seconds a killed part stays down")
    parser.add_argument("--db-down", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--only", choices=SCENARIOS, action="append")
    parser.add_argument("--stall", type=float, default=15.0, help="RECONCILE_STALL_S locally")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    exit_on_sigterm()

    home = Path(tempfile.mkdtemp(prefix="rlbf-", dir="/tmp"))
    for name in ("DATABASE_URL", "QUEUE_BACKEND"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "RAGLINE_HOME": str(home),
            "RECONCILE_STALL_S": str(args.stall),
            "EMBEDDING_PROVIDER": os.environ.get("EMBEDDING_PROVIDER", "minilm"),
        }
    )
    from ragline.core.config import get_settings
    from ragline.db import engine as db
    from ragline.dev import devstack

    get_settings.cache_clear()
    stack = devstack.start(progress=lambda m: say(f"  {m}"))
    results: dict[str, Any] = {}
    try:
        for name in args.only or SCENARIOS:
            say(f"scenario {name}: {args.docs} documents")
            results[name] = run_scenario(stack, name, args.docs, args)
            say(f"  {results[name]}")
    finally:
        devstack.stop(stack)
        db.reset_engines()
        shutil.rmtree(home, ignore_errors=True)
    summary = {
        "cpus": os.cpu_count(),
        "embedder": get_settings().embedding_provider,
        "reconcile_stall_s": args.stall,
        "scenarios": results,
        "all_ok": all(r["ok"] for r in results.values()),
    }
    if args.no_record:
        import json

        print(json.dumps(summary, indent=2))
    else:
        record("faults", summary)


if __name__ == "__main__":
    main()
