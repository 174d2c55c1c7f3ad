"""At least 30 hostile or malformed requests, each answered with a 4xx JSON error, never 500;
and a key of one org walking every route of another org's data."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ragline.db import tenancy
from ragline.db.models import Chunk, Document

from .helpers import client, make_tenant

J = "application/json"
HOSTILE: list[tuple[str, str, str, str, dict[str, Any], int]] = [
    # (name, function, method, path, werkzeug kwargs, expected status)
    ("invalid json", "ingest", "POST", "/", {"data": b"{", "content_type": J}, 400),
    ("empty json body", "ingest", "POST", "/", {"data": b"", "content_type": J}, 400),
    ("json null", "ingest", "POST", "/", {"data": b"null", "content_type": J}, 422),
    ("json string", "ingest", "POST", "/", {"data": b'"x"', "content_type": J}, 422),
    ("title number", "ingest", "POST", "/", {"json": {"title": 1, "text": "x"}}, 422),
    ("text list", "ingest", "POST", "/", {"json": {"title": "t", "text": ["x"]}}, 422),
    (
        "metadata string",
        "ingest",
        "POST",
        "/",
        {"json": {"title": "t", "text": "x", "metadata": "m"}},
        422,
    ),
    (
        "kind with spaces",
        "ingest",
        "POST",
        "/",
        {"json": {"title": "t", "text": "x", "kind": "a b"}},
        422,
    ),
    ("huge title", "ingest", "POST", "/", {"json": {"title": "t" * 5000, "text": "x"}}, 422),
    (
        "lone surrogate",
        "ingest",
        "POST",
        "/",
        {"data": b'{"title":"t","text":"\\ud800"}', "content_type": J},
        400,
    ),
    ("NUL in title", "ingest", "POST", "/", {"json": {"title": "a\u0000b", "text": "x"}}, 422),
    (
        "invalid utf-8 json",
        "ingest",
        "POST",
        "/",
        {"data": b'{"title":"\xff"}', "content_type": J},
        400,
    ),
    ("Infinity", "ingest", "POST", "/", {"data": b'{"title":Infinity}', "content_type": J}, 400),
    (
        "200 levels deep",
        "ingest",
        "POST",
        "/",
        {"data": b'{"a":' * 200 + b"1" + b"}" * 200, "content_type": J},
        400,
    ),
    ("form encoded", "ingest", "POST", "/", {"data": {"title": "t"}}, 415),
    ("no content type", "ingest", "POST", "/", {"data": b"title=t"}, 415),
    ("GET on ingest", "ingest", "GET", "/", {}, 405),
    ("PUT on documents", "documents", "PUT", "/", {}, 405),
    ("DELETE collection", "documents", "DELETE", "/", {}, 405),
    ("sql in id", "documents", "GET", "/1%27%20OR%201=1--", {}, 404),
    ("unknown id", "documents", "GET", f"/{uuid.uuid4()}", {}, 404),
    ("traversal", "documents", "GET", "/..%2F..%2Fetc%2Fpasswd", {}, 404),
    ("limit huge", "documents", "GET", "/?limit=99999999999999999999", {}, 422),
    ("limit negative", "documents", "GET", "/?limit=-1", {}, 422),
    ("status unknown", "documents", "GET", "/?status=deleted", {}, 422),
    ("bad cursor", "documents", "GET", "/?cursor=%27;DROP%20TABLE%20document;--", {}, 422),
    ("unknown query param", "documents", "GET", "/?evil=1", {}, 422),
    ("search empty query", "search", "POST", "/", {"json": {"query": ""}}, 422),
    ("search top_k huge", "search", "POST", "/", {"json": {"query": "x", "top_k": 10**30}}, 422),
    (
        "search top_k float inf",
        "search",
        "POST",
        "/",
        {"data": b'{"query":"x","top_k":1e400}', "content_type": J},
        400,  # not representable: refused while decoding, like NaN and Infinity
    ),
    ("search mode unknown", "search", "POST", "/", {"json": {"query": "x", "mode": "sql"}}, 422),
    (
        "search filter ids not uuid",
        "search",
        "POST",
        "/",
        {"json": {"query": "x", "filters": {"document_ids": ["1 OR 1=1"]}}},
        422,
    ),
    (
        "search sql-looking query",
        "search",
        "POST",
        "/",
        {"json": {"query": "'; DROP TABLE chunk; --", "mode": "text"}},
        200,
    ),
    (
        "search unicode query",
        "search",
        "POST",
        "/",
        {"json": {"query": "\u202e\u0000", "mode": "text"}},
        422,
    ),
    (
        "search emoji query",
        "search",
        "POST",
        "/",
        {"json": {"query": "🦄 ünïcödé ß", "mode": "text"}},
        200,
    ),
    (
        "idempotency key too long",
        "ingest",
        "POST",
        "/",
        {"json": {"title": "t", "text": "x"}, "headers": {"Idempotency-Key": "k" * 300}},
        422,
    ),
]


@pytest.fixture(autouse=True)
def inline(configure: Callable[..., None]) -> None:
    configure(queue_backend="inline", embedding_provider="hashing", max_body_bytes="100000")


def test_there_are_at_least_30_cases() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize(
    ("name", "fn", "method", "path", "kwargs", "status"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
def test_hostile_request(
    name: str, fn: str, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    tenant = make_tenant("hostile")
    kwargs = dict(kwargs)
    headers = tenant.headers | kwargs.pop("headers", {})
    resp = client(fn).open(path, method=method, headers=headers, **kwargs)
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.headers["X-Request-Id"]
    if status >= 400:
        body = json.loads(resp.get_data())
        assert set(body["error"]) >= {"code", "message", "request_id"}


def test_oversized_body_and_auth_failures() -> None:
    tenant = make_tenant("hostile")
    ingest = client("ingest")
    big = ingest.post(
        "/?title=t", data=b"x" * 200_000, content_type="text/plain", headers=tenant.headers
    )
    assert big.status_code == 413
    assert ingest.post("/", json={"title": "t", "text": "x"}).status_code == 401
    for bad in ("Bearer ", "Basic dXNlcjpwYXNz", "Bearer rl_x_y", "Bearer " + "A" * 5000):
        assert ingest.post("/", json={}, headers={"Authorization": bad}).status_code == 401


def test_a_key_of_org_a_cannot_touch_org_b_through_any_route() -> None:
    a, b = make_tenant("walk-a"), make_tenant("walk-b")
    secret = "the launch code of org b is swordfish"
    doc_b = (
        client("ingest")
        .post("/", json={"title": "B only", "text": secret}, headers=b.headers)
        .json["document_id"]
    )
    with tenancy.tenant_session(b.org_id) as s:
        chunk_b = str(s.scalars(tenancy.scoped_select(s, Chunk)).first().id)  # type: ignore[union-attr]
    docs, search = client("documents"), client("search")
    assert docs.get(f"/{doc_b}", headers=a.headers).status_code == 404
    assert doc_b not in json.dumps(docs.get("/", headers=a.headers).json)
    assert docs.delete(f"/{doc_b}", headers=a.headers).json["deleted"] is False
    for mode in ("hybrid", "vector", "text"):
        got = search.post(
            "/",
            json={
                "query": "launch code swordfish",
                "mode": mode,
                "filters": {"document_ids": [doc_b]},
            },
            headers=a.headers,
        )
        assert got.status_code == 200 and got.json["results"] == []
        unfiltered = search.post("/", json={"query": "swordfish", "mode": mode}, headers=a.headers)
        assert chunk_b not in json.dumps(unfiltered.json)
    # Same content in org A is a new document of A, never B's.
    mine = client("ingest").post("/", json={"title": "A copy", "text": secret}, headers=a.headers)
    assert mine.status_code == 202 and mine.json["document_id"] != doc_b
    with tenancy.tenant_session(b.org_id) as s:
        doc = tenancy.get(s, Document, uuid.UUID(doc_b))
        assert doc is not None and doc.status == "ready" and doc.title == "B only"
