"""AWS Secrets Manager: JSON secrets, read once per process and reused for a while."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from ragline.core.errors import ConfigurationError, TransientError

#: How long a fetched secret is reused (seconds); rotation shows up within this window.
DEFAULT_TTL_S = 600.0
_TRANSIENT_CODES = frozenset(
    {
        "InternalServiceError",
        "InternalServiceErrorException",
        "ServiceUnavailable",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
_lock = threading.Lock()
_cache: dict[tuple[str, str | None], tuple[float, dict[str, Any]]] = {}
_clients: dict[str | None, Any] = {}


def _client(region: str | None) -> Any:
    if region not in _clients:
        import boto3
        from botocore.config import Config

        _clients[region] = boto3.client(
            "secretsmanager",
            region_name=region,
            config=Config(
                connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"}
            ),
        )
    return _clients[region]


def _fetch(secret_id: str, region: str | None) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = _client(region).get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _TRANSIENT_CODES or status >= 500:
            raise TransientError(f"Secrets Manager unavailable: {code or status}") from exc
        raise ConfigurationError(f"cannot read secret {secret_id!r}: {code}") from exc
    except BotoCoreError as exc:
        raise TransientError(f"Secrets Manager unreachable: {type(exc).__name__}") from exc
    text = response.get("SecretString")
    if not isinstance(text, str):
        raise ConfigurationError(f"secret {secret_id!r} has no SecretString (binary unsupported)")
    try:
        value = json.loads(text)
    except ValueError:
        # `from None`: a JSONDecodeError keeps the whole secret text in `.doc`.
        raise ConfigurationError(f"secret {secret_id!r} is not a JSON object") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"secret {secret_id!r} is not a JSON object")
    return value


def get_json_secret(
    secret_id: str, region: str | None, *, ttl_s: float = DEFAULT_TTL_S
) -> dict[str, Any]:
    """The JSON object in `secret_id`'s SecretString, cached per process for `ttl_s` seconds.

    Raises `TransientError` when Secrets Manager is unreachable or throttles, and
    `ConfigurationError` when the secret is missing, forbidden or not a JSON object."""
    key = (secret_id, region)
    # One lock around the fetch too: concurrent first connections make one API call, not N.
    with _lock:
        hit = _cache.get(key)
        if hit is None or time.monotonic() - hit[0] >= ttl_s:
            hit = (time.monotonic(), _fetch(secret_id, region))
            _cache[key] = hit
        return dict(hit[1])


def invalidate(secret_id: str, region: str | None) -> None:
    """Forget a cached secret (e.g. after the database refused its password: rotated)."""
    with _lock:
        _cache.pop((secret_id, region), None)


def reset_cache() -> None:
    """Forget every cached secret and client (tests; a client binds to moto when created)."""
    with _lock:
        _cache.clear()
        _clients.clear()
