"""The one way HTTP functions are written: `@endpoint(...)` composes request id, limits,
authentication, tenancy, error mapping and a structured log line around a small handler.

    @functions_framework.http
    @endpoint("documents", scopes={"GET": "read", "DELETE": "write"})
    def documents(req: Request, ctx: Context) -> Reply: ...
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Request, Response

from ragline.api.body import (
    install_body_limit,
    read_body,
)
from ragline.api.cors import with_cors
from ragline.api.replies import (
    Reply,
    log_request,
    reply_for_error,
    respond,
    trace,
)
from ragline.api.tasks import verify_queue_or_scheduler
from ragline.core import errors
from ragline.guardrails.admission import admitted

if TYPE_CHECKING:  # imported where used: a cold start loads none of them before a request
    from sqlalchemy.orm import Session

    from ragline.guardrails.apikeys import Principal
    from ragline.guardrails.idempotency import Replay

UNSAFE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


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

    @property
    def run_owner(self) -> uuid.UUID | None:
        """Whose runs a listing shows: the user's own, unless an admin (or a server key)."""
        return None if self.principal.is_admin else self.principal.user_id

    def error_reply(self, exc: errors.RaglineError, **details: Any) -> Reply:
        """Commit, then answer with `exc` mapped like a raised error (its status, code and
        details, plus `details`): for failures that must stay recorded, e.g. a failed run."""
        reply = reply_for_error(exc, self.request_id, self.function)
        body = reply.body["error"]
        body["details"] = {**(body.get("details") or {}), **details}
        return reply


def _single_header(req: Request, name: str) -> str | None:
    values = req.headers.getlist(name)
    if len(values) > 1:
        raise errors.MalformedHeaderError(f"the {name} header must appear once")
    return values[0] if values else None


def _credential(req: Request) -> tuple[str, bool]:
    """The caller's credential and whether it came as `Authorization: Bearer` (an API key
    there or in X-API-Key; an ID token only there)."""
    auth = _single_header(req, "Authorization") or ""
    if "," in auth:  # repeated headers arrive comma-joined in WSGI; keys never contain commas
        raise errors.MalformedHeaderError("the Authorization header must appear once")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), True
    key = (_single_header(req, "X-API-Key") or "").strip()
    if not key:
        raise errors.UnauthenticatedError(
            "missing credentials (Authorization: Bearer rl_… API key or OIDC ID token)"
        )
    return key, False


def is_operator(req: Request) -> bool:
    """True for an internal caller (the queue/scheduler credential: the task secret locally,
    the scheduler's OIDC token in GCP; works while the database is down) or an API key with
    the `admin` scope. Never raises: for endpoints that answer everyone but tell operators
    more."""
    from ragline.core.config import get_settings

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
    from sqlalchemy.orm import Session

    from ragline.db.engine import get_engine
    from ragline.guardrails import apikeys, oidc

    raw, bearer = _credential(req)
    # Told apart by shape, never by trying one then the other (issue 18).
    if bearer and oidc.looks_like_jwt(raw):
        from ragline.guardrails import users

        identity = oidc.verify(raw)
        with Session(get_engine()) as session:
            return users.locate(session, identity)
    with Session(get_engine()) as session:
        return apikeys.authenticate(session, raw)


def _canonical_query(req: Request) -> str:
    """What an Idempotency-Key stands for besides method, path and body: the query parameters
    (sorted, each escaped, so `?title=A&x=1` and `?title=A%26x%3D1` differ) and the media type
    (the same bytes as JSON and as text/plain are different requests)."""
    pairs = sorted(req.args.items(multi=True))
    return f"{(req.mimetype or '').lower()}?{urllib.parse.urlencode(pairs)}"


@dataclass
class _Admission:
    rate_headers: dict[str, str]
    idempotency_key: str | None
    replay: Replay | None


def _idempotency_scope(function: str, principal: Principal) -> str:
    """An end user's Idempotency-Keys are their own: another user's same key is no replay."""
    return function if principal.user_id is None else f"{function}:user:{principal.user_id}"


