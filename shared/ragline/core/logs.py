"""Structured logs: one JSON line per event on stdout, in Cloud Logging's format."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

_SEVERITY = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")


def log(severity: str, message: str, **fields: Any) -> None:
    """Write one structured line. Never pass payloads, document text or secrets in `fields`."""
    if severity not in _SEVERITY:
        severity = "INFO"
    entry = {"severity": severity, "message": message, "time": time.time(), **fields}
    sys.stdout.write(json.dumps(entry, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def trace_field(header: str | None, project: str) -> dict[str, str]:
    """`logging.googleapis.com/trace` from an `X-Cloud-Trace-Context` header, if any."""
    if not header:
        return {}
    trace_id = header.split("/", 1)[0]
    if not trace_id.isalnum():
        return {}
    return {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace_id}"}
