"""Mixed traffic on the real local stack (issue 16): search, ingest and document listing from
N concurrent clients for `--duration` seconds at each of `--clients` (8, 16, 32), after a
single-client search baseline.

Reports per level: requests/s, p50/p95/p99 per kind, responses by status (429 apart from the
other 4xx, 5xx counted), then waits for every acknowledged ingest to be ready and counts in
SQL that each has exactly the chunker's chunks (no document lost or duplicated). Goals: 0 5xx,
0 lost or duplicated documents, p95 search latency at 16 clients at most 4 times its
single-client value.
Appends one JSON line to bench/results/load.jsonl.

    PYTHONPATH=shared .venv/bin/python bench/load.py [--duration 60] [--clients 8 16 32]

Clients honour Retry-After on a 429 (an instance at its concurrency limit refuses at once,
`ragline.guardrails.admission`); 429s are counted apart and are not in the latencies.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import exit_on_sigterm, percentile, record
from faults import expected_chunks, http, new_org, sql_counts, statuses

QUERIES = [
    "how does the with statement call __enter__ and __exit__",
    "what happens when a for loop exhausts its iterator",
    "integer division and the modulo operator",
    "how are default argument values evaluated",
    "what does the yield expression do in a generator",
    "exception handling with try except finally",
]
MIX = (("search", 0.6), ("ingest", 0.2), ("list", 0.2))
#: Longest pause a client takes on a 429 (it honours Retry-After up to this).
RETRY_CAP_S = 5.0


def say(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


class Level:
    """What the clients of one level saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {k: [] for k, _ in MIX}
        self.statuses: Counter[str] = Counter()
        self.ingested: list[tuple[str, int]] = []  # (document id, expected chunks)

    def add(self, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds * 1000)
            self.statuses[f"{kind} {status}"] += 1


def client(
    stack: Any, keys: tuple[str, str], level: Level, until: float, kinds: tuple[str, ...]
) -> None:
    """One closed-loop client: searches with keys[0] (a fixed corpus), the rest with keys[1]."""
    search_key, key = keys
    rng = random.Random()
    topics = _topics()
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights=[w for k, w in MIX if k in kinds])[0]
        started = time.perf_counter()
        headers: dict[str, str] = {}
        if kind == "search":
            body = {"query": rng.choice(QUERIES), "top_k": 5}
            status, _ = http(
                stack.functions["search"],
                method="POST",
                body=body,
                key=search_key,
                reply_headers=headers,
            )
        elif kind == "ingest":
            title, text = rng.choice(topics)
            text = f"Load {uuid.uuid4().hex}.\n\n{text[:3000]}"
            status, reply = http(
                stack.functions["ingest"],
                method="POST",
                body={"title": title, "text": text},
                key=key,
                reply_headers=headers,
            )
            if status in (200, 202) and reply:
                with level.lock:
                    level.ingested.append((reply["document_id"], expected_chunks(text)))
        else:
            query = urllib.parse.urlencode({"limit": 50})
            status, _ = http(
                stack.functions["documents"] + "?" + query, key=key, reply_headers=headers
            )
        level.add(kind, status, time.perf_counter() - started)
        if status == 429:
            # A well-behaved client waits as told (an instance at its concurrency limit says
            # 1 s; a rate limit says when its bucket refills), capped for the run's sake.
            time.sleep(min(float(headers.get("Retry-After", "1") or 1), RETRY_CAP_S))


_TOPICS: list[tuple[str, str]] = []


def _topics() -> list[tuple[str, str]]:
    if not _TOPICS:
        from pydoc_data.topics import topics

        _TOPICS.extend((name, text) for name, text in sorted(topics.items()) if len(text) > 500)
    return _TOPICS


def run_level(
    stack: Any, keys: tuple[str, str], clients: int, seconds: float, kinds: tuple[str, ...]
) -> tuple[Level, float]:
    level = Level()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(stack, keys, level, until, kinds), daemon=True)
        for _ in range(clients)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return level, time.monotonic() - started


def summarise(level: Level, elapsed: float) -> dict[str, Any]:
    by_code: Counter[str] = Counter()
    for label, n in level.statuses.items():
        code = int(label.split()[1])
        bucket = (
            "429"
            if code == 429
            else "2xx"
            if 200 <= code < 300
            else "4xx"
            if 400 <= code < 500
            else "5xx"
            if code >= 500
            else "no_answer"
        )
        by_code[bucket] += n
    total = sum(level.statuses.values())
    return {
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "by_code": dict(by_code),
        "by_kind_status": dict(level.statuses),
        "latency_ms": {
            kind: {
                "n": len(v),
                "p50": round(percentile(v, 0.50), 1),
                "p95": round(percentile(v, 0.95), 1),
                "p99": round(percentile(v, 0.99), 1),
            }
            for kind, v in level.latencies.items()
            if v
        },
    }


