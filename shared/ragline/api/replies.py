"""One reply for every outcome: the JSON body and status of a handler's answer, the single
exception → reply mapping of every entry point, and the request log line."""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from flask import Request, Response
from werkzeug import exceptions as wz_exc

from ragline.core import errors

#: Exception class -> HTTP status, looked up along the MRO (most specific first).
STATUS_BY_ERROR: dict[type[BaseException], int] = {
    errors.MalformedBodyError: 400,
    errors.PayloadTooLargeError: 413,
    errors.UnsupportedMediaTypeError: 415,
    errors.ValidationError: 422,
    errors.ExtractionError: 422,
    errors.UnauthenticatedError: 401,
    errors.ForbiddenError: 403,
    errors.NotFoundError: 404,
    errors.MethodNotAllowedError: 405,
    errors.ConflictError: 409,
    errors.IdempotencyMismatchError: 422,
    errors.RateLimitedError: 429,
    errors.DatabaseError: 503,
    errors.QueueError: 503,
    errors.StorageError: 502,
    errors.TransientError: 503,
    errors.EmbeddingError: 502,
    errors.RerankError: 502,
}


@dataclass
class Reply:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def stack_summary(exc: BaseException) -> list[str]:
    """Where an exception came from (file:line function), without messages or values,
    which could carry request data."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/ragline/" in f.filename or "/functions/" in f.filename]
    chosen = ours[-6:] + frames[-1:]
    return [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}" for f in chosen]


def status_for(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_body(code: str, message: str, request_id: str, details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details is not None:
        err["details"] = details
    return {"error": err}


#: Codes of the 4xx statuses werkzeug and Flask answer by themselves.
_FRAMEWORK_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def reply_for_error(
    exc: BaseException, request_id: str, function: str, *, allow: tuple[str, ...] = ()
) -> Reply:
    """The one exception → reply mapping of every entry point (API, task, scheduled, plain):
    ragline errors by class, an unreachable database as 503 `database_unavailable`, anything
    else as a 500 that carries only the request id (the stack goes to the log)."""
    if isinstance(exc, errors.RaglineError):
        status = status_for(exc)
        details = exc.details
        if isinstance(details, dict):
            details = {k: v for k, v in details.items() if k != "headers"}
        reply = Reply(error_body(exc.code, exc.message, request_id, details), status)
        if status == 405:
            own = details.get("allow") if isinstance(details, dict) else None
            reply.headers["Allow"] = ", ".join(own or allow)
        if isinstance(details, dict) and "retry_after" in details:
            reply.headers["Retry-After"] = str(details["retry_after"])
        if isinstance(exc.details, dict) and isinstance(exc.details.get("headers"), dict):
            reply.headers.update(exc.details["headers"])
        return reply
    if isinstance(exc, wz_exc.HTTPException) and (exc.code or 500) < 500:
        # What werkzeug refuses by itself: a path its router does not know, a body shorter
        # than its Content-Length (ClientDisconnected, 400): the client's fault, never a 500.
        status = exc.code or 400
        code = _FRAMEWORK_CODES.get(status, "malformed_request")
        return Reply(error_body(code, (exc.name or "bad request").lower(), request_id), status)
    from ragline.core.logs import log
    from ragline.db.engine import is_unavailable

    if is_unavailable(exc):
        log(
            "ERROR",
            "database unavailable",
            request_id=request_id,
            function=function,
            error=type(exc).__name__,
        )
        reply = Reply(error_body("database_unavailable", "database unavailable", request_id), 503)
        reply.headers["Retry-After"] = "5"
        return reply
    log(
        "ERROR",
        "unhandled error",
        request_id=request_id,
        function=function,
        error=type(exc).__name__,
        stack=stack_summary(exc),
    )
    return Reply(error_body("internal", "internal error", request_id), 500)


def respond(reply: Reply, request_id: str) -> Response:
    body = "" if reply.status == 204 else json.dumps(reply.body, default=str)
    resp = Response(body, status=reply.status, mimetype="application/json")
    for k, v in reply.headers.items():
        resp.headers[k] = v
    resp.headers["X-Request-Id"] = request_id
    return resp


def trace(req: Request) -> dict[str, str]:
    """The Cloud Logging trace field, when the request carries a trace header (settings are
    loaded only then: a cold start's first request need not load them just to log)."""
    header = req.headers.get("X-Cloud-Trace-Context")
    if not header:
        return {}
    from ragline.core.config import get_settings
    from ragline.core.logs import trace_field

    return trace_field(header, get_settings().gcp_project)


def log_request(
    req: Request,
    function: str,
    reply: Reply,
    started: float,
    request_id: str,
    **extra: Any,
) -> None:
    """The one structured log line of an HTTP request (no payloads, no secrets)."""
    from ragline.core.logs import log

    log(
        "WARNING" if reply.status >= 500 else "INFO",
        f"{req.method} {function} {reply.status}",
        request_id=request_id,
        function=function,
        **extra,
        httpRequest={
            "requestMethod": req.method,
            "requestUrl": req.path,
            "status": reply.status,
            "latency": f"{time.monotonic() - started:.6f}s",
        },
        **trace(req),
    )
