"""Private endpoints: only the queue (pipeline stages) or the scheduler may call them."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Request, Response

from ragline.api.body import (
    install_body_limit,
    parse_json,
    read_body,
    validate,
)
from ragline.api.replies import (
    Reply,
    reply_for_error,
    respond,
)
from ragline.core import errors

if TYPE_CHECKING:  # settings load with the first request, not at import (cold start)
    from ragline.core.config import Settings

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")


def has_task_secret(req: Request, settings: Settings) -> bool:
    """Whether the request carries the shared task secret (TASK_AUTH=secret: the local stack,
    tests), compared in constant time; False when no secret is configured."""
    import hmac

    from ragline.cloud.gcp.cloud_tasks import TASK_SECRET_HEADER

    expected = settings.task_secret.get_secret_value() if settings.task_secret else ""
    given = req.headers.get(TASK_SECRET_HEADER, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def verify_queue_or_scheduler(req: Request, audience_key: str, *, caller: str | None) -> None:
    """Only Cloud Tasks or Cloud Scheduler may call a private endpoint: the shared secret
    header locally (TASK_AUTH=secret), an OIDC token in GCP (TASK_AUTH=oidc).

    The token audience is `FUNCTION_URLS[audience_key]` (else the request's base URL);
    `caller`, when set, is the only service account whose tokens are accepted."""
    from ragline.core.config import get_settings

    settings = get_settings()
    if settings.task_auth == "none":
        if settings.environment in ("gcp", "aws"):
            raise errors.UnauthenticatedError("task authentication is disabled")
        return
    if settings.task_auth == "secret":
        if not has_task_secret(req, settings):
            raise errors.UnauthenticatedError("this endpoint accepts only its queue or scheduler")
        return
    auth = req.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    if not _JWT_SHAPE.fullmatch(token):
        # Not even shaped like a JWT (an API key, junk): refused without fetching Google's
        # certificates, so anonymous callers cannot make this endpoint call out.
        raise errors.UnauthenticatedError("missing OIDC token")
    from google.auth import exceptions as google_exceptions
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    audience = settings.function_urls.get(audience_key, req.base_url)
    try:
        claims = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
            token, google_requests.Request(), audience
        )
    except ValueError as exc:
        raise errors.UnauthenticatedError("invalid OIDC token") from exc
    except google_exceptions.TransportError as exc:
        raise errors.TransientError("could not fetch Google's token certificates") from exc
    if caller and claims.get("email") != caller:
        raise errors.ForbiddenError("OIDC token of an unexpected service account")


def _verify_task_caller(req: Request, stage: str) -> None:
    """Only the stage's queue may call a task endpoint."""
    from ragline.core.config import get_settings

    verify_queue_or_scheduler(req, stage, caller=get_settings().task_caller_service_account)


#: Seconds a freshly forked stage worker waits for its first task before warming up anyway.
WARM_UP_IDLE_S = 1.0


class _WarmUp:
    """When a stage worker warms itself (imports, a pooled connection, the model: issue 16).

    A thread started in the forked gunicorn worker (never in the master: a thread there would
    leave the embedder lock held in the child for good) waits for the worker's first task,
    then warms alongside it, overlapping the caller check (an OIDC token's certificates) with
    the imports, the connection and the model load; with no task after `WARM_UP_IDLE_S`, it
    warms anyway, so a worker with CPU between requests (the local stack, always-allocated
    CPU) is warm before its first task. Cloud Run gives request-based instances CPU only while
    a request runs, so there the first task is what drives the warm-up. What a worker answers
    before (a refused method) does not compete with it (issue 12: cold start)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._go: threading.Event | None = None

    def arm(self) -> None:
        """In the forked worker: start the waiting thread."""
        self._go = threading.Event()
        threading.Thread(target=self._run, name=f"{self.stage}-warm-up", daemon=True).start()

    def now(self) -> None:
        """A task arrived: warm up now, if not already."""
        if self._go is not None:
            self._go.set()

    def _run(self) -> None:
        assert self._go is not None
        self._go.wait(WARM_UP_IDLE_S)
        from ragline.ingest import pipeline

        pipeline.preload(self.stage)


def task_endpoint(stage: str) -> Callable[[Request], Response]:
    """The HTTP face of a pipeline stage: verify the caller, run the stage, 200 or 503."""
    install_body_limit()
    warm_up = _WarmUp(stage)
    os.register_at_fork(after_in_child=warm_up.arm)

    def wrapped(req: Request) -> Response:
        from ragline.core.logs import add_context, bind_context, log

        started = time.monotonic()
        request_id = req.headers.get("X-CloudTasks-TaskName") or uuid.uuid4().hex
        bind_context(request_id=request_id, function=stage, stage=stage)
        attempt = 0
        try:
            if req.method != "POST":
                raise errors.MethodNotAllowedError("task endpoints accept POST only")
            warm_up.now()
            _verify_task_caller(req, stage)
            from ragline.core.config import get_settings
            from ragline.ingest import pipeline  # the stage's code, once the caller is known

            raw = parse_json(read_body(req))
            if not isinstance(raw, dict):
                raise errors.MalformedBodyError("task body must be a JSON object")
            validate(pipeline.TaskPayload, raw)
            attempt = int(req.headers.get("X-CloudTasks-TaskRetryCount", "0") or 0)
            add_context(
                attempt=attempt, org_id=raw.get("org_id"), document_id=raw.get("document_id")
            )
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
        return respond(reply, request_id)

    wrapped.__name__ = stage
    return wrapped
