"""Request guardrails through the real functions: API keys, idempotency keys, rate limits,
one error model for every failure."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import pytest
import sqlalchemy as sa

from ragline.api import Context, Reply, endpoint
from ragline.core.errors import RaglineError
from ragline.db import engine as db
from ragline.db import tenancy
from ragline.db.models import ApiKey, Document, IdempotencyKey
from ragline.guardrails import apikeys, ratelimit

from .helpers import Tenant, client, make_tenant


@pytest.fixture(autouse=True)
def inline(configure: Callable[..., None]) -> None:
    configure(queue_backend="inline", embedding_provider="hashing")


def post_doc(tenant: Tenant, key: str | None, **body: Any) -> Any:
    headers = dict(tenant.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client("ingest").post("/", json=body, headers=headers)


def doc_count(org_id: uuid.UUID) -> int:
    with tenancy.tenant_session(org_id) as s:
        return tenancy.count(s, Document)


# --- idempotency -------------------------------------------------------------------------


def test_repeat_is_replayed_and_creates_nothing_new() -> None:
    t = make_tenant("idem")
    first = post_doc(t, "k-1", title="a", text="alpha words")
    second = post_doc(t, "k-1", title="a", text="alpha words")
    assert first.status_code == second.status_code == 202
    assert second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert doc_count(t.org_id) == 1


def test_same_key_other_payload_is_422() -> None:
    t = make_tenant("idem")
    assert post_doc(t, "k-2", title="a", text="one").status_code == 202
    resp = post_doc(t, "k-2", title="a", text="two")
    assert resp.status_code == 422
    assert resp.json["error"]["code"] == "idempotency_key_mismatch"
    assert doc_count(t.org_id) == 1


def test_canonical_body_makes_key_order_irrelevant() -> None:
    t = make_tenant("idem")
    headers = t.headers | {"Idempotency-Key": "k-3"}
    a = client("ingest").post(
        "/", data='{"title":"t","text":"x y"}', headers=headers, content_type="application/json"
    )
    b = client("ingest").post(
        "/",
        data='{ "text": "x y", "title": "t" }',
        headers=headers,
        content_type="application/json",
    )
    assert (a.status_code, b.status_code) == (202, 202)
    assert b.headers["Idempotent-Replayed"] == "true"


def _plant(org_id: uuid.UUID, key: str, req_hash: str, locked_for_s: float) -> None:
    now = datetime.now(UTC)
    with tenancy.tenant_session(org_id) as s:
        tenancy.add(
            s,
            IdempotencyKey(
                function="ingest",
                key=key,
                request_hash=req_hash,
                status="in_progress",
                locked_until=now + timedelta(seconds=locked_for_s),
                expires_at=now + timedelta(hours=24),
            ),
        )


def _hash(body: str) -> str:
    from ragline.guardrails.idempotency import request_hash

    return request_hash("POST", "/", "application/json?", body.encode())


def test_in_progress_repeat_is_409_with_retry_after() -> None:
    t = make_tenant("idem")
    body = '{"title":"t","text":"busy"}'
    _plant(t.org_id, "k-4", _hash(body), locked_for_s=90)
    resp = client("ingest").post(
        "/",
        data=body,
        content_type="application/json",
        headers=t.headers | {"Idempotency-Key": "k-4"},
    )
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "idempotency_in_progress"
    assert 1 <= int(resp.headers["Retry-After"]) <= 90
    assert doc_count(t.org_id) == 0


def test_lock_left_by_a_crash_expires_and_the_next_attempt_proceeds() -> None:
    t = make_tenant("idem")
    body = '{"title":"t","text":"crashed"}'
    _plant(t.org_id, "k-5", _hash(body), locked_for_s=-1)
    resp = client("ingest").post(
        "/",
        data=body,
        content_type="application/json",
        headers=t.headers | {"Idempotency-Key": "k-5"},
    )
    assert resp.status_code == 202
    again = client("ingest").post(
        "/",
        data=body,
        content_type="application/json",
        headers=t.headers | {"Idempotency-Key": "k-5"},
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert doc_count(t.org_id) == 1


def test_failed_request_releases_its_key() -> None:
    t = make_tenant("idem")
    bad = post_doc(t, "k-6", title="t", text="")
    assert bad.status_code == 422
    with tenancy.tenant_session(t.org_id) as s:
        assert tenancy.count(s, IdempotencyKey) == 0
    assert post_doc(t, "k-6", title="t", text="").status_code == 422


def test_keys_are_scoped_per_org_and_validated() -> None:
    a, b = make_tenant("idem-a"), make_tenant("idem-b")
    assert post_doc(a, "shared", title="t", text="a text").status_code == 202
    resp = post_doc(b, "shared", title="t", text="b text")
    assert resp.status_code == 202 and "Idempotent-Replayed" not in resp.headers
    assert post_doc(a, "x" * 256, title="t", text="z").status_code == 422
    assert post_doc(a, "   ", title="t", text="z").status_code == 422


def test_parallel_identical_posts_create_exactly_one_document() -> None:
    t = make_tenant("idem-par")
    results: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        resp = post_doc(t, "par-1", title="p", text="parallel body " * 50)
        while resp.status_code == 429:  # refused at the instance's limit: sent again
            time.sleep(float(resp.headers["Retry-After"]))
            resp = post_doc(t, "par-1", title="p", text="parallel body " * 50)
        with lock:
            results.append(resp)

    threads = [threading.Thread(target=send) for _ in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    statuses = sorted(r.status_code for r in results)
    assert all(s in (202, 409) for s in statuses), statuses
    assert statuses.count(202) >= 1
    assert all(r.headers.get("Retry-After") for r in results if r.status_code == 409)
    bodies = {r.json["document_id"] for r in results if r.status_code == 202}
    assert len(bodies) == 1
    assert doc_count(t.org_id) == 1


# --- rate limits ---------------------------------------------------------------------------


def test_over_the_limit_is_429_with_headers() -> None:
    t = make_tenant("limited", settings={"rate_limits": {"crud": 3}})
    docs = client("documents")
    ok = [docs.get("/", headers=t.headers) for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [r.headers["RateLimit-Remaining"] for r in ok] == ["2", "1", "0"]
    over = docs.get("/", headers=t.headers)
    assert over.status_code == 429
    assert over.json["error"]["code"] == "rate_limited"
    assert over.headers["RateLimit-Limit"] == "3"
    assert over.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(over.headers["Retry-After"]) <= 20
    assert int(over.headers["RateLimit-Reset"]) >= int(over.headers["Retry-After"])


def test_default_limits_and_separate_buckets() -> None:
    t = make_tenant("defaults", settings={})
    with tenancy.tenant_session(t.org_id) as s:
        assert ratelimit.limit_for(s, "crud") == 60
        assert ratelimit.limit_for(s, "agent") == 5


def test_bucket_never_admits_more_than_capacity_under_20_threads() -> None:
    t = make_tenant("race", settings={"rate_limits": {"crud": 5}})
    principal = _principal(t)
    allowed: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def take() -> None:
        barrier.wait()
        with tenancy.tenant_session(t.org_id) as s:
            decision = ratelimit.take(s, principal.api_key_id, "crud")
        with lock:
            allowed.append(decision.allowed)

    threads = [threading.Thread(target=take) for _ in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert allowed.count(True) == 5
    assert allowed.count(False) == 15


def _principal(t: Tenant) -> apikeys.Principal:
    with db.owner_session() as s:
        return apikeys.authenticate(s, t.key)


# --- API keys ------------------------------------------------------------------------------


def test_revoked_and_expired_keys_are_401() -> None:
    t = make_tenant("keys")
    docs = client("documents")
    assert docs.get("/", headers=t.headers).status_code == 200
    key_id = _principal(t).api_key_id
    with tenancy.tenant_session(t.org_id) as s:
        assert apikeys.revoke_key(s, key_id)
    resp = docs.get("/", headers=t.headers)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "unauthenticated"
    with db.owner_session() as s:
        tenancy.bind_org(s, t.org_id)
        _, raw = apikeys.create_key(
            s, "old", ["read"], expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
    assert docs.get("/", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    tampered = t.key[:-1] + ("A" if t.key[-1] != "A" else "B")
    assert docs.get("/", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401


def test_last_used_is_stamped_but_coalesced() -> None:
    t = make_tenant("touch")
    docs = client("documents")
    docs.get("/", headers=t.headers)
    with db.owner_session() as s:
        first = s.scalar(sa.select(ApiKey.last_used_at).where(ApiKey.org_id == t.org_id))
    docs.get("/", headers=t.headers)
    with db.owner_session() as s:
        second = s.scalar(sa.select(ApiKey.last_used_at).where(ApiKey.org_id == t.org_id))
    assert first is not None and second == first


def test_api_key_alternatives_and_duplicates() -> None:
    t = make_tenant("hdr")
    docs = client("documents")
    assert docs.get("/", headers={"X-API-Key": t.key}).status_code == 200
    dup = docs.get(
        "/", headers=[("Authorization", f"Bearer {t.key}"), ("Authorization", "Bearer x")]
    )
    assert dup.status_code == 400


# --- error model ---------------------------------------------------------------------------


def test_unexpected_exception_is_500_with_request_id_and_no_internals() -> None:
    t = make_tenant("boom")

    @endpoint("boom", methods=("GET",))
    def boom(req: flask.Request, ctx: Context) -> Reply:
        raise RuntimeError("secret internals: password=hunter2")

    app = flask.Flask("boom")
    app.add_url_rule("/", "boom", lambda: boom(flask.request))
    resp = app.test_client().get("/", headers=t.headers)
    assert resp.status_code == 500
    assert resp.json == {
        "error": {
            "code": "internal",
            "message": "internal error",
            "request_id": resp.headers["X-Request-Id"],
        }
    }
    assert "hunter2" not in resp.get_data(as_text=True)


def test_every_ragline_error_has_a_4xx_or_5xx_status() -> None:
    from ragline.api import status_for
    from ragline.core import errors

    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, RaglineError):
            assert 400 <= status_for(cls("x")) <= 599


def test_an_instance_at_its_concurrency_limit_answers_429_before_any_work(
    tenant: Tenant, configure: Callable[..., None]
) -> None:
    """Issue 16: with every slot taken, a request waits `admission_wait_ms`, then gets
    `429 overloaded` with Retry-After, and nothing is done for it (no rate-limit token, no
    authentication); the next request once a slot frees up is served."""
    from ragline.core.errors import OverloadedError
    from ragline.guardrails import admission

    configure(max_concurrent_requests="1", admission_wait_ms="20")
    search = client("search")
    body = {"query": "anything", "mode": "text"}
    with admission.admitted():  # the instance's one slot, held elsewhere
        with pytest.raises(OverloadedError), admission.admitted():
            pass
        refused = search.post("/", json=body, headers=tenant.headers)
        unknown = search.post("/", json=body, headers={"Authorization": "Bearer rl_nope_x"})
    assert refused.status_code == 429 and refused.json["error"]["code"] == "overloaded"
    assert refused.headers["Retry-After"] == "1"
    assert unknown.status_code == 429  # refused before the key is even looked at
    with db.owner_session() as session:
        buckets = session.scalar(sa.text("select count(*) from rate_limit_bucket"))
    assert buckets == 0  # no rate-limit token was taken for them
    assert search.post("/", json=body, headers=tenant.headers).status_code == 200


def test_a_full_waiting_line_refuses_at_once_and_a_waiter_gets_the_freed_slot(
    configure: Callable[..., None],
) -> None:
    """As many requests may wait as there are slots; one more is refused without waiting,
    and a waiter is admitted as soon as a slot frees up."""
    from ragline.core.errors import OverloadedError
    from ragline.guardrails import admission

    configure(max_concurrent_requests="1", admission_wait_ms="10000")
    got: list[str] = []
    waiting = threading.Event()

    def waiter() -> None:
        waiting.set()
        with admission.admitted():
            got.append("admitted")

    with admission.admitted():
        thread = threading.Thread(target=waiter)
        thread.start()
        waiting.wait()
        while admission._waiting == 0:  # the waiter has taken the waiting place
            time.sleep(0.01)
        with pytest.raises(OverloadedError), admission.admitted():
            pass
        assert thread.is_alive() and got == []  # refused without waiting 10 s for it
    thread.join(timeout=10)
    assert got == ["admitted"]
