"""Structured logs: one JSON line per event on stdout, in Cloud Logging's format (`severity`,
`message`, `time`, `logging.googleapis.com/trace`).

Request context (request id, function, org, stage, trace) is bound once per call with
`bind_context()` and carried by a context variable into every line logged during that call,
including the library's own stdlib `logging` lines (`ragline.*` loggers, INFO and up), which
come out in the same format instead of being dropped by the default WARNING level.

    log("INFO", "document ready", document_id=doc.id)   # + request_id, function, org_id…

Only the standard library: a cold start's first request logs its line without loading a
logging framework (issue 12; structlog cost 15 ms there, 40 ms where `rich` is installed).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

_SEVERITY = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")
_configured = False

#: The current call's fields. A new thread starts with an empty context.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "ragline_log_context", default=MappingProxyType({})
)


def _line(severity: str, message: str, fields: Mapping[str, Any]) -> str:
    """The JSON line: Cloud Logging's fields, then `fields`, then the bound context (a field
    given with the event wins over a bound one of the same name)."""
    severity = (severity or "INFO").upper()
    event: dict[str, Any] = {
        "severity": severity if severity in _SEVERITY else "INFO",
        "message": message,
        "time": time.time(),
        **fields,
    }
    for key, value in _context.get().items():
        event.setdefault(key, value)
    return json.dumps(event, default=str, separators=(",", ":"))


class _JsonFormatter(logging.Formatter):
    """Formats a stdlib record as the same JSON line, with the bound context."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {}
        if record.exc_info:
            fields["exc_info"] = record.exc_info
        if record.stack_info:
            fields["stack_info"] = record.stack_info
        return _line(record.levelname, record.getMessage(), fields)


class _CurrentStdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the *current* sys.stdout (test capture, redirects)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure() -> None:
    """Set the `ragline` stdlib logger up once per process (idempotent)."""
    global _configured
    if _configured:
        return
    handler = _CurrentStdout()
    handler.setFormatter(_JsonFormatter())
    library = logging.getLogger("ragline")
    library.handlers = [handler]
    library.setLevel(logging.INFO)
    library.propagate = False
    _configured = True


def log(severity: str, message: str, **fields: Any) -> None:
    """Write one structured line. Never pass payloads, document text or secrets in `fields`."""
    configure()
    sys.stdout.write(_line(severity, message, fields) + "\n")
    sys.stdout.flush()


def bind_context(**fields: Any) -> None:
    """Start a new call's context (request id, function, org, stage, trace): every line logged
    until the next `bind_context` carries these fields."""
    _context.set({k: v for k, v in fields.items() if v is not None})


def add_context(**fields: Any) -> None:
    """Add fields to the current call's context (e.g. the org once the caller is known)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def trace_field(header: str | None, project: str) -> dict[str, str]:
    """`logging.googleapis.com/trace` from an `X-Cloud-Trace-Context` header, if any."""
    if not header:
        return {}
    trace_id = header.split("/", 1)[0]
    if not trace_id.isalnum():
        return {}
    return {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace_id}"}
