"""The ingestion pipeline end to end on the real local stack."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from ragline.cloud.gcp.cloud_tasks import TASK_SECRET_HEADER
from ragline.core.config import get_settings
from ragline.db import engine as db
from ragline.db import tenancy
from ragline.db.models import Chunk
from ragline.dev import devstack
from ragline.ingest.chunking import split_document

from ..integration.helpers import Tenant, make_tenant
from .conftest import call, wait_ready

pytestmark = pytest.mark.e2e


def topic_docs(n: int, offset: int = 0) -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    names = sorted(topics)[offset : offset + n]
    return [(name, topics[name]) for name in names]


def ingest(stack: devstack.Stack, tenant: Tenant, title: str, text: str) -> dict[str, Any]:
    status, body, _ = call(
        stack.functions["ingest"],
        method="POST",
        body={"title": title, "text": text},
        headers=tenant.headers,
    )
    assert status == 202, body
    return body


def chunk_ords(org_id: uuid.UUID, doc_id: str) -> list[int]:
    with tenancy.tenant_session(org_id) as s:
        return list(
            s.scalars(
                sa.select(Chunk.ord)
                .where(Chunk.document_id == uuid.UUID(doc_id), Chunk.embedding.is_not(None))
                .order_by(Chunk.ord)
            )
        )


def expected_chunks(text: str) -> int:
    s = get_settings()
    return len(
        split_document(text, max_tokens=s.chunk_tokens, overlap_tokens=s.chunk_overlap_tokens)
    )


def test_documents_reach_ready_with_exact_chunks(stack: devstack.Stack) -> None:
    tenant = make_tenant("e2e-ready")
    docs = topic_docs(4)
    ids = [ingest(stack, tenant, title, text)["document_id"] for title, text in docs]
    final = wait_ready(stack, tenant.key, ids)
    for (_, text), doc_id in zip(docs, ids, strict=True):
        n = expected_chunks(text)
        assert final[doc_id]["status"] == "ready", final[doc_id]
        assert final[doc_id]["chunks"] == {"total": n, "embedded": n}
        assert chunk_ords(tenant.org_id, doc_id) == list(range(n))


def test_stage_failing_its_first_attempt_still_ends_with_one_set(stack: devstack.Stack) -> None:
    tenant = make_tenant("e2e-fault")
    devstack.restart_function(stack, "embed", extra_env={"FAULT_INJECT": "embed:1"})
    devstack.restart_function(stack, "chunk", extra_env={"FAULT_INJECT": "chunk:1"})
    try:
        ((title, text),) = topic_docs(1, offset=10)
        doc_id = ingest(stack, tenant, title, text)["document_id"]
        final = wait_ready(stack, tenant.key, [doc_id])
    finally:
        devstack.restart_function(stack, "embed")
        devstack.restart_function(stack, "chunk")
    n = expected_chunks(text)
    assert final[doc_id]["status"] == "ready"
    assert chunk_ords(tenant.org_id, doc_id) == list(range(n))


def test_duplicate_and_concurrent_task_delivery(stack: devstack.Stack) -> None:
    """The same chunk task delivered 4 times at once, and again later: one set of chunks."""
    tenant = make_tenant("e2e-dupe")
    ((title, text),) = topic_docs(1, offset=20)
    doc_id = ingest(stack, tenant, title, text)["document_id"]
    body = {"org_id": str(tenant.org_id), "document_id": doc_id}
    headers = {TASK_SECRET_HEADER: stack.task_secret}
    statuses: list[int] = []

    def deliver() -> None:
        statuses.append(
            call(stack.functions["chunk"], method="POST", body=body, headers=headers)[0]
        )

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = wait_ready(stack, tenant.key, [doc_id])
    deliver()
    for batch in range(2):
        call(stack.functions["embed"], method="POST", body=body | {"batch": batch}, headers=headers)
    call(stack.functions["finalize"], method="POST", body=body, headers=headers)
    assert set(statuses) == {200}
    n = expected_chunks(text)
    assert final[doc_id]["status"] == "ready"
    assert chunk_ords(tenant.org_id, doc_id) == list(range(n))
    with db.owner_session() as s:
        total = s.scalar(
            sa.select(sa.func.count())
            .select_from(Chunk)
            .where(Chunk.document_id == uuid.UUID(doc_id))
        )
    assert total == n


def test_killed_function_restarted_lets_pipeline_finish(stack: devstack.Stack) -> None:
    tenant = make_tenant("e2e-kill")
    docs = topic_docs(3, offset=30)
    ids = [ingest(stack, tenant, title, text)["document_id"] for title, text in docs]
    # Wait until embedding is under way, then crash the embed function and bring it back.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(chunk_ords(tenant.org_id, i) for i in ids):
        time.sleep(0.05)
    devstack.restart_function(stack, "embed", hard=True)
    embedded_at_kill = sum(len(chunk_ords(tenant.org_id, i)) for i in ids)
    expected_total = sum(expected_chunks(text) for _, text in docs)
    # The crash must have interrupted work: some chunks embedded, some not yet.
    assert 0 < embedded_at_kill < expected_total, (embedded_at_kill, expected_total)
    final = wait_ready(stack, tenant.key, ids)
    for (_, text), doc_id in zip(docs, ids, strict=True):
        n = expected_chunks(text)
        assert final[doc_id]["status"] == "ready", final[doc_id]
        assert chunk_ords(tenant.org_id, doc_id) == list(range(n))


@pytest.mark.parametrize(
    ("name", "kwargs", "status"),
    [
        ("empty text", {"body": {"title": "t", "text": ""}}, 422),
        ("invalid json", {"raw": b"{nope"}, 400),
        ("wrong content type", {"raw": b"<x/>", "content_type": "application/xml"}, 415),
        ("invalid utf-8", {"raw": b"\xff\xfe\xfd", "content_type": "text/plain"}, 400),
        ("oversized", {"raw": b"x" * (10 * 1024 * 1024 + 10), "content_type": "text/plain"}, 413),
    ],
)
def test_bad_input_over_http(
    stack: devstack.Stack, name: str, kwargs: dict[str, Any], status: int
) -> None:
    tenant = make_tenant("e2e-bad")
    got, body, headers = call(
        stack.functions["ingest"] + "?title=t", method="POST", headers=tenant.headers, **kwargs
    )
    assert got == status, body
    assert set(body["error"]) >= {"code", "message"}
    assert headers.get("X-Request-Id")


def test_unknown_document_is_404(stack: devstack.Stack) -> None:
    tenant = make_tenant("e2e-bad")
    got, body, _ = call(stack.functions["documents"] + str(uuid.uuid4()), headers=tenant.headers)
    assert got == 404 and body["error"]["code"] == "not_found"


def test_parallel_identical_posts_over_http_make_one_document(stack: devstack.Stack) -> None:
    """20 identical POSTs with one Idempotency-Key: one document; every answer is that
    response, its replay, or a 409 with Retry-After; never a 5xx. A request the instance
    refuses at its concurrency limit (429 overloaded, before any work) is sent again after
    its Retry-After, as a client does."""
    from concurrent.futures import ThreadPoolExecutor

    tenant = make_tenant("e2e-idem")
    headers = tenant.headers | {"Idempotency-Key": f"par-{uuid.uuid4()}"}
    body = {"title": "parallel", "text": "One body sent twenty times at once. " * 20}

    def send(_: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        while True:
            reply = call(stack.functions["ingest"], method="POST", body=body, headers=headers)
            if reply[0] != 429:
                return reply
            assert reply[1]["error"]["code"] == "overloaded"
            time.sleep(float(reply[2]["Retry-After"]))

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(send, range(20)))
    statuses = [r[0] for r in results]
    assert set(statuses) <= {202, 409}, statuses
    created = {r[1]["document_id"] for r in results if r[0] == 202}
    assert len(created) == 1
    assert all(r[2].get("Retry-After") for r in results if r[0] == 409)
    with tenancy.tenant_session(tenant.org_id) as s:
        from ragline.db.models import Document

        assert tenancy.count(s, Document) == 1
    replay = call(stack.functions["ingest"], method="POST", body=body, headers=headers)
    assert replay[0] == 202 and replay[2].get("Idempotent-Replayed") == "true"
    assert replay[1]["document_id"] in created
