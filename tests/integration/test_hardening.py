"""Regression tests for the twelve findings of the attack on the local stack (issue 11).

Each test is named after its finding; each failed on the code before the fix."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from ragline.api.body import DRAIN_MAX_BYTES
from ragline.core.config import get_settings
from ragline.db import engine as db
from ragline.db import tenancy
from ragline.db.models import Document, Run
from ragline.dev.devstack import free_port
from ragline.guardrails import fairshare
from ragline.ingest import documents, pipeline

from .helpers import GENEROUS, client, make_tenant

J = "application/json"
CRAFTED_CURSORS = (
    f"0001-01-01T00:00:00+14:00|{uuid.uuid4()}",
    f"9999-12-31T23:59:59-14:00|{uuid.uuid4()}",
    f"2026-01-01T00:00:00|{uuid.uuid4()}",  # naive
    "2026-01-01T00:00:00+00:00|{6a3b1a0c-1f9b-4f52-9e44-46f1f3b8bb0e}",
    "2026-01-01T00:00:00+00:00",
    "|",
)


# --- 1. crafted cursors and pooled connections ---------------------------------------------


def _own_documents(tenant: Any, title: str) -> None:
    for i in range(3):
        resp = client("ingest").post(
            "/", json={"title": f"{title} {i}", "text": f"{title} text {i}"}, headers=tenant.headers
        )
        assert resp.status_code == 202, resp.json


@pytest.mark.parametrize("function", ["documents", "runs"])
def test_1_crafted_cursor_is_422_and_the_pool_stays_in_step(
    function: str, configure: Callable[..., None]
) -> None:
    configure(embedding_provider="hashing")
    attacker, a, b = make_tenant("curs-x"), make_tenant("curs-a"), make_tenant("curs-b")
    _own_documents(a, "alpha")
    _own_documents(b, "beta")
    fn = client(function)
    for cursor in CRAFTED_CURSORS:
        resp = fn.get("/", query_string={"cursor": cursor}, headers=attacker.headers)
        assert resp.status_code == 422, (cursor, resp.json)
        assert resp.json["error"]["code"] == "invalid_request"
    with tenancy.tenant_session(a.org_id) as s:
        a_ids = {str(i) for i in s.scalars(sa.select(Document.id))}
    with tenancy.tenant_session(b.org_id) as s:
        b_ids = {str(i) for i in s.scalars(sa.select(Document.id))}
    docs = client("documents")
    for i in range(20):
        tenant, own = (a, a_ids) if i % 2 == 0 else (b, b_ids)
        resp = docs.get("/", headers=tenant.headers)
        assert resp.status_code == 200, resp.json
        assert {d["id"] for d in resp.json["documents"]} == own


def test_1_a_connection_that_failed_mid_statement_is_never_reused(database_url: str) -> None:
    """Below the cursor check: whatever makes the driver fail half-way through sending a
    statement, the next statement on the pool reads its own result."""
    engine = db.build_engine(get_settings(), app_role=False)
    bad = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14)))
    try:
        for _ in range(3):
            with pytest.raises(OverflowError), engine.begin() as conn:
                conn.execute(sa.text("select set_config('app.x', 'leak', true)"))
                conn.execute(sa.text("select :t < now()"), {"t": bad})
            with engine.begin() as conn:
                assert conn.execute(sa.text("select 42")).scalar_one() == 42
        # A server-reported error keeps the connection (it is in step).
        with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
            conn.execute(sa.text("select 1/0"))
        with engine.begin() as conn:
            assert conn.execute(sa.text("select 43")).scalar_one() == 43
    finally:
        engine.dispose()


# --- 2. linear-time chunking -----------------------------------------------------------------


def test_2_sentence_end_pattern_starts_only_at_the_first_mark_of_a_run() -> None:
    """What makes the split linear: no match attempt starts inside a run of marks."""
    from ragline.ingest.chunking import _SENTENCE_END_RE

    assert _SENTENCE_END_RE.search("...... A", 1) is None
    match = _SENTENCE_END_RE.search("Hi...!? There")
    assert match is not None and match.group(1) == "...!?"


def test_2_a_megabyte_of_dots_chunks_without_hanging() -> None:
    """A hang guard, not a timing (speed per MB is in bench/pathological_text.py): before the
    fix 64 KB of dots took 88 s and 1 MB would take hours."""
    code = (
        "from ragline.ingest.chunking import split_document\n"
        "for unit in ('.', '!', '?.', '.\"'):\n"
        "    assert split_document(unit * (1 << 20))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- 3. the database away is a 503, whatever the driver raises ------------------------------


def test_3_api_answers_503_when_the_database_refuses_connections(
    configure: Callable[..., None],
) -> None:
    tenant = make_tenant("db-away")
    configure(database_url=f"postgresql+pg8000://ragline@127.0.0.1:{free_port()}/ragline")
    db.reset_engines()
    try:
        for fn, method in (("documents", "GET"), ("search", "POST"), ("runs", "GET")):
            resp = client(fn).open("/", method=method, json={"query": "x"}, headers=tenant.headers)
            assert resp.status_code == 503, (fn, resp.get_data(as_text=True))
            assert resp.json["error"]["code"] == "database_unavailable"
            assert resp.headers["Retry-After"] == "5"
    finally:
        db.reset_engines()


# --- 4. bodies bounded before anything reads them --------------------------------------------


class CountingStream(io.RawIOBase):
    """An endless request body that counts what was read from it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.total - self.read_bytes)
        buffer[:n] = b"x" * n
        self.read_bytes += n
        return n


