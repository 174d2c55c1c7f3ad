"""The one HTTP client for remote model providers (embeddings, LLMs, rerankers): httpx with a
pooled, reused connection per process, bounded timeouts, and one error mapping.

- 2xx with a JSON body → the decoded body;
- 408, 429 and 5xx → retried here when the server asks for a short wait (`Retry-After` ≤
  `max_wait_s`), else `TransientError` (with `retry_after`), so the queue retries later;
- other 4xx, or a body that is not JSON → the caller's permanent error class;
- connection failures and timeouts → `TransientError`.

httpx is imported on the first request, never at import time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ragline.core.errors import RaglineError, TransientError

DEFAULT_TIMEOUT_S = 60.0
_lock = threading.Lock()
_client: Any = None


def client() -> Any:
    """The process-wide `httpx.Client` (keep-alive connections reused across invocations)."""
    global _client
    with _lock:
        if _client is None:
            import httpx

            _client = httpx.Client(
                timeout=httpx.Timeout(DEFAULT_TIMEOUT_S, connect=10.0),
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
                trust_env=False,
            )
        return _client


def reset() -> None:
    """Close the pooled client (tests; the next request opens a new one)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: not worth waiting for in-process


def _provider_message(response: Any) -> str:
    """The provider's own error message, if the body carries one (never the request)."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return f": {str(message)[:300]}" if message else ""


def post_json(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    provider: str,
    kind: str,
    permanent: type[RaglineError],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_wait_s: float = 2.0,
    attempts: int = 3,
) -> Any:
    """POST `body` as JSON to `url` and decode the reply (see the module docstring).

    `provider` and `kind` name the call in errors ("openai embeddings: HTTP 429: …");
    `permanent` is raised for refusals that a retry would not change."""
    import httpx

    what = f"{provider} {kind}"
    sent = {"Content-Type": "application/json", "Accept": "application/json", **headers}
    for attempt in range(1, attempts + 1):
        try:
            response = client().post(url, json=body, headers=sent, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise TransientError(
                f"{what}: request failed: {type(exc).__name__}", details={"provider": provider}
            ) from exc
        status = response.status_code
        if status < 300:
            try:
                return response.json()
            except ValueError as exc:
                raise permanent(f"{what}: reply is not JSON") from exc
        details: dict[str, Any] = {"provider": provider, "status": status}
        message = f"{what}: HTTP {status}{_provider_message(response)}"
        if status in (408, 429) or status >= 500:
            header = response.headers.get("Retry-After")
            wait = _retry_after(header)
            if wait is not None and wait <= max_wait_s and attempt < attempts:
                time.sleep(wait)
                continue
            cause = httpx.HTTPStatusError(message, request=response.request, response=response)
            raise TransientError(message, details={**details, "retry_after": header}) from cause
        cause = httpx.HTTPStatusError(message, request=response.request, response=response)
        raise permanent(message, details=details) from cause
    raise AssertionError("unreachable")  # pragma: no cover
