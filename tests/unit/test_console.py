"""The console function (issue 19): its files under strict headers, config.json, no path
traversal, JSON 404s; and the CORS wrapper the API functions get (off unless configured)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask import Request, Response
from werkzeug.test import EnvironBuilder

from ragline.api import console as console_module
from ragline.api.cors import with_cors
from ragline.core.config import get_settings

FUNCTION = Path(__file__).resolve().parents[2] / "functions" / "console" / "main.py"
STATIC = console_module.STATIC_DIR
API = {
    "search": "http://127.0.0.1:8101/",
    "documents": "http://127.0.0.1:8102",
    "evil": "https://evil.example/",
    "answer": "javascript:alert(1)",
}


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CONSOLE_API_URLS", json.dumps(API))
    monkeypatch.setenv("CORS_ORIGINS", json.dumps(["http://127.0.0.1:8100/"]))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def client() -> Any:
    app = functions_framework.create_app(target="console", source=str(FUNCTION))  # type: ignore[no-untyped-call]
    return app.test_client()


def test_index_is_the_page_with_strict_headers(client: Any) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = dict(
        part.strip().split(" ", 1) for part in resp.headers["Content-Security-Policy"].split(";")
    )
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == "'none'"
    # connect-src: the console itself and the API origins, nothing that is not http(s)
    assert csp["connect-src"] == "'self' http://127.0.0.1:8101 http://127.0.0.1:8102"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Request-Id"]


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    for page in STATIC.glob("*.html"):
        html = page.read_text()
        for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
            assert not script.strip(), f"inline script in {page.name}"
        assert "<style" not in html and " style=" not in html
        assert not re.search(r"\son[a-z]+=", html), f"inline event handler in {page.name}"


def test_the_app_never_writes_html_from_data() -> None:
    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/app.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
        ("/index.html", "text/html; charset=utf-8"),
    ],
)
def test_files_with_their_types(client: Any, path: str, content_type: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == content_type
    assert resp.data == (STATIC / path.lstrip("/")).read_bytes()
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in resp.headers


def test_config_lists_only_api_functions_with_http_urls(client: Any) -> None:
    resp = client.get("/config.json")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.get_json()["api"] == {
        "documents": "http://127.0.0.1:8102/",
        "search": "http://127.0.0.1:8101/",
    }


@pytest.mark.parametrize(
    "path",
    [
        "/../pyproject.toml",
        "/%2e%2e/%2e%2e/pyproject.toml",
        "/..%2f..%2fpyproject.toml",
        "/__init__.py",
        "/.hidden",
        "/APP.JS",
        "/nope.js",
        "/etc/passwd",
        "//etc/passwd",
        "/app.js%00.html",
    ],
)
def test_unknown_paths_are_json_404s_with_the_headers(client: Any, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404, path
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.get_json()["error"]["code"] == "not_found"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_and_head(client: Any, method: str) -> None:
    resp = client.open("/", method=method)
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET, HEAD"
    assert resp.get_json()["error"]["code"] == "method_not_allowed"


def test_head_has_no_body(client: Any) -> None:
    resp = client.head("/app.js")
    assert resp.status_code == 200 and resp.data == b""


def test_files_table_holds_only_servable_names() -> None:
    names = set(console_module._files())
    assert {"index.html", "app.js", "app.css", "favicon.svg"} <= names
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9_-]*\.[a-z]+", n) for n in names)


# --- CORS on the API functions -----------------------------------------------------------------


def _view(req: Request) -> Response:
    return Response('{"ok": true}', status=200, mimetype="application/json")


def _call(method: str = "GET", **headers: str) -> Response:
    req = Request(
        EnvironBuilder(path="/", method=method, headers=list(headers.items())).get_environ()
    )
    return with_cors(_view, ("GET", "POST"))(req)


def test_cors_preflight_from_the_console_origin() -> None:
    resp = _call(
        "OPTIONS",
        Origin="http://127.0.0.1:8100",
        **{"Access-Control-Request-Method": "POST"},
    )
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8100"
    assert resp.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert "Idempotency-Key" in resp.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in resp.headers
    assert resp.headers["Vary"] == "Origin"


def test_cors_response_exposes_the_request_id() -> None:
    resp = _call(Origin="http://127.0.0.1:8100")
    assert resp.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8100"
    assert "X-Request-Id" in resp.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://127.0.0.1:8100.evil.example", "null"]
)
def test_cors_other_origins_get_nothing(origin: str) -> None:
    resp = _call(Origin=origin)
    assert resp.status_code == 200
    assert not [h for h in resp.headers if h[0].startswith("Access-Control")]
    preflight = _call("OPTIONS", Origin=origin, **{"Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200  # the function's own answer, as without CORS


def test_cors_off_when_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORS_ORIGINS")
    get_settings.cache_clear()
    resp = _call(Origin="http://127.0.0.1:8100")
    assert not [h for h in resp.headers if h[0].startswith("Access-Control")]


def test_cors_keeps_the_view_name() -> None:
    assert with_cors(_view).__name__ == "_view"


def test_only_the_console_package_carries_its_files(tmp_path: Path) -> None:
    from ragline.dev import packaging

    repo = FUNCTION.parents[2]
    built = {p.name: p for p in packaging.build_packages(repo, tmp_path, ["console", "documents"])}
    static = Path("ragline") / "api" / "console" / "static"
    assert (built["console"] / static / "index.html").is_file()
    assert not (built["documents"] / static).exists()
    assert (built["documents"] / "ragline" / "api" / "cors.py").is_file()