def check_documents(stack: Any, key: str, level: Level, timeout: float) -> dict[str, Any]:
    """Every acknowledged ingest ready, with exactly the chunker's chunks (SQL)."""
    ids = [d for d, _ in level.ingested]
    deadline = time.monotonic() + timeout
    final: dict[str, str] = {}
    while ids and time.monotonic() < deadline:
        final = statuses(stack, key, ids)
        if all(s in ("ready", "failed") for s in final.values()):
            break
        time.sleep(1)
    counts = sql_counts(ids) if ids else {}
    bad = [d for d, n in level.ingested if final.get(d) != "ready" or counts.get(d) != (n, n, n)]
    reasons: Counter[str] = Counter()
    for doc_id in bad[:50]:
        _, doc = http(stack.functions["documents"] + doc_id, key=key)
        doc = doc or {}
        reasons[f"{doc.get('status')}: {doc.get('failure_reason')}: {doc.get('error')}"[:200]] += 1
    return {
        "ingested": len(ids),
        "distinct": len(set(ids)),
        "ready": sum(s == "ready" for s in final.values()),
        "failed": sum(s == "failed" for s in final.values()),
        "lost_or_incomplete": len(bad),
        "why_not_ready": dict(reasons),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--baseline", type=float, default=20.0, help="single-client seconds")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--drain", type=float, default=600.0, help="seconds to wait for ready")
    parser.add_argument(
        "--background-nice",
        type=int,
        default=19,
        help="run the stage functions at this niceness (0: off): on one 2-core machine they "
        "otherwise take the CPU that separate instances give search in Google Cloud "
        "(19, the lowest priority: background work yields whenever a request needs the CPU)",
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    exit_on_sigterm()

    home = Path(tempfile.mkdtemp(prefix="rlbl-", dir="/tmp"))
    if args.background_nice:
        os.environ["RAGLINE_BACKGROUND_NICE"] = str(args.background_nice)
    for name in ("DATABASE_URL", "QUEUE_BACKEND"):
        os.environ.pop(name, None)
    os.environ["RAGLINE_HOME"] = str(home)
    os.environ.setdefault("EMBEDDING_PROVIDER", "minilm")
    from ragline.core.config import get_settings
    from ragline.db import engine as db
    from ragline.dev import devstack

    get_settings.cache_clear()
    stack = devstack.start(progress=lambda m: say(f"  {m}"))
    levels: dict[str, Any] = {}
    try:
        # Two tenants: searches go to one of fixed size, ingests and listings to another, so
        # every level searches the corpus of the single-client baseline (one growing org
        # would make later levels scan more rows, not only share the machine).
        search_key = new_org(f"load-search-{uuid.uuid4().hex[:6]}")
        key = new_org(f"load-ingest-{uuid.uuid4().hex[:6]}")
        say("seeding 20 documents to search")
        seed = Level()
        for title, text in _topics()[:20]:
            status, reply = http(
                stack.functions["ingest"],
                method="POST",
                body={"title": title, "text": text},
                key=search_key,
            )
            if status in (200, 202):
                seed.ingested.append((reply["document_id"], expected_chunks(text)))
        check_documents(stack, search_key, seed, args.drain)
        say(f"single-client search baseline, {args.baseline:.0f}s")
        base, elapsed = run_level(stack, (search_key, key), 1, args.baseline, ("search",))
        levels["1_search_only"] = summarise(base, elapsed)
        for n in args.clients:
            say(f"{n} clients, {args.duration:.0f}s of mixed traffic")
            level, elapsed = run_level(
                stack, (search_key, key), n, args.duration, tuple(k for k, _ in MIX)
            )
            levels[str(n)] = summarise(level, elapsed)
            levels[str(n)]["documents"] = check_documents(stack, key, level, args.drain)
            say(f"  {levels[str(n)]['requests_per_s']} req/s {levels[str(n)]['by_code']}")
    finally:
        devstack.stop(stack)
        db.reset_engines()
        shutil.rmtree(home, ignore_errors=True)
    from ragline.core.config import get_settings
    from ragline.guardrails import admission

    base_p95 = levels["1_search_only"]["latency_ms"]["search"]["p95"]
    p95_16 = levels.get("16", {}).get("latency_ms", {}).get("search", {}).get("p95")
    result = {
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "background_nice": args.background_nice,
        # The functions' admission limit (guardrails/admission.py): what a 429 here means.
        "max_concurrent_requests": admission.limit(),
        "admission_wait_ms": get_settings().admission_wait_ms,
        "mix": dict(MIX),
        "levels": levels,
        "goals": {
            "five_xx": sum(v["by_code"].get("5xx", 0) for v in levels.values()),
            "lost_or_duplicated": sum(
                v["documents"]["lost_or_incomplete"]
                + v["documents"]["ingested"]
                - v["documents"]["distinct"]
                for k, v in levels.items()
                if "documents" in v
            ),
            "search_p95_16_over_1": round(p95_16 / base_p95, 2) if p95_16 and base_p95 else None,
        },
    }
    if args.no_record:
        import json

        print(json.dumps(result, indent=2))
    else:
        record("load", result)


if __name__ == "__main__":
    main()
