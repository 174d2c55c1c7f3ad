"""The one way HTTP functions are written: `@endpoint(...)` composes request id, limits,
authentication, tenancy, error mapping and a structured log line around a small handler.

    @functions_framework.http
    @endpoint("documents", scopes={"GET": "read", "DELETE": "write"})
    def documents(req: Request, ctx: Context) -> Reply: ...
"""

from __future__ import annotations

import json
import math
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pydantic
from flask import Request, Response
from sqlalchemy.orm import Session
from werkzeug import exceptions as wz_exc
from werkzeug.routing import Map, RequestRedirect, Rule

from ragline import apikeys, errors, idempotency, ratelimit, tenancy
from ragline.apikeys import Principal
from ragline.config import get_settings
from ragline.db import get_engine, is_unavailable
from ragline.logs import log, trace_field

T = TypeVar("T", bound=pydantic.BaseModel)

#: Exception class -> HTTP status, looked up along the MRO (most specific first).
STATUS_BY_ERROR: dict[type[BaseException], int] = {
    errors.MalformedBodyError: 400,
    errors.PayloadTooLargeError: 413,
    errors.UnsupportedMediaTypeError: 415,
    errors.ValidationError: 422,
    errors.UnauthenticatedError: 401,
    errors.ForbiddenError: 403,
    errors.NotFoundError: 404,
    errors.MethodNotAllowedError: 405,
    errors.ConflictError: 409,
    errors.IdempotencyMismatchError: 422,
    errors.RateLimitedError: 429,
    errors.DatabaseError: 503,
    errors.QueueError: 503,
    errors.TransientError: 503,
    errors.EmbeddingError: 502,
}
MAX_JSON_DEPTH = 32
_BODY_KEY = "ragline.body"
UNSAFE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


@dataclass
class Reply:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    """What a handler gets: who is calling, the tenant session, and post-commit hooks."""

    request_id: str
    function: str
    principal: Principal
    session: Session
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def org_id(self) -> uuid.UUID:
        return self.principal.org_id


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


#: How much of a refused body is read and thrown away so that an ordinary HTTP client, still
#: sending, gets the 413 instead of a broken pipe. Cloud Run refuses HTTP/1 bodies over
#: 32 MiB itself; beyond this the connection is closed unread. Memory stays one block.
DRAIN_MAX_BYTES = 32 * 1024 * 1024
_BLOCK = 64 * 1024


class _CappedInput:
    """A WSGI input stream that yields at most `cap` bytes and then reports end of body:
    nothing downstream (functions-framework's after-request hook reads every body to the end)
    can pull more than the cap into memory, with or without a Content-Length."""

    def __init__(self, stream: Any, cap: int) -> None:
        self._stream = stream
        self._left = cap

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = bytes(self._stream.read(want))
        self._left -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = bytes(self._stream.readline(want))
        self._left -= len(data)
        return data

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def drain(self, limit: int = DRAIN_MAX_BYTES) -> None:
        """Discard what is left of the body past the cap, up to `limit` bytes."""
        if self._left > 0:
            return
        _discard(self._stream, limit)


def _discard(stream: Any, limit: int) -> bool:
    """Read and drop up to `limit` bytes, one block at a time; True when the body ended."""
    while limit > 0:
        block = stream.read(min(_BLOCK, limit))
        if not block:
            return True
        limit -= len(block)
    return False


def body_limit_middleware(app: Any) -> Any:
    """WSGI middleware: a declared Content-Length over MAX_BODY_BYTES gets 413 before the
    function runs (the body is discarded, never kept); any other body is capped at the limit
    + 1 byte, so `read_body` sees the overflow and answers 413 while at most that much was
    buffered."""

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        limit = get_settings().max_body_bytes
        declared = environ.get("CONTENT_LENGTH") or ""
        refusal: tuple[str, str, str] | None = None
        if declared:
            if not declared.isdigit():
                refusal = ("400 Bad Request", "malformed_body", "invalid Content-Length")
            elif int(declared) > limit:
                refusal = (
                    "413 Request Entity Too Large",
                    "payload_too_large",
                    f"body larger than {limit} bytes",
                )
        if refusal is not None:
            request_id = uuid.uuid4().hex
            body = json.dumps(error_body(refusal[1], refusal[2], request_id)).encode()
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Request-Id", request_id),
            ]
            size = int(declared) if declared.isdigit() else DRAIN_MAX_BYTES + 1
            if size > DRAIN_MAX_BYTES or not _discard(environ["wsgi.input"], size):
                headers.append(("Connection", "close"))
            start_response(refusal[0], headers)
            return [body]
        capped = _CappedInput(environ["wsgi.input"], limit + 1)
        environ["wsgi.input"] = capped
        try:
            return app(environ, start_response)
        finally:
            capped.drain()

    middleware.ragline_body_limit = True  # type: ignore[attr-defined]
    return middleware


