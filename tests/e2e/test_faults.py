"""Issue 16: faults during ingestion on the real local stack end with every document ready
and exactly the chunker's chunks, counted in SQL (bench/faults.py measures the same runs)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from ragline.db import engine as db
from ragline.dev import chaos, devstack

from ..integration.helpers import Tenant, make_tenant
from .conftest import call, wait_ready
from .test_pipeline_stack import expected_chunks, ingest, topic_docs

pytestmark = pytest.mark.e2e


def counts(ids: list[str]) -> dict[str, tuple[int, int, int]]:
    with db.owner_session() as s:
        rows = s.execute(
            sa.text(
                "SELECT document_id::text, count(*), count(embedding), count(DISTINCT ord) "
                "FROM chunk WHERE document_id = ANY(CAST(:ids AS uuid[])) GROUP BY document_id"
            ),
            {"ids": ids},
        ).all()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def start_batch(stack: devstack.Stack, slug: str, n: int, offset: int) -> tuple[Tenant, Any]:
    tenant = make_tenant(f"{slug}-{uuid.uuid4().hex[:6]}")
    tag = uuid.uuid4().hex
    docs = [(title, f"{tag}\n\n{text}") for title, text in topic_docs(n, offset=offset)]
    ids = [ingest(stack, tenant, title, text)["document_id"] for title, text in docs]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(c[1] for c in counts(ids).values()):
        time.sleep(0.05)
    return tenant, list(zip(ids, docs, strict=True))


def assert_all_ready(stack: devstack.Stack, tenant: Tenant, batch: Any) -> None:
    ids = [doc_id for doc_id, _ in batch]
    final = wait_ready(stack, tenant.key, ids, timeout=240)
    found = counts(ids)
    for doc_id, (_, text) in batch:
        n = expected_chunks(text)
        assert final[doc_id]["status"] == "ready", final[doc_id]
        assert found[doc_id] == (n, n, n)


def test_embed_killed_for_eleven_seconds(stack: devstack.Stack) -> None:
    tenant, batch = start_batch(stack, "e2e-kill11", 4, 50)
    chaos.kill_function(stack, "embed", 11)
    assert_all_ready(stack, tenant, batch)


def test_database_stopped_for_ten_seconds(stack: devstack.Stack) -> None:
    tenant, batch = start_batch(stack, "e2e-dbstop", 4, 60)
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            try:
                status = call(stack.functions["health"] + "ready")[0]
            except OSError:
                status = 0
            samples.append((time.monotonic(), status))
            time.sleep(0.1)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    stopped_at = time.monotonic()
    stopped = chaos.stop_database(stack)
    time.sleep(10)
    started_at = time.monotonic()
    chaos.start_database(stopped)
    db.reset_engines()
    time.sleep(3)
    done.set()
    thread.join()
    first_503 = next(t for t, s in samples if t >= stopped_at and s == 503)
    first_200 = next(t for t, s in samples if t >= started_at and s == 200)
    assert first_503 - stopped_at <= 2.0
    assert first_200 - started_at <= 2.0
    assert_all_ready(stack, tenant, batch)


def test_emulator_restart_loses_the_queue_and_reconcile_recovers(stack: devstack.Stack) -> None:
    tenant, batch = start_batch(stack, "e2e-emu", 4, 70)
    chaos.restart_emulator(stack)
    assert_all_ready(stack, tenant, batch)


def test_every_stage_fails_its_first_attempt(stack: devstack.Stack) -> None:
    env = {"ENVIRONMENT": "test", "FAULT_INJECT": "chunk:1,embed:1,finalize:1"}
    for stage in ("chunk", "embed", "finalize"):
        devstack.restart_function(stack, stage, extra_env=env)
    try:
        tenant, batch = start_batch(stack, "e2e-first", 4, 80)
        assert_all_ready(stack, tenant, batch)
    finally:
        for stage in ("chunk", "embed", "finalize"):
            devstack.restart_function(stack, stage)
