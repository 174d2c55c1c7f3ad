"""The pipeline through the real ingest/documents functions with the inline queue backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from ragline.db import engine as db
from ragline.db import tenancy
from ragline.db.models import Chunk, Document, Run
from ragline.ingest import pipeline
from ragline.ingest.chunking import split_document

from .helpers import Tenant, client, make_tenant

DOC = "# Guide\n\nIntro paragraph about widgets.\n\n## Setup\n\n" + " ".join(
    f"Sentence {i} explains how widgets are installed and configured." for i in range(60)
)


@pytest.fixture()
def inline(configure: Callable[..., None]) -> None:
    configure(queue_backend="inline", embedding_provider="hashing", embed_batch_chunks="4")


def ingest(tenant: Tenant, **body: Any) -> Any:
    return client("ingest").post("/", json=body, headers=tenant.headers)


def chunk_rows(org_id: uuid.UUID, doc_id: str) -> list[Any]:
    with tenancy.tenant_session(org_id) as s:
        return list(
            s.execute(
                sa.select(Chunk.ord, Chunk.embedding_model, Chunk.embedding.is_(None))
                .where(Chunk.document_id == uuid.UUID(doc_id))
                .order_by(Chunk.ord)
            ).all()
        )


@pytest.mark.usefixtures("inline")
def test_ingest_runs_to_ready_with_exact_chunks(tenant: Tenant) -> None:
    resp = ingest(tenant, title="Guide", text=DOC, kind="markdown", metadata={"team": "a"})
    assert resp.status_code == 202, resp.json
    doc_id = resp.json["document_id"]
    expected = len(split_document(DOC))
    assert expected > 4  # several embed batches
    rows = chunk_rows(tenant.org_id, doc_id)
    assert [r.ord for r in rows] == list(range(expected))
    assert all(r.embedding_model == "hashing-v1" and r[2] is False for r in rows)
    got = client("documents").get(f"/{doc_id}", headers=tenant.headers)
    assert got.status_code == 200
    assert got.json["status"] == "ready"
    assert got.json["chunks"] == {"total": expected, "embedded": expected}
    assert {"chunk_ms", "embed_ms", "total_ms"} <= set(got.json["timings"])
    with tenancy.tenant_session(tenant.org_id) as s:
        run = s.scalars(tenancy.scoped_select(s, Run, Run.document_id == uuid.UUID(doc_id))).one()
        assert run.status == "succeeded" and run.finished_at is not None


@pytest.mark.usefixtures("inline")
def test_same_content_returns_existing_document(tenant: Tenant) -> None:
    first = ingest(tenant, title="A", text="same words here")
    second = ingest(tenant, title="B", text="same words here")
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json["document_id"] == second.json["document_id"]
    other = make_tenant("other")
    third = ingest(other, title="A", text="same words here")
    assert third.status_code == 202 and third.json["document_id"] != first.json["document_id"]


@pytest.mark.usefixtures("inline")
def test_text_body_with_title_param(tenant: Tenant) -> None:
    resp = client("ingest").post(
        "/?title=Notes",
        data="# Notes\n\nplain words",
        content_type="text/markdown",
        headers=tenant.headers,
    )
    assert resp.status_code == 202
    got = client("documents").get(f"/{resp.json['document_id']}", headers=tenant.headers).json
    assert (got["title"], got["kind"], got["status"]) == ("Notes", "markdown", "ready")


@pytest.mark.usefixtures("inline")
def test_chunk_text_survives_the_one_statement_insert_byte_for_byte(tenant: Tenant) -> None:
    """The chunk rows travel as one JSON parameter: quotes, backslashes, control
    characters, JSON-looking text, line separators and astral characters come back exact."""
    hostile = (
        '# T\n\nQuote " and \\ backslash, \\u0041 and {"ord": 9, "text": "x"} literal. '
        "Tab\tcarriage\rreturn \u2028 separator \u2029 and emoji \U0001f600 \u00e9t\u00e9.\n\n"
    ) * 30
    resp = ingest(tenant, title="Hostile", text=hostile)
    assert resp.status_code == 202, resp.json
    doc_id = uuid.UUID(resp.json["document_id"])
    expected = split_document(hostile)
    assert len(expected) > 1
    with tenancy.tenant_session(tenant.org_id) as s:
        stored = s.execute(
            sa.select(Chunk.ord, Chunk.text, Chunk.start_offset, Chunk.end_offset)
            .where(Chunk.document_id == doc_id)
            .order_by(Chunk.ord)
        ).all()
    assert [(r.ord, r.text, r.start_offset, r.end_offset) for r in stored] == [
        (p.ord, p.text, p.start, p.end) for p in expected
    ]
    assert all(r.text == hostile[r.start_offset : r.end_offset] for r in stored)


@pytest.mark.usefixtures("inline")
def test_duplicate_and_concurrent_deliveries_create_no_duplicates(tenant: Tenant) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with tenancy.tenant_session(tenant.org_id) as s:
        doc = tenancy.add(s, Document(title="t", content=DOC, content_hash="h1"))
        s.flush()
        doc_id = doc.id
    payload = {"org_id": str(tenant.org_id), "document_id": str(doc_id)}
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda _: pipeline.run_stage("chunk", payload, attempt=0, max_attempts=3), range(4)
            )
        )
    pipeline.run_stage("chunk", payload, attempt=0, max_attempts=3)
    rows = chunk_rows(tenant.org_id, str(doc_id))
    assert [r.ord for r in rows] == list(range(len(split_document(DOC))))
    with tenancy.tenant_session(tenant.org_id) as s:
        assert tenancy.get(s, Document, doc_id).status == "ready"  # type: ignore[union-attr]


def test_first_attempt_failure_still_ends_with_one_set_of_chunks(
    tenant: Tenant, configure: Callable[..., None]
) -> None:
    configure(
        queue_backend="inline",
        embedding_provider="hashing",
        embed_batch_chunks="4",
        fault_inject="chunk:1,embed:1,finalize:1",
    )
    resp = ingest(tenant, title="Guide", text=DOC)
    rows = chunk_rows(tenant.org_id, resp.json["document_id"])
    assert [r.ord for r in rows] == list(range(len(split_document(DOC))))
    got = client("documents").get(f"/{resp.json['document_id']}", headers=tenant.headers).json
    assert got["status"] == "ready"


def test_last_attempt_failure_marks_document_failed(
    tenant: Tenant, configure: Callable[..., None]
) -> None:
    configure(
        queue_backend="inline",
        embedding_provider="hashing",
        fault_inject="embed:99",
        task_max_attempts="2",
    )
    resp = client("ingest").post("/", json={"title": "x", "text": DOC}, headers=tenant.headers)
    assert resp.status_code == 202  # accepted; the pipeline then fails for good, visibly
    got = client("documents").get(f"/{resp.json['document_id']}", headers=tenant.headers).json
    assert got["status"] == "failed" and "injected fault" in got["error"]
    with tenancy.tenant_session(tenant.org_id) as s:
        run = s.scalars(tenancy.scoped_select(s, Run)).one()
        assert run.status == "failed" and "embed" in (run.error or "")


@pytest.mark.usefixtures("inline")
def test_list_filter_paginate_and_delete(tenant: Tenant) -> None:
    ids = [
        ingest(tenant, title=f"d{i}", text=f"text {i}", kind="note").json["document_id"]
        for i in range(5)
    ]
    docs = client("documents")
    page1 = docs.get("/?limit=2&kind=note", headers=tenant.headers).json
    assert len(page1["documents"]) == 2 and page1["next_cursor"]
    seen = [d["id"] for d in page1["documents"]]
    cursor = page1["next_cursor"]
    while cursor:
        page = docs.get(
            "/", query_string={"limit": 2, "cursor": cursor}, headers=tenant.headers
        ).json
        seen += [d["id"] for d in page["documents"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids)
    assert docs.get("/?status=ready", headers=tenant.headers).json["documents"]
    assert docs.get("/?kind=other", headers=tenant.headers).json["documents"] == []
    first = docs.delete(f"/{ids[0]}", headers=tenant.headers)
    again = docs.delete(f"/{ids[0]}", headers=tenant.headers)
    assert (first.json["deleted"], again.json["deleted"]) == (True, False)
    assert docs.get(f"/{ids[0]}", headers=tenant.headers).status_code == 404
    assert chunk_rows(tenant.org_id, ids[0]) == []
    # The same content can be ingested again after a delete.
    assert ingest(tenant, title="d0", text="text 0", kind="note").status_code == 202


@pytest.mark.usefixtures("inline")
def test_other_org_cannot_see_or_delete(tenant: Tenant) -> None:
    doc_id = ingest(tenant, title="secret", text="secret words").json["document_id"]
    other = make_tenant("intruder")
    docs = client("documents")
    assert docs.get(f"/{doc_id}", headers=other.headers).status_code == 404
    assert docs.get("/", headers=other.headers).json["documents"] == []
    assert docs.delete(f"/{doc_id}", headers=other.headers).json["deleted"] is False
    assert docs.get(f"/{doc_id}", headers=tenant.headers).json["status"] == "ready"


BAD_REQUESTS: list[tuple[str, dict[str, Any], int]] = [
    ("empty text", {"json": {"title": "t", "text": ""}}, 422),
    ("blank text", {"json": {"title": "t", "text": "  \n "}}, 422),
    ("missing title", {"json": {"text": "x"}}, 422),
    ("wrong type", {"json": {"title": 5, "text": "x"}}, 422),
    ("unknown field", {"json": {"title": "t", "text": "x", "evil": 1}}, 422),
    ("invalid json", {"data": b"{not json", "content_type": "application/json"}, 400),
    ("invalid utf-8", {"data": b"\xff\xfe", "content_type": "text/plain"}, 400),
    ("wrong content type", {"data": b"x", "content_type": "application/xml"}, 415),
    ("blank text body without title", {"data": b"  \n ", "content_type": "text/plain"}, 422),
    ("json array", {"json": [1, 2]}, 422),
    ("NaN constant", {"data": b'{"title": NaN}', "content_type": "application/json"}, 400),
    ("deep json", {"data": b"[" * 100 + b"]" * 100, "content_type": "application/json"}, 400),
    ("NUL in text", {"json": {"title": "t", "text": "a\x00b"}}, 422),
]


@pytest.mark.usefixtures("inline")
@pytest.mark.parametrize(
    ("name", "kwargs", "status"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_input_gets_4xx_json(
    tenant: Tenant, name: str, kwargs: dict[str, Any], status: int
) -> None:
    resp = client("ingest").post("/", headers=tenant.headers, **kwargs)
    assert resp.status_code == status, resp.json
    assert set(resp.json["error"]) >= {"code", "message"}
    assert resp.headers["X-Request-Id"]


def test_oversized_body_is_413(tenant: Tenant, configure: Callable[..., None]) -> None:
    configure(queue_backend="inline", embedding_provider="hashing", max_body_bytes="1000")
    resp = client("ingest").post(
        "/", json={"title": "t", "text": "x" * 2000}, headers=tenant.headers
    )
    assert resp.status_code == 413 and resp.json["error"]["code"] == "payload_too_large"


@pytest.mark.usefixtures("inline")
def test_unknown_document_and_auth_errors(tenant: Tenant) -> None:
    docs = client("documents")
    assert docs.get(f"/{uuid.uuid4()}", headers=tenant.headers).status_code == 404
    assert docs.get("/not-a-uuid", headers=tenant.headers).status_code == 404
    assert docs.get("/").status_code == 401
    assert docs.get("/", headers={"Authorization": "Bearer rl_nope_" + "x" * 30}).status_code == 401
    assert docs.post("/", headers=tenant.headers).status_code == 405
    assert docs.get("/?limit=0", headers=tenant.headers).status_code == 422
    assert docs.get("/?limit=1&limit=2", headers=tenant.headers).status_code == 422


def test_read_only_key_cannot_ingest(configure: Callable[..., None]) -> None:
    configure(queue_backend="inline", embedding_provider="hashing")
    reader = make_tenant("reader", scopes=("read",))
    resp = client("ingest").post("/", json={"title": "t", "text": "x"}, headers=reader.headers)
    assert resp.status_code == 403


def test_task_endpoints_refuse_callers_without_the_secret(
    tenant: Tenant, configure: Callable[..., None]
) -> None:
    configure(task_auth="secret", task_secret="s3cret")
    body = {"org_id": str(tenant.org_id), "document_id": str(uuid.uuid4())}
    chunk = client("chunk")
    assert chunk.post("/", json=body).status_code == 401
    assert chunk.post("/", json=body, headers={"X-Ragline-Task-Secret": "wrong"}).status_code == 401
    ok = chunk.post("/", json=body, headers={"X-Ragline-Task-Secret": "s3cret"})
    assert ok.status_code == 200  # unknown document: nothing to do, acknowledged
    bad = chunk.post("/", json={"org_id": "x"}, headers={"X-Ragline-Task-Secret": "s3cret"})
    assert bad.status_code == 422
    with db.owner_session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Chunk)) == 0


@pytest.mark.usefixtures("inline")
def test_a_refused_enqueue_is_retried_not_a_failed_document(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: a stage whose successor's enqueue is refused (QueueError) retries; under
    load such refusals used to fail documents for good."""
    from ragline.core.errors import QueueError
    from ragline.ingest import queues

    real = queues.enqueue
    refused: list[str] = []

    def flaky(stage: str, payload: dict[str, Any], name: str, **kw: Any) -> None:
        if stage == "embed" and not refused:
            refused.append(name)
            raise QueueError("Cloud Tasks refused the task: Unknown")
        real(stage, payload, name, **kw)

    monkeypatch.setattr(queues, "enqueue", flaky)
    resp = ingest(tenant, title="Guide", text=DOC)
    doc_id = resp.json["document_id"]
    got = client("documents").get(f"/{doc_id}", headers=tenant.headers)
    assert refused and got.json["status"] == "ready", got.json
    assert got.json["failure_reason"] is None