def install_body_limit() -> None:
    """Put `body_limit_middleware` in front of the Flask app that is loading this function.

    functions-framework executes a function's source inside the app context of the app it
    built, so decorating a handler (at import) is the moment to wrap that app, once."""
    import flask

    if not flask.has_app_context():
        return
    app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    if not getattr(app.wsgi_app, "ragline_body_limit", False):
        app.wsgi_app = body_limit_middleware(app.wsgi_app)


def read_body(req: Request, limit: int | None = None) -> bytes:
    """The raw body, refusing more than `limit` bytes (MAX_BODY_BYTES) before reading it all."""
    cached = req.environ.get(_BODY_KEY)
    if isinstance(cached, bytes):
        return cached
    limit = limit or get_settings().max_body_bytes
    if req.content_length is not None and req.content_length > limit:
        raise errors.PayloadTooLargeError(f"body larger than {limit} bytes")
    data = req.stream.read(limit + 1)
    if len(data) > limit:
        raise errors.PayloadTooLargeError(f"body larger than {limit} bytes")
    req.environ[_BODY_KEY] = data
    return data


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()], default=level + 1)
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value], default=level + 1)
    return level


def parse_json(raw: bytes) -> Any:
    """Decode a JSON body: valid UTF-8, valid JSON, bounded nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.MalformedBodyError("body is not valid UTF-8") from exc
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise errors.MalformedBodyError(f"body is not valid JSON: {exc}"[:200]) from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise errors.MalformedBodyError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if "\\u0000" in text and _has_nul(value):
        # PostgreSQL stores no NUL character, in text or jsonb: refuse it here, once.
        raise errors.ValidationError("NUL characters (\\u0000) are not allowed")
    if "\\u" in text.lower():
        # JSON escapes can smuggle lone surrogates, which no database can store.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise errors.MalformedBodyError(
                "body contains invalid unicode (lone surrogate)"
            ) from exc
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """Numbers like 1e999 overflow to infinity, which JSONB (and JSON) cannot hold."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _validation_error(exc: pydantic.ValidationError) -> errors.ValidationError:
    details = [{"loc": list(e["loc"]), "type": e["type"], "msg": e["msg"]} for e in exc.errors()]
    return errors.ValidationError("request body failed validation", details=details)


def validate(model: type[T], value: Any) -> T:
    """Validate decoded values in lax mode (query parameters are strings: `?limit=5` is 5);
    field errors become 422 with their locations and types."""
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise _validation_error(exc) from exc


def validate_json(model: type[T], raw: bytes) -> T:
    """Check a raw JSON body (`parse_json`), then validate it in strict JSON mode: a number
    must be a number and a boolean a boolean (`"top_k": "5"` or `true` is a 422), while
    JSON's strings still become UUIDs and timestamps."""
    parse_json(raw)
    try:
        return model.model_validate_json(raw, strict=True)
    except pydantic.ValidationError as exc:
        raise _validation_error(exc) from exc


def json_body(req: Request, model: type[T]) -> T:
    """Read, decode and validate a JSON request body."""
    ctype = (req.mimetype or "").lower()
    if ctype != "application/json":
        raise errors.UnsupportedMediaTypeError("Content-Type must be application/json")
    return validate_json(model, read_body(req))


def routes(*rules: Rule) -> Map:
    """A function's route table. Ids are canonical UUIDs only (`<uuid:...>`, werkzeug's
    converter): no braces, no `urn:`, no missing hyphens; a trailing slash is optional."""
    return Map(list(rules), strict_slashes=False, merge_slashes=False)


def match_route(req: Request, table: Map) -> tuple[str, dict[str, Any]]:
    """`(endpoint, arguments)` of the rule matching the request's path and method: an
    unknown path is a 404 and a known path with another method a 405 naming the path's
    own methods."""
    adapter = table.bind("function", path_info=req.path)
    try:
        endpoint, args = adapter.match(req.path, method=req.method)
    except wz_exc.MethodNotAllowed as exc:
        allowed = sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"})
        raise errors.MethodNotAllowedError(
            f"{req.method} not allowed on this path", details={"allow": allowed}
        ) from exc
    except (wz_exc.NotFound, RequestRedirect) as exc:
        raise errors.NotFoundError(f"no such resource: {req.path[:120]!r}") from exc
    return str(endpoint), dict(args)


