"""CORS on a real API function (issue 19): the console's origin gets its preflight and
response headers; unconfigured, a function answers exactly as before."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ragline.core.config import get_settings

from .helpers import Tenant, client

CONSOLE = "http://127.0.0.1:8100"


@pytest.fixture()
def cors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CORS_ORIGINS", json.dumps([CONSOLE]))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_preflight_needs_no_key_and_names_the_methods(cors: None) -> None:
    resp = client("documents").options(
        "/", headers={"Origin": CONSOLE, "Access-Control-Request-Method": "DELETE"}
    )
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == CONSOLE
    assert resp.headers["Access-Control-Allow-Methods"] == "GET, PATCH, DELETE, POST"


def test_answers_carry_the_origin_and_expose_the_request_id(cors: None, tenant: Tenant) -> None:
    resp = client("documents").get("/", headers={"Origin": CONSOLE, **tenant.headers})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == CONSOLE
    assert "X-Request-Id" in resp.headers["Access-Control-Expose-Headers"]
    refused = client("search").post("/", json={"query": "x"}, headers={"Origin": CONSOLE})
    assert refused.status_code == 401  # errors too: the page can read the error body
    assert refused.headers["Access-Control-Allow-Origin"] == CONSOLE


def test_unconfigured_nothing_changes(tenant: Tenant) -> None:
    get_settings.cache_clear()
    resp = client("documents").get("/", headers={"Origin": CONSOLE, **tenant.headers})
    assert resp.status_code == 200
    assert not [h for h in resp.headers if h[0].startswith("Access-Control")]
    preflight = client("documents").options(
        "/", headers={"Origin": CONSOLE, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 405
    assert not [h for h in preflight.headers if h[0].startswith("Access-Control")]
