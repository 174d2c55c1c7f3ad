"""CORS for the browser console (issue 19): API functions answer cross-origin requests only
from the origins in `CORS_ORIGINS` (the console's own), and not at all when it is empty.

Settings load only for a request that carries an `Origin` header, so a cold start's first
request (and every server-to-server call) costs nothing more. A preflight (`OPTIONS` with
`Access-Control-Request-Method`) from an allowed origin is answered here, before
authentication: the browser sends no key with it. Anything else goes through the function as
before and gets `Access-Control-Allow-Origin` added; an origin not on the list gets no CORS
header, and the browser keeps the response from the page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import Request, Response

#: Request headers a console may send (the key, a JSON or file body, idempotency).
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-API-Key"
#: Response headers a page may read besides the simple ones (errors carry the request id).
EXPOSE_HEADERS = (
    "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
    "Idempotent-Replayed, Allow"
)
#: How long a browser may cache a preflight answer (seconds).
MAX_AGE = "600"
DEFAULT_METHODS = ("GET", "POST", "PATCH", "DELETE")

View = Callable[[Request], Response]


def allowed_origin(req: Request) -> str | None:
    """The request's `Origin` when it is on the CORS_ORIGINS list, else None."""
    origin = req.headers.get("Origin")
    if not origin:
        return None
    from ragline.core.config import get_settings

    allowed = {o.rstrip("/") for o in get_settings().cors_origins}
    return origin if origin in allowed else None


def with_cors(view: View, methods: tuple[str, ...] = ()) -> View:
    """`view` plus CORS for the allowed origins: preflights answered (204) with `methods`,
    other responses given `Access-Control-Allow-Origin`; unchanged for everyone else."""
    allow_methods = ", ".join(methods or DEFAULT_METHODS)

    @functools.wraps(view)
    def wrapped(req: Request) -> Response:
        origin = allowed_origin(req)
        if origin is None:
            return view(req)
        if req.method == "OPTIONS" and req.headers.get("Access-Control-Request-Method"):
            resp = Response(status=204)
            resp.headers["Access-Control-Allow-Methods"] = allow_methods
            resp.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            resp.headers["Access-Control-Max-Age"] = MAX_AGE
        else:
            resp = view(req)
            resp.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers.add("Vary", "Origin")
        return resp

    return wrapped