@pytest.mark.parametrize("function", ["answer", "ingest", "search"])
def test_4_a_chunked_body_is_never_buffered_past_the_limit(function: str) -> None:
    """No Content-Length, 50x the limit: the function answers after reading at most the
    limit + 1 byte into memory; the rest is discarded in blocks (up to DRAIN_MAX_BYTES) or
    left unread. Before the fix the whole body was buffered."""
    limit = get_settings().max_body_bytes
    stream = CountingStream(50 * limit)
    fn = client(function)
    tracemalloc.start()
    try:
        resp = fn.post(
            "/",
            content_type=J,
            environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status_code in (401, 413), resp.get_data(as_text=True)[:200]
    assert stream.read_bytes <= limit + 1 + DRAIN_MAX_BYTES, stream.read_bytes
    assert peak < 5 * limit, peak  # a few copies of the capped body; before: the whole body


@pytest.mark.parametrize("extra", [10, DRAIN_MAX_BYTES])
def test_4_a_declared_oversize_body_is_413_without_buffering(extra: int) -> None:
    """A Content-Length over the limit: 413 before the function runs; the body is discarded
    block by block (so the client, still sending, reads the 413), or left unread and the
    connection closed when it is larger than DRAIN_MAX_BYTES."""
    tenant = make_tenant("big-body")
    limit = get_settings().max_body_bytes
    stream = CountingStream(limit + extra)
    fn = client("answer")
    tracemalloc.start()
    try:
        resp = fn.post(
            "/",
            content_type=J,
            headers=tenant.headers,
            environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(limit + extra)},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status_code == 413 and resp.json["error"]["code"] == "payload_too_large"
    assert peak < limit // 4, peak
    if limit + extra > DRAIN_MAX_BYTES:
        assert stream.read_bytes == 0 and resp.headers["Connection"] == "close"
    else:
        assert stream.read_bytes == limit + extra


# --- 5. non-finite numbers -------------------------------------------------------------------

INF = b"1e999"
OVERFLOWING = [
    ("ingest", "/", b'{"title":"t","text":"x","metadata":{"n":%s}}'),
    ("search", "/", b'{"query":"x","filters":{"metadata":{"n":%s}}}'),
    ("answer", "/", b'{"question":"x","filters":{"metadata":{"n":%s}}}'),
    ("runs", "/", b'{"kind":"agent","state":{"n":%s}}'),
    ("runs", "/", b'{"kind":"agent","input":{"n":[%s]}}'),
    ("runs", "/", b'{"kind":"agent","input":{"n":-%s}}'),
]


@pytest.mark.parametrize(("function", "path", "template"), OVERFLOWING)
def test_5_numbers_that_overflow_to_infinity_are_400(
    function: str, path: str, template: bytes
) -> None:
    tenant = make_tenant("inf")
    resp = client(function).post(path, data=template % INF, content_type=J, headers=tenant.headers)
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    assert resp.json["error"]["code"] == "malformed_body"


def test_5_tool_log_overflow_is_400() -> None:
    tenant = make_tenant("inf-patch")
    runs = client("runs")
    run_id = runs.post("/", json={"kind": "agent"}, headers=tenant.headers).json["id"]
    resp = runs.patch(
        f"/{run_id}",
        data=b'{"tool_log":[{"tool":"t","n":1e999}]}',
        content_type=J,
        headers=tenant.headers,
    )
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]


# --- 6, 8, 9. idempotency keys ----------------------------------------------------------------


