"""End-to-end ingestion throughput on the real local stack, against the bare embedder.

Starts the local stack (`ragline.dev.devstack.start()` in a temporary RAGLINE_HOME: embedded
Postgres, the Cloud Tasks emulator, one functions-framework process per function) with the
default embedder, ingests Python's reference topics over HTTP (repeated as "Variant k." copies,
so content hashes differ, until `--chunks` is reached), waits until every document is ready
(polling the documents list, 200 per page), and reports end-to-end chunks/s and the per-stage
split from each document's `timings`. Then, with the stack stopped, it embeds the very same
chunks in-process with `get_embedder()` (batches of EMBED_BATCH_CHUNKS, as the embed stage)
and reports the bare chunks/s and the pipeline/bare ratio.

    .venv/bin/python bench/ingest.py [--chunks 1000] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import exit_on_sigterm, record


def say(message: str) -> None:
    print(f"[ingest] {message}", file=sys.stderr, flush=True)


def build_corpus(target_chunks: int, max_tokens: int, overlap: int) -> list[dict[str, Any]]:
    """Documents (title, text, chunk texts) until `target_chunks` chunks are reached: the
    pydoc topics, then "Variant k." copies of them (distinct content hashes)."""
    from ragline.dev.corpus import pydoc_topics
    from ragline.ingest.chunking import split_document

    topics = pydoc_topics()
    docs: list[dict[str, Any]] = []
    seen: set[str] = set()
    total = 0
    copy = 0
    while total < target_chunks:
        for title, text in topics:
            body = text if copy == 0 else f"Variant {copy}.\n\n{text}"
            if body in seen:  # a few topics share their text: one document, as in the demo
                continue
            seen.add(body)
            pieces = [
                p.text for p in split_document(body, max_tokens=max_tokens, overlap_tokens=overlap)
            ]
            name = title if copy == 0 else f"{title} (variant {copy})"
            docs.append({"title": name, "text": body, "chunks": pieces})
            total += len(pieces)
            if total >= target_chunks:
                break
        copy += 1
    return docs


def list_statuses(stack: Any, ids: set[str]) -> dict[str, str]:
    """Status of our documents, read from the list endpoint (200 per page)."""
    from ragline.dev import devstack

    statuses: dict[str, str] = {}
    cursor = ""
    while True:
        query = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        url = stack.functions["documents"] + "?" + urllib.parse.urlencode(query)
        page: dict[str, Any] = devstack.get_json(url, stack.api_key)
        for doc in page["documents"]:
            if doc["id"] in ids:
                statuses[doc["id"]] = doc["status"]
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return statuses


def stored_models(database_url: str, ids: list[str]) -> set[str]:
    """`chunk.embedding_model` of our documents (read as the owner: a bench, not a tenant)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT DISTINCT embedding_model FROM chunk "
                    "WHERE document_id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": ids},
            ).scalars()
            return {str(r) for r in rows}
    finally:
        engine.dispose()


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "sum": round(sum(values), 1),
        "median": round(statistics.median(values), 1) if values else 0.0,
    }


def cpu_by_part() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each part of the local stack, read from
    /proc: each function by name, postgres, the tasks emulator, the rest of this machine."""
    tick = os.sysconf("SC_CLK_TCK")
    parts: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if "--target=" in cmd:
            part = cmd.split("--target=", 1)[1].split()[0]
        elif "postgres" in stat.split(")")[0] or "postgres" in cmd.split(" ", 1)[0]:
            part = "postgres"
        elif "tasks_emulator" in cmd or "gcloud-tasks-emulator" in cmd:
            part = "tasks emulator"
        else:
            part = "other"
        parts[part] = parts.get(part, 0.0) + seconds
    return parts


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per part, CPU seconds between two `cpu_by_part` readings (largest first); processes
    that ended in between are not counted."""
    used = {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in used.items() if v >= 0.05), key=lambda kv: -kv[1]))


