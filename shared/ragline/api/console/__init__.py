"""The browser console (issue 19): a static web app in `static/`, served by the `console`
function, that talks only to the public HTTP API with the user's own API key.

`page_endpoint` wraps the function like `plain_endpoint` (request id, GET/HEAD only, one error
mapping, one log line) and puts strict headers on every answer, files and errors alike: a
Content-Security-Policy with no inline script or style and `connect-src` limited to the API
origins, `nosniff`, no referrer, no framing. Files are looked up in a table of the folder's
own files built once: a path is a key in it or a 404, never a filesystem path.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Request, Response

from ragline.api.body import install_body_limit
from ragline.api.replies import Reply, log_request, reply_for_error, respond, trace
from ragline.core import errors

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: The public API functions the console calls (config.json lists their URLs).
API_FUNCTIONS = ("ingest", "uploads", "documents", "search", "answer", "runs", "health")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_SERVABLE = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(html|css|js|svg|png|ico)$")


@dataclass(frozen=True)
class Asset:
    """A file of the console: its bytes and media type."""

    body: bytes
    content_type: str


@cache
def _files() -> dict[str, Path]:
    """Servable name -> file, read from the folder once (no subfolders, no dotfiles)."""
    if not STATIC_DIR.is_dir():
        return {}
    return {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and _SERVABLE.match(p.name)}


def asset(name: str) -> Asset:
    """The file called `name` in the console's folder, else NotFoundError."""
    path = _files().get(name)
    if path is None:
        raise errors.NotFoundError("no such file in the console")
    return Asset(path.read_bytes(), CONTENT_TYPES[path.suffix])


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def api_urls() -> dict[str, str]:
    """The API functions' base URLs from CONSOLE_API_URLS (http(s) only, ending in '/')."""
    from ragline.core.config import get_settings

    urls = get_settings().console_api_urls
    return {
        name: url if url.endswith("/") else url + "/"
        for name, url in sorted(urls.items())
        if name in API_FUNCTIONS and origin_of(url)
    }


def config() -> dict[str, Any]:
    """What `config.json` tells the page: where each API function is."""
    return {"api": api_urls(), "functions": list(API_FUNCTIONS)}


def content_security_policy(api_origins: list[str]) -> str:
    """No inline script or style, nothing from elsewhere but calls to the API origins."""
    connect = " ".join(["'self'", *sorted(set(api_origins))])
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(api_origins: list[str]) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(api_origins),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        # Small files, changed by deploys: always revalidate, never serve a stale app.
        "Cache-Control": "no-cache",
    }


PageHandler = Callable[[Request], "Asset | Reply"]


def page_endpoint(function: str) -> Callable[[PageHandler], Callable[[Request], Response]]:
    """Wrap a handler that answers files (`Asset`) or JSON (`Reply`) with no API key: request
    id → GET/HEAD only → handler → error mapping → security headers → one log line."""
    methods = ("GET", "HEAD")
    install_body_limit()

    def decorate(handler: PageHandler) -> Callable[[Request], Response]:
        def wrapped(req: Request) -> Response:
            from ragline.core.logs import bind_context

            started = time.monotonic()
            request_id = uuid.uuid4().hex
            bind_context(request_id=request_id, function=function, **trace(req))
            answer: Asset | Reply
            try:
                if req.method not in methods:
                    raise errors.MethodNotAllowedError(f"{req.method} not allowed here")
                answer = handler(req)
            except Exception as exc:
                answer = reply_for_error(exc, request_id, function, allow=methods)
            if isinstance(answer, Asset):
                reply = Reply(None)  # for the log line: status 200
                resp = Response(answer.body, status=200, content_type=answer.content_type)
                resp.headers["X-Request-Id"] = request_id
            else:
                reply = answer
                resp = respond(reply, request_id)
            # Only a page needs the API origins (its connect-src): files and errors load no
            # settings, and the cold-start probe stays light.
            page = isinstance(answer, Asset) and answer.content_type.startswith("text/html")
            origins = [o for u in api_urls().values() if (o := origin_of(u))] if page else []
            resp.headers.update(security_headers(origins))
            log_request(req, function, reply, started, request_id)
            return resp

        wrapped.__name__ = getattr(handler, "__name__", function)
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return decorate