def check_query_args(req: Request) -> None:
    """Refuse query parameters carrying NUL characters (PostgreSQL cannot store them)."""
    for key, values in req.args.lists():
        if "\x00" in key or any("\x00" in v for v in values):
            raise errors.ValidationError("NUL characters are not allowed in query parameters")


def query_params(req: Request, model: type[T]) -> T:
    """Validate query parameters; a repeated parameter is refused rather than guessed."""
    check_query_args(req)
    repeated = [k for k in req.args if len(req.args.getlist(k)) > 1]
    if repeated:
        raise errors.ValidationError(f"repeated query parameter(s): {', '.join(repeated)}")
    return validate(model, dict(req.args))


def _single_header(req: Request, name: str) -> str | None:
    values = req.headers.getlist(name)
    if len(values) > 1:
        raise errors.MalformedHeaderError(f"the {name} header must appear once")
    return values[0] if values else None


def _api_key(req: Request) -> str:
    auth = _single_header(req, "Authorization") or ""
    if "," in auth:  # repeated headers arrive comma-joined in WSGI; keys never contain commas
        raise errors.MalformedHeaderError("the Authorization header must appear once")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    key = (_single_header(req, "X-API-Key") or "").strip()
    if not key:
        raise errors.UnauthenticatedError("missing API key (Authorization: Bearer rl_…)")
    return key


def is_operator(req: Request) -> bool:
    """True for an internal caller (the queue/scheduler credential: the task secret locally,
    the scheduler's OIDC token in GCP; works while the database is down) or an API key with
    the `admin` scope. Never raises: for endpoints that answer everyone but tell operators
    more."""
    try:
        verify_queue_or_scheduler(
            req, "health", caller=get_settings().scheduler_caller_service_account
        )
        return get_settings().task_auth != "none"
    except Exception:  # noqa: S110 - not internal: try an API key next
        pass
    if not req.headers.get("Authorization") and not req.headers.get("X-API-Key"):
        return False
    try:
        return "admin" in _authenticate(req).scopes
    except Exception:
        return False


def _authenticate(req: Request) -> Principal:
    with Session(get_engine()) as session:
        return apikeys.authenticate(session, _api_key(req))


def _canonical_query(req: Request) -> str:
    """The query string with parameters sorted: part of what an Idempotency-Key stands for."""
    return "&".join(f"{k}={v}" for k, v in sorted(req.args.items(multi=True)))


@dataclass
class _Admission:
    rate_headers: dict[str, str]
    idempotency_key: str | None
    replay: idempotency.Replay | None


def _admit(req: Request, function: str, principal: Principal, bucket: str) -> _Admission:
    """One short transaction: coalesced last-used stamp, rate limit, idempotency claim."""
    settings = get_settings()
    key = None
    if req.method in UNSAFE_METHODS:
        raw = _single_header(req, "Idempotency-Key")
        key = idempotency.validate_key(raw) if raw is not None else None
    req_hash = (
        idempotency.request_hash(req.method, req.path, _canonical_query(req), read_body(req))
        if key
        else ""
    )
    with tenancy.tenant_session(principal.org_id) as session:
        apikeys.touch(session, principal.api_key_id)
        decision = ratelimit.take(session, principal.api_key_id, bucket)
        replay = None
        if decision.allowed and key:
            replay = idempotency.claim(
                session,
                function,
                key,
                req_hash,
                lock_s=settings.idempotency_lock_s,
                ttl_s=settings.idempotency_ttl_s,
            )
    if not decision.allowed:
        raise errors.RateLimitedError(
            f"rate limit of {decision.limit}/min for {bucket!r} exceeded",
            details={"retry_after": decision.retry_after_s, "headers": decision.headers()},
        )
    return _Admission(decision.headers(), key, replay)


def _finish_idempotency(principal: Principal, function: str, key: str, reply: Reply | None) -> None:
    """Store the reply for replay, or release the claim when the request failed."""
    with tenancy.tenant_session(principal.org_id) as session:
        if reply is not None and reply.status < 500:
            idempotency.complete(session, function, key, reply.status, reply.body, reply.headers)
        else:
            idempotency.release(session, function, key)


