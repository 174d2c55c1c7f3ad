"""One cached boto3 client per service, region and read timeout, with bounded waits (boto's
defaults are a 60 s connect and read timeout: a stage or a request must not hang on AWS)."""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[tuple[str, str | None, float], Any] = {}


def client(service: str, region: str | None, *, read_timeout: float) -> Any:
    """The shared client of `service` in `region` (created on first use; boto3 imported then)."""
    key = (service, region, read_timeout)
    with _lock:
        if key not in _clients:
            import boto3
            from botocore.config import Config

            _clients[key] = boto3.client(
                service,
                region_name=region,
                config=Config(
                    connect_timeout=5,
                    read_timeout=read_timeout,
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        return _clients[key]


def reset() -> None:
    """Forget every client (tests: a client binds to moto when created)."""
    with _lock:
        _clients.clear()