def bare_embed(docs: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """The same chunks through `get_embedder()` in this process, EMBED_BATCH_CHUNKS at a time."""
    from ragline.retrieval.embeddings import get_embedder

    started = time.perf_counter()
    embedder = get_embedder()
    load_s = time.perf_counter() - started
    embedder.embed(["warm up"])
    chunks = [c for d in docs for c in d["chunks"]]
    started = time.perf_counter()
    cpu_started = time.process_time()
    for doc in docs:
        pieces = doc["chunks"]
        for first in range(0, len(pieces), batch):
            embedder.embed(pieces[first : first + batch], kind="document")
    seconds = time.perf_counter() - started
    return {
        "model": embedder.name,
        "load_s": round(load_s, 2),
        "chunks": len(chunks),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "chunks_per_s": round(len(chunks) / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000, help="target chunk count (≥)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for ready")
    parser.add_argument(
        "--poll",
        type=float,
        default=2.0,
        help="seconds between status polls (the end time is the last document's updated_at, "
        "so polling only decides when the bench notices; rarer polls load the stack less)",
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    exit_on_sigterm()

    home = Path(tempfile.mkdtemp(prefix="rlbi-", dir="/tmp"))
    for name in ("DATABASE_URL", "QUEUE_BACKEND"):
        os.environ.pop(name, None)
    os.environ["RAGLINE_HOME"] = str(home)
    os.environ.setdefault("EMBEDDING_PROVIDER", "minilm")

    from ragline.core.config import get_settings
    from ragline.db import engine as db
    from ragline.dev import devstack
    from ragline.dev.demo import _post, wait_all_ready

    get_settings.cache_clear()
    settings = get_settings()
    docs = build_corpus(args.chunks, settings.chunk_tokens, settings.chunk_overlap_tokens)
    n_chunks = sum(len(d["chunks"]) for d in docs)
    # The bare embedder runs before the stack starts and again after it stopped: the two
    # bracket the pipeline in time, so load from other work on a shared machine weighs on
    # both sides alike (the ratio uses their mean).
    say("bare embedder, before the stack starts")
    bare_before = bare_embed(docs, settings.embed_batch_chunks)
    say(f"{len(docs)} documents, {n_chunks} chunks; starting the local stack in {home}")
    stack = devstack.start(progress=lambda m: say(f"  {m}"))
    try:
        # Warm-up, as the bare embedder gets one: a first document through every stage, so
        # first-request imports and connections are not timed (an idle stack warms up once).
        _, warm = _post(
            stack.functions["ingest"],
            stack.api_key,
            {"title": "warm-up", "text": f"Warm-up document {time.time()}.", "kind": "warm-up"},
        )
        wait_all_ready(stack, [warm["document_id"]], 120, lambda _n: None)
        cpu_before = cpu_by_part()
        started = time.monotonic()
        started_wall = time.time()
        ids: list[str] = []
        for doc in docs:
            status, body = _post(
                stack.functions["ingest"],
                stack.api_key,
                {"title": doc["title"], "text": doc["text"], "kind": "python-reference"},
            )
            if status not in (200, 202):
                raise RuntimeError(f"ingest of {doc['title']!r} failed: {status} {body}")
            ids.append(body["document_id"])
        posted_s = time.monotonic() - started
        say(f"posted {len(ids)} documents in {posted_s:.1f}s; waiting for ready")
        pending = set(ids)
        polls = 0
        deadline = started + args.timeout
        while True:
            statuses = list_statuses(stack, pending)
            polls += 1
            pending = {i for i in pending if statuses.get(i) not in ("ready", "failed")}
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(args.poll)
        elapsed = time.monotonic() - started
        cpu = cpu_used(cpu_before, cpu_by_part())
        if pending:
            raise TimeoutError(f"{len(pending)} documents not ready after {args.timeout:.0f}s")
        say(f"all ready after {elapsed:.1f}s ({polls} list polls); reading timings")
        final = wait_all_ready(stack, ids, 60, lambda _n: None)  # GET /<id>: timings, counts
        models = stored_models(stack.database_url, ids)
    finally:
        devstack.stop(stack)
        db.reset_engines()
    observed_s = elapsed
    # The pipeline ended when the last document became ready (its server-side updated_at),
    # not when the poller noticed: same machine, same clock.
    import datetime as dt

    last_ready = max(dt.datetime.fromisoformat(d["updated_at"]).timestamp() for d in final.values())
    elapsed = min(observed_s, max(0.001, last_ready - started_wall))
    failed = [d for d in final.values() if d["status"] != "ready"]
    chunks = sum(int(d["chunks"]["total"]) for d in final.values())
    timings = [d.get("timings") or {} for d in final.values()]
    stages = {
        key: _summary([float(t[key]) for t in timings if key in t])
        for key in ("chunk_ms", "embed_ms", "embed_model_ms", "total_ms")
    }
    pipeline_cps = chunks / elapsed
    say("embedding the same chunks in-process with the bare embedder")
    bare_after = bare_embed(docs, settings.embed_batch_chunks)
    bare = dict(bare_after)
    bare["seconds"] = round((bare_before["seconds"] + bare_after["seconds"]) / 2, 1)
    bare["chunks_per_s"] = round(bare["chunks"] / bare["seconds"], 2)
    bare["cpu_seconds"] = round((bare_before["cpu_seconds"] + bare_after["cpu_seconds"]) / 2, 1)
    bare["runs"] = {
        "before_chunks_per_s": bare_before["chunks_per_s"],
        "after_chunks_per_s": bare_after["chunks_per_s"],
    }
    if os.environ.get("BENCH_KEEP_HOME"):
        say(f"kept {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    result = {
        "corpus": "pydoc_data.topics, repeated as 'Variant k.' copies",
        "documents": len(final),
        "failed": len(failed),
        "chunks": chunks,
        "chunks_expected": n_chunks,
        "embedder": bare["model"],
        "stored_models": sorted({str(m) for m in models}),
        "cpus": os.cpu_count(),
        "pipeline": {
            "seconds": round(elapsed, 1),
            "observed_seconds": round(observed_s, 1),
            "post_seconds": round(posted_s, 1),
            "chunks_per_s": round(pipeline_cps, 2),
            "status_polls": polls,
            "stages_ms": stages,
            "cpu_seconds": cpu,
            "cpu_seconds_total": round(sum(cpu.values()), 1),
            "local_dispatches": settings.task_local_dispatches,
            "embed_share_of_stage_time": round(
                stages["embed_ms"]["sum"]
                / max(1.0, stages["embed_ms"]["sum"] + stages["chunk_ms"]["sum"]),
                3,
            ),
        },
        "bare_embedder": bare,
        "ratio_pipeline_over_bare": round(pipeline_cps / bare["chunks_per_s"], 3),
        "how": {
            "pipeline": "first POST → every document ready (HTTP ingest, Cloud Tasks emulator, "
            "chunk/embed/finalize functions, embedded Postgres); the end is the last "
            "document's server-side updated_at (observed_seconds: when the poller saw it)",
            "stages_ms": "from GET /<id> timings: chunk_ms and embed_ms are summed stage "
            "handler times (embed over its batches), embed_model_ms the model calls alone, "
            "total_ms is created → ready per document",
            "bare_embedder": "same chunk texts, same batches, in-process, once before the stack "
            "started and once after it stopped; seconds = their mean",
            "cpu_seconds": "per part of the stack, from /proc, first POST to the last poll "
            "(the machine's CPU-seconds: the pipeline is CPU-bound when their total is close "
            "to cpus x seconds)",
        },
    }
    if args.no_record:
        import json

        print(json.dumps(result, indent=2))
    else:
        record("ingest", result)


if __name__ == "__main__":
    main()