def _respond(reply: Reply, request_id: str) -> Response:
    body = "" if reply.status == 204 else json.dumps(reply.body, default=str)
    resp = Response(body, status=reply.status, mimetype="application/json")
    for k, v in reply.headers.items():
        resp.headers[k] = v
    resp.headers["X-Request-Id"] = request_id
    return resp


Handler = Callable[[Request, Context], Reply]


def _log_request(
    req: Request,
    function: str,
    reply: Reply,
    started: float,
    request_id: str,
    **extra: Any,
) -> None:
    """The one structured log line of an HTTP request (no payloads, no secrets)."""
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
        **trace_field(req.headers.get("X-Cloud-Trace-Context"), get_settings().gcp_project),
    )


def _run(
    req: Request,
    handler: Handler,
    request_id: str,
    function: str,
    principal: Principal,
    admission: _Admission,
) -> Reply:
    """The handler in its tenant transaction, then after-commit hooks; settles idempotency."""
    reply: Reply | None = None
    hooks: list[Callable[[], None]] = []
    try:
        with tenancy.tenant_session(principal.org_id) as session:
            reply = handler(req, Context(request_id, function, principal, session, hooks))
        for hook in hooks:
            hook()
        return reply
    except BaseException:
        reply = None
        raise
    finally:
        if admission.idempotency_key:
            _finish_idempotency(principal, function, admission.idempotency_key, reply)


def endpoint(
    function: str,
    *,
    scopes: dict[str, str] | None = None,
    methods: tuple[str, ...] = (),
    bucket: str = "crud",
) -> Callable[[Handler], Callable[[Request], Response]]:
    """Wrap a handler: request id → method check → auth → scope → rate limit → idempotency →
    tenant transaction → handler → commit → after-commit hooks → error mapping → log line."""
    needed = scopes or {}
    install_body_limit()

    def decorate(handler: Handler) -> Callable[[Request], Response]:
        def wrapped(req: Request) -> Response:
            started = time.monotonic()
            request_id = uuid.uuid4().hex
            org_id: uuid.UUID | None = None
            rate_headers: dict[str, str] = {}
            try:
                if methods and req.method not in methods:
                    raise errors.MethodNotAllowedError(f"{req.method} not allowed here")
                principal = _authenticate(req)
                org_id = principal.org_id
                scope = needed.get(req.method, "write" if req.method != "GET" else "read")
                if scope not in principal.scopes and "admin" not in principal.scopes:
                    raise errors.ForbiddenError(f"API key lacks the {scope!r} scope")
                admission = _admit(req, function, principal, bucket)
                rate_headers = admission.rate_headers
                if admission.replay is not None:
                    replayed = admission.replay
                    reply = Reply(replayed.body, replayed.status, dict(replayed.headers))
                    reply.headers["Idempotent-Replayed"] = "true"
                else:
                    reply = _run(req, handler, request_id, function, principal, admission)
            except Exception as exc:
                reply = reply_for_error(exc, request_id, function, allow=methods)
            for name, value in rate_headers.items():
                reply.headers.setdefault(name, value)
            _log_request(req, function, reply, started, request_id, org_id=org_id)
            return _respond(reply, request_id)

        wrapped.__name__ = getattr(handler, "__name__", function)
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return decorate


def verify_queue_or_scheduler(req: Request, audience_key: str, *, caller: str | None) -> None:
    """Only Cloud Tasks or Cloud Scheduler may call a private endpoint: the shared secret
    header locally (TASK_AUTH=secret), an OIDC token in GCP (TASK_AUTH=oidc).

    The token audience is `FUNCTION_URLS[audience_key]` (else the request's base URL);
    `caller`, when set, is the only service account whose tokens are accepted."""
    settings = get_settings()
    if settings.task_auth == "none":
        if settings.environment in ("gcp", "aws"):
            raise errors.UnauthenticatedError("task authentication is disabled")
        return
    if settings.task_auth == "secret":
        import hmac

        from ragline.queues import TASK_SECRET_HEADER

        expected = settings.task_secret.get_secret_value() if settings.task_secret else ""
        given = req.headers.get(TASK_SECRET_HEADER, "")
        if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
            raise errors.UnauthenticatedError("this endpoint accepts only its queue or scheduler")
        return
    auth = req.headers.get("Authorization", "")
    if not auth.lower().startswith("bearer "):
        raise errors.UnauthenticatedError("missing OIDC token")
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    audience = settings.function_urls.get(audience_key, req.base_url)
    try:
        claims = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
            auth[7:], google_requests.Request(), audience
        )
    except ValueError as exc:
        raise errors.UnauthenticatedError("invalid OIDC token") from exc
    if caller and claims.get("email") != caller:
        raise errors.ForbiddenError("OIDC token of an unexpected service account")