def test_6_deep_nesting_with_an_idempotency_key_is_400() -> None:
    tenant = make_tenant("deep")
    body = b"[" * 5000 + b"]" * 5000
    for fn in ("ingest", "runs"):
        resp = client(fn).post(
            "/", data=body, content_type=J, headers={**tenant.headers, "Idempotency-Key": "deep-1"}
        )
        assert resp.status_code == 400, resp.get_data(as_text=True)[:300]


def test_8_same_key_other_query_string_is_a_mismatch(configure: Callable[..., None]) -> None:
    configure(embedding_provider="hashing")
    tenant = make_tenant("idem-qs")
    ingest = client("ingest")
    headers = {**tenant.headers, "Idempotency-Key": "qs-1"}
    first = ingest.post("/?title=one", data=b"hello", content_type="text/plain", headers=headers)
    assert first.status_code == 202
    again = ingest.post("/?title=one", data=b"hello", content_type="text/plain", headers=headers)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    other = ingest.post("/?title=two", data=b"hello", content_type="text/plain", headers=headers)
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_key_mismatch"


def test_9_duplicate_idempotency_key_headers_are_400() -> None:
    tenant = make_tenant("idem-dup")
    headers = [*tenant.headers.items(), ("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")]
    resp = client("runs").post("/", json={"kind": "agent"}, headers=headers)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "malformed_header"
    joined = client("runs").post(
        "/", json={"kind": "agent"}, headers={**tenant.headers, "Idempotency-Key": "k1,k2"}
    )
    assert joined.status_code == 400
    with tenancy.tenant_session(tenant.org_id) as s:
        assert s.scalar(sa.text("select count(*) from idempotency_key")) == 0


# --- 7. per-document caps and per-org fair share ---------------------------------------------


def test_7_a_document_over_the_chunk_cap_fails_with_a_reason(
    configure: Callable[..., None],
) -> None:
    configure(embedding_provider="hashing")
    tenant = make_tenant("cap", settings={**GENEROUS, "limits": {"max_chunks_per_document": 50}})
    text = "# h\n" * 1000
    resp = client("ingest").post(
        "/", json={"title": "headings", "text": text}, headers=tenant.headers
    )
    doc = client("documents").get(f"/{resp.json['document_id']}", headers=tenant.headers).json
    assert doc["status"] == "failed" and "too_many_chunks" in doc["error"]
    assert doc["chunks"]["total"] == 0
    with tenancy.tenant_session(tenant.org_id) as s:
        run = s.scalars(sa.select(Run)).one()
        assert run.status == "failed" and "too_many_chunks" in (run.error or "")


def test_7_fair_share_slots_per_org(configure: Callable[..., None]) -> None:
    configure(org_stage_concurrency="2")
    a, b = make_tenant("fair-a"), make_tenant("fair-b")
    held = [fairshare.try_claim(a.org_id, "embed", f"h{i}") for i in range(3)]
    assert held[:2] == [0, 1] and held[2] is None
    assert fairshare.try_claim(b.org_id, "embed", "other-org") == 0  # b is not starved by a
    assert fairshare.try_claim(a.org_id, "chunk", "other-stage") == 0
    fairshare.release(a.org_id, "embed", 0, "h0")
    assert fairshare.try_claim(a.org_id, "embed", "h3") == 0
    with db.owner_session() as s:  # a worker died holding slot 1: its lease expires
        s.execute(sa.text("update stage_lease set expires_at = now() - interval '1 second'"))
    assert fairshare.try_claim(a.org_id, "embed", "h4") == 0


def test_7_org_setting_overrides_the_share(configure: Callable[..., None]) -> None:
    configure(org_stage_concurrency="1")
    big = make_tenant("fair-big", settings={**GENEROUS, "limits": {"stage_concurrency": 3}})
    assert [fairshare.try_claim(big.org_id, "embed", f"h{i}") for i in range(4)] == [0, 1, 2, None]