def _admit(
    req: Request, function: str, principal: Principal, bucket: str
) -> tuple[Principal, _Admission]:
    """One short transaction: the user's row (first sign-in), coalesced last-used stamp,
    rate limit (per user, else per key), idempotency claim."""
    from ragline.core.config import get_settings
    from ragline.db import tenancy
    from ragline.guardrails import apikeys, idempotency, ratelimit, users

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
    # Bound with no principals: this transaction reads no documents.
    with tenancy.tenant_session(principal.org_id, principals=()) as session:
        principal = users.sign_in(session, principal)
        if principal.api_key_id is not None:
            apikeys.touch(session, principal.api_key_id)
        decision = ratelimit.take(session, principal.caller_id, bucket)
        replay = None
        if decision.allowed and key:
            replay = idempotency.claim(
                session,
                _idempotency_scope(function, principal),
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
    return principal, _Admission(decision.headers(), key, replay)


def _finish_idempotency(principal: Principal, function: str, key: str, reply: Reply | None) -> None:
    """Store the reply for replay, or release the claim when the request failed."""
    from ragline.db import tenancy
    from ragline.guardrails import idempotency

    scope = _idempotency_scope(function, principal)
    with tenancy.tenant_session(principal.org_id, principals=()) as session:
        if reply is not None and reply.status < 500:
            idempotency.complete(session, scope, key, reply.status, reply.body, reply.headers)
        else:
            idempotency.release(session, scope, key)


Handler = Callable[[Request, Context], Reply]


def _run(
    req: Request,
    handler: Handler,
    request_id: str,
    function: str,
    principal: Principal,
    admission: _Admission,
) -> Reply:
    """The handler in its tenant transaction, then after-commit hooks; settles idempotency."""
    from ragline.db import tenancy

    reply: Reply | None = None
    hooks: list[Callable[[], None]] = []
    try:
        with tenancy.tenant_session(
            principal.org_id, principals=principal.principals, user_id=principal.user_id
        ) as session:
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
            from ragline.core.logs import add_context, bind_context

            started = time.monotonic()
            request_id = uuid.uuid4().hex
            bind_context(request_id=request_id, function=function, **trace(req))
            org_id: uuid.UUID | None = None
            rate_headers: dict[str, str] = {}
            try:
                if methods and req.method not in methods:
                    raise errors.MethodNotAllowedError(f"{req.method} not allowed here")
                # An instance at its concurrency limit answers 429 before any work (issue 16).
                with admitted():
                    principal = _authenticate(req)
                    org_id = principal.org_id
                    add_context(org_id=org_id)
                    scope = needed.get(req.method, "write" if req.method != "GET" else "read")
                    if scope not in principal.scopes and "admin" not in principal.scopes:
                        raise errors.ForbiddenError(f"the caller lacks the {scope!r} scope")
                    principal, admission = _admit(req, function, principal, bucket)
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
            log_request(req, function, reply, started, request_id, org_id=org_id)
            return respond(reply, request_id)

        wrapped.__name__ = getattr(handler, "__name__", function)
        wrapped.__doc__ = handler.__doc__
        # CORS for the browser console (issue 19), off unless CORS_ORIGINS is set: ragline.api.cors.
        return with_cors(wrapped, methods)

    return decorate


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
            from ragline.core.logs import bind_context

            started = time.monotonic()
            request_id = uuid.uuid4().hex
            bind_context(request_id=request_id, function=function, **trace(req))
            try:
                if req.method not in methods:
                    raise errors.MethodNotAllowedError(f"{req.method} not allowed here")
                if verify is not None:
                    verify(req)
                reply = handler(req)
            except Exception as exc:
                reply = reply_for_error(exc, request_id, function, allow=methods)
            log_request(req, function, reply, started, request_id)
            return respond(reply, request_id)

        wrapped.__name__ = getattr(handler, "__name__", function)
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return decorate


def scheduled_endpoint(function: str) -> Callable[[PlainHandler], Callable[[Request], Response]]:
    """A POST endpoint only Cloud Scheduler (OIDC, `SCHEDULER_CALLER_SERVICE_ACCOUNT`) or, with
    TASK_AUTH=secret, a holder of TASK_SECRET may call; the audience is FUNCTION_URLS[function]."""

    def verify(req: Request) -> None:
        from ragline.core.config import get_settings

        caller = get_settings().scheduler_caller_service_account
        verify_queue_or_scheduler(req, function, caller=caller)

    return plain_endpoint(function, methods=("POST",), verify=verify)
