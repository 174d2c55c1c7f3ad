"""The body-limit middleware: however a function reads its body, it never gets more than the
limit + 1 byte, and a request without a body never looks the limit up (issue 12: cold start)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragline.api.body import body_limit_middleware
from ragline.core import config


def _reader(mode: str, block: int) -> Callable[..., list[bytes]]:
    """A WSGI app that reads its whole body the way `mode` says and keeps what it saw."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        if mode == "read":
            seen = stream.read()
        elif mode == "blocks":
            parts = []
            while part := stream.read(block):
                parts.append(part)
            seen = b"".join(parts)
        elif mode == "readline":
            parts = []
            while part := stream.readline(block):
                parts.append(part)
            seen = b"".join(parts)
        else:
            seen = b"".join(stream)
        environ["seen"] = seen
        start_response("200 OK", [])
        return [b""]

    return app


def _call(app: Any, body: bytes, content_length: str | None = None) -> dict[str, Any]:
    environ: dict[str, Any] = {"wsgi.input": io.BytesIO(body), "REQUEST_METHOD": "POST"}
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    body_limit_middleware(app)(environ, lambda *_args: None)
    return environ


@given(
    body=st.binary(max_size=80).map(lambda b: b.replace(b"\x01", b"\n")),
    limit=st.integers(min_value=1, max_value=60),
    mode=st.sampled_from(["read", "blocks", "readline", "lines"]),
    block=st.integers(min_value=1, max_value=9),
)
def test_a_body_without_length_is_cut_after_the_limit_plus_one_byte(
    body: bytes, limit: int, mode: str, block: int
) -> None:
    settings = config.Settings(_env_file=None, max_body_bytes=limit)
    original = config.get_settings
    config.get_settings = lambda: settings  # type: ignore[assignment]
    try:
        environ = _call(_reader(mode, block), body)
    finally:
        config.get_settings = original
    assert environ["seen"] == body[: limit + 1]


@pytest.mark.parametrize(("body", "content_length"), [(b"", None), (b"", "0")])
def test_a_request_without_a_body_never_loads_settings(
    monkeypatch: pytest.MonkeyPatch, body: bytes, content_length: str | None
) -> None:
    def refuse() -> None:
        raise AssertionError("settings loaded for a request without a body")

    monkeypatch.setattr(config, "get_settings", refuse)
    for mode in ("read", "blocks", "readline", "lines"):
        assert _call(_reader(mode, 4), body, content_length)["seen"] == b""