def test_7_a_task_over_its_share_is_deferred_not_run(
    configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(org_stage_concurrency="1", embedding_provider="hashing")
    tenant = make_tenant("fair-defer")
    deferred: list[tuple[str, dict[str, Any], float]] = []
    monkeypatch.setattr(pipeline.queues, "can_defer", lambda settings=None: True)
    monkeypatch.setattr(
        pipeline.queues,
        "enqueue",
        lambda stage, payload, name, delay_s=0: deferred.append((stage, payload, delay_s)),
    )
    ran: list[str] = []
    monkeypatch.setitem(pipeline.HANDLERS, "embed", lambda task: ran.append(str(task.batch)))
    payload = {"org_id": str(tenant.org_id), "document_id": str(uuid.uuid4()), "batch": 3}
    assert fairshare.try_claim(tenant.org_id, "embed", "busy") == 0
    outcome = pipeline.run_stage("embed", payload, attempt=0, max_attempts=5)
    assert outcome.ok and outcome.detail.startswith("deferred") and ran == []
    assert deferred == [("embed", payload, get_settings().fairshare_defer_s)]
    fairshare.release(tenant.org_id, "embed", 0, "busy")
    assert pipeline.run_stage("embed", payload, attempt=0, max_attempts=5).detail == "done"
    assert ran == ["3"]
    with tenancy.tenant_session(tenant.org_id) as s:  # the slot was given back
        assert s.scalar(sa.text("select count(*) from stage_lease")) == 0


# --- 10. a deleted document's run ends ---------------------------------------------------------


def test_10_deleting_a_pending_document_cancels_its_ingest_run() -> None:
    tenant = make_tenant("del-run")
    with tenancy.tenant_session(tenant.org_id) as s:
        made = documents.create(s, documents.NewDocument(title="t", text="pending forever"))
        doc_id, run_id = made.document.id, made.run_id
    resp = client("documents").delete(f"/{doc_id}", headers=tenant.headers)
    assert resp.json["deleted"] is True
    run = client("runs").get(f"/{run_id}", headers=tenant.headers).json
    assert run["status"] == "cancelled" and run["error"] == "document deleted"


# --- 11. strict routes and types ----------------------------------------------------------------


def test_11_routes_take_only_canonical_ids_and_exact_paths(
    configure: Callable[..., None],
) -> None:
    configure(embedding_provider="hashing")
    tenant = make_tenant("routes")
    doc_id = (
        client("ingest")
        .post("/", json={"title": "t", "text": "keep me"}, headers=tenant.headers)
        .json["document_id"]
    )
    docs = client("documents")
    for path in (f"/{doc_id}/anything/else", f"/{{{doc_id}}}", f"/urn:uuid:{doc_id}"):
        resp = docs.delete(path, headers=tenant.headers)
        assert resp.status_code == 404, path
    assert docs.get(f"/{doc_id}", headers=tenant.headers).json["status"] == "ready"
    wrong = docs.delete("/", headers=tenant.headers)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    runs = client("runs")
    assert runs.get(f"/{doc_id}/compare", headers=tenant.headers).status_code == 404
    assert runs.get(f"/{doc_id}/compare/{{{doc_id}}}", headers=tenant.headers).status_code == 404


@pytest.mark.parametrize("top_k", ['"5"', "true", "5.0"])
def test_11_numbers_must_be_json_numbers(top_k: str) -> None:
    tenant = make_tenant("strict")
    for fn, body in (
        ("search", '{"query":"x","top_k":%s}'),
        ("answer", '{"question":"x","top_k":%s}'),
    ):
        resp = client(fn).post("/", data=body % top_k, content_type=J, headers=tenant.headers)
        assert resp.status_code == 422, (fn, resp.get_data(as_text=True)[:200])
        assert resp.json["error"]["details"][0]["loc"] == ["top_k"]


# --- 12. /ready tells anonymous callers only pass/fail ----------------------------------------


def test_12_ready_discloses_details_only_to_operators(configure: Callable[..., None]) -> None:
    configure(task_auth="secret", task_secret="ready-s3cret")
    health = client("health")
    anonymous = health.get("/ready")
    text = json.dumps(anonymous.json)
    assert anonymous.status_code == 200 and anonymous.json["status"] == "ok"
    assert all(set(c) == {"ok"} for c in anonymous.json["checks"].values())
    assert "pgvector" not in text and "ragline-" not in text and "head" not in text
    reader = make_tenant("ready-reader")
    assert "detail" not in json.dumps(health.get("/ready", headers=reader.headers).json)
    admin = make_tenant("ready-admin", scopes=("admin",))
    detailed = health.get("/ready", headers=admin.headers).json
    assert detailed["checks"]["vector"]["detail"].startswith("pgvector")


def test_rerank_without_a_provider_is_422_not_500(configure: Callable[..., None]) -> None:
    """Found by the contract test after the search merge: `rerank: true` on a deployment with
    no RERANK_PROVIDER raised a ConfigurationError (500)."""
    configure(embedding_provider="hashing", rerank_provider="none")
    tenant = make_tenant("no-rerank")
    resp = client("search").post(
        "/", json={"query": "x", "rerank": True, "mode": "hybrid"}, headers=tenant.headers
    )
    assert resp.status_code == 422, resp.get_data(as_text=True)[:200]
    assert resp.json["error"]["details"][0]["loc"] == ["rerank"]