def _verify_task_caller(req: Request, stage: str) -> None:
    """Only the stage's queue may call a task endpoint."""
    verify_queue_or_scheduler(req, stage, caller=get_settings().task_caller_service_account)


def task_endpoint(stage: str) -> Callable[[Request], Response]:
    """The HTTP face of a pipeline stage: verify the caller, run the stage, 200 or 503."""
    from ragline import pipeline

    install_body_limit()

    def wrapped(req: Request) -> Response:
        started = time.monotonic()
        request_id = req.headers.get("X-CloudTasks-TaskName") or uuid.uuid4().hex
        attempt = 0
        try:
            if req.method != "POST":
                raise errors.MethodNotAllowedError("task endpoints accept POST only")
            _verify_task_caller(req, stage)
            raw = parse_json(read_body(req))
            if not isinstance(raw, dict):
                raise errors.MalformedBodyError("task body must be a JSON object")
            validate(pipeline.TaskPayload, raw)
            attempt = int(req.headers.get("X-CloudTasks-TaskRetryCount", "0") or 0)
            outcome = pipeline.run_stage(
                stage, raw, attempt=attempt, max_attempts=get_settings().task_max_attempts
            )
            reply = Reply({"ok": outcome.ok, "detail": outcome.detail}, 200 if outcome.ok else 503)
        except Exception as exc:
            reply = reply_for_error(exc, request_id, stage, allow=("POST",))
        log(
            "INFO" if reply.status < 500 else "WARNING",
            f"task {stage} {reply.status}",
            request_id=request_id,
            function=stage,
            attempt=attempt,
            httpRequest={
                "requestMethod": req.method,
                "status": reply.status,
                "latency": f"{time.monotonic() - started:.6f}s",
            },
        )
        return _respond(reply, request_id)

    wrapped.__name__ = stage
    return wrapped


PlainHandler = Callable[[Request], Reply]


def plain_endpoint(
    function: str,
    *,
    methods: tuple[str, ...],
    verify: Callable[[Request], None] | None = None,
) -> Callable[[PlainHandler], Callable[[Request], Response]]:
    """Wrap a handler that needs no API key (health checks, scheduler targets): request id →
    method check → `verify` (caller check) → handler → error mapping → one log line. The
    handler opens any transaction it needs itself."""
    install_body_limit()

    def decorate(handler: PlainHandler) -> Callable[[Request], Response]:
        def wrapped(req: Request) -> Response:
            started = time.monotonic()
            request_id = uuid.uuid4().hex
            try:
                if req.method not in methods:
                    raise errors.MethodNotAllowedError(f"{req.method} not allowed here")
                if verify is not None:
                    verify(req)
                reply = handler(req)
            except Exception as exc:
                reply = reply_for_error(exc, request_id, function, allow=methods)
            _log_request(req, function, reply, started, request_id)
            return _respond(reply, request_id)

        wrapped.__name__ = getattr(handler, "__name__", function)
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return decorate


def scheduled_endpoint(function: str) -> Callable[[PlainHandler], Callable[[Request], Response]]:
    """A POST endpoint only Cloud Scheduler (OIDC, `SCHEDULER_CALLER_SERVICE_ACCOUNT`) or, with
    TASK_AUTH=secret, a holder of TASK_SECRET may call; the audience is FUNCTION_URLS[function]."""

    def verify(req: Request) -> None:
        caller = get_settings().scheduler_caller_service_account
        verify_queue_or_scheduler(req, function, caller=caller)

    return plain_endpoint(function, methods=("POST",), verify=verify)


def optional_json_body(req: Request, model: type[T]) -> T:
    """Like `json_body`, but an empty body validates as `{}` (scheduler jobs may send none)."""
    raw = read_body(req)
    if not raw.strip():
        return validate(model, {})
    ctype = (req.mimetype or "").lower()
    if ctype not in ("application/json", ""):
        raise errors.UnsupportedMediaTypeError("Content-Type must be application/json")
    return validate_json(model, raw)
