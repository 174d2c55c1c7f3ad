"""The one HTTP client for model providers (`ragline.cloud.http`), against pytest-httpserver."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ragline.cloud import http
from ragline.core.errors import EmbeddingError, TransientError


@pytest.fixture(autouse=True)
def _fresh_client() -> None:
    http.reset()


def post(server: HTTPServer, **kwargs: object) -> object:
    return http.post_json(
        server.url_for("/embed"),
        {"input": ["x"]},
        {"Authorization": "Bearer k"},
        provider="test",
        kind="embeddings",
        permanent=EmbeddingError,
        **kwargs,  # type: ignore[arg-type]
    )


def test_json_in_json_out_and_the_connection_is_reused(httpserver: HTTPServer) -> None:
    seen: list[str] = []

    def handle(request: Request) -> Response:
        seen.append(request.headers.get("Authorization", ""))
        return Response(json.dumps({"ok": json.loads(request.get_data())["input"]}))

    httpserver.expect_request("/embed", method="POST").respond_with_handler(handle)
    assert post(httpserver) == {"ok": ["x"]}
    assert post(httpserver) == {"ok": ["x"]}
    assert seen == ["Bearer k", "Bearer k"]
    assert http.client() is http.client()


def test_a_short_retry_after_is_honoured_in_process(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/embed").respond_with_json(
        {"error": {"message": "busy"}}, status=503, headers={"Retry-After": "0"}
    )
    httpserver.expect_ordered_request("/embed").respond_with_json({"ok": True})
    assert post(httpserver) == {"ok": True}


def test_a_long_retry_after_goes_back_to_the_queue(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/embed").respond_with_json(
        {"error": {"message": "Rate limit reached"}}, status=429, headers={"Retry-After": "30"}
    )
    with pytest.raises(TransientError, match="test embeddings: HTTP 429: Rate limit") as info:
        post(httpserver)
    assert info.value.details["retry_after"] == "30"
    assert len(httpserver.log) == 1


def test_a_refusal_is_permanent_and_a_non_json_reply_too(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/embed").respond_with_json(
        {"error": "bad model"}, status=400
    )
    httpserver.expect_ordered_request("/embed").respond_with_data("<html>", status=200)
    with pytest.raises(EmbeddingError, match="HTTP 400: bad model"):
        post(httpserver)
    with pytest.raises(EmbeddingError, match="not JSON"):
        post(httpserver)


def test_an_unreachable_provider_is_transient() -> None:
    with pytest.raises(TransientError, match="request failed"):
        http.post_json(
            "http://127.0.0.1:9/x",
            {},
            {},
            provider="test",
            kind="LLM",
            permanent=EmbeddingError,
        )
