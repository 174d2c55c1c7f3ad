"""Structured logs through structlog: one JSON line per event on stdout, in Cloud Logging's
format (`severity`, `message`, `time`, `logging.googleapis.com/trace`).

Request context (request id, function, org, stage, trace) is bound once per call with
`bind_context()` and carried by contextvars into every line logged during that call,
including the library's own stdlib `logging` lines (`ragline.*` loggers, INFO and up), which
come out in the same format instead of being dropped by the default WARNING level.

    log("INFO", "document ready", document_id=doc.id)   # + request_id, function, org_id…
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

_SEVERITY = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")
_configured = False
_EVENT_FIELD = "_ragline_event"


class _StdoutLogger:
    """Writes each rendered line to the *current* sys.stdout (test capture, redirects)."""

    def msg(self, message: str) -> None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    info = debug = warning = error = critical = exception = log = msg


def _cloud_logging_fields(
    _logger: Any, method: str, event: MutableMapping[str, Any]
) -> dict[str, Any]:
    severity = str(event.pop("severity", None) or event.pop("level", None) or method).upper()
    event.pop("level", None)
    message = event.pop("event", "")
    if _EVENT_FIELD in event:
        event["event"] = event.pop(_EVENT_FIELD)
    return {
        "severity": severity if severity in _SEVERITY else "INFO",
        "message": message,
        "time": time.time(),
        **event,
    }


def _render(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> str:
    return json.dumps(event, default=str, separators=(",", ":"))


def configure() -> None:
    """Set structlog and the `ragline` stdlib logger up once per process (idempotent)."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, _cloud_logging_fields, _render],
        logger_factory=lambda *_args: _StdoutLogger(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _cloud_logging_fields,
            _render,
        ],
    )

    class _CurrentStdout(logging.StreamHandler):  # type: ignore[type-arg]
        @property
        def stream(self) -> Any:
            return sys.stdout

        @stream.setter
        def stream(self, _value: Any) -> None:
            pass

    handler = _CurrentStdout()
    handler.setFormatter(formatter)
    library = logging.getLogger("ragline")
    library.handlers = [handler]
    library.setLevel(logging.INFO)
    library.propagate = False
    _configured = True


def log(severity: str, message: str, **fields: Any) -> None:
    """Write one structured line. Never pass payloads, document text or secrets in `fields`."""
    configure()
    if "event" in fields:  # structlog's own name for the message: carried under another key
        fields[_EVENT_FIELD] = fields.pop("event")
    structlog.get_logger().msg(message, severity=severity, **fields)


def bind_context(**fields: Any) -> None:
    """Start a new call's context (request id, function, org, stage, trace): every line logged
    until the next `bind_context` carries these fields."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def add_context(**fields: Any) -> None:
    """Add fields to the current call's context (e.g. the org once the caller is known)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def trace_field(header: str | None, project: str) -> dict[str, str]:
    """`logging.googleapis.com/trace` from an `X-Cloud-Trace-Context` header, if any."""
    if not header:
        return {}
    trace_id = header.split("/", 1)[0]
    if not trace_id.isalnum():
        return {}
    return {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace_id}"}
