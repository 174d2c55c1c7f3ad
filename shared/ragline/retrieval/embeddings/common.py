"""What every HTTP embedding provider shares: request batching, one JSON POST with error
mapping (429/5xx/timeouts are transient, other HTTP errors permanent), normalisation."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from ragline.core.errors import ConfigurationError, EmbeddingError, TransientError

HTTP_TIMEOUT_S = 60.0


def normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise EmbeddingError("provider returned a zero or non-finite vector")
    return [x / norm for x in vector]


def check_dim(provider: str, got: int, expected: int) -> None:
    if got != expected:
        raise ConfigurationError(
            f"{provider} embeddings have {got} dimensions but EMBEDDING_DIM is {expected}",
            details={"provider": provider, "got": got, "expected": expected},
        )


def batches(texts: Sequence[str], max_items: int, max_chars: int) -> Iterator[Sequence[str]]:
    """Consecutive slices of at most `max_items` texts and (unless one text alone) `max_chars`."""
    start, chars = 0, 0
    for i, text in enumerate(texts):
        if i > start and (i - start >= max_items or chars + len(text) > max_chars):
            yield texts[start:i]
            start, chars = i, 0
        chars += len(text)
    if start < len(texts):
        yield texts[start:]


def post_json(url: str, body: dict[str, Any], headers: dict[str, str], provider: str) -> Any:
    """POST `body` as JSON and decode the reply; HTTP errors become ragline errors."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            raw: bytes = response.read()
    except urllib.error.HTTPError as exc:
        details = {"provider": provider, "status": exc.code}
        message = f"{provider} embeddings: HTTP {exc.code}{_http_error_detail(exc)}"
        if exc.code in (408, 429) or exc.code >= 500:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            raise TransientError(message, details={**details, "retry_after": retry_after}) from exc
        raise EmbeddingError(message, details=details) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientError(
            f"{provider} embeddings: request failed: {reason}", details={"provider": provider}
        ) from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise EmbeddingError(f"{provider} embeddings: reply is not JSON") from exc


def _http_error_detail(exc: urllib.error.HTTPError) -> str:
    """The provider's own error message, if the body carries one (never the request)."""
    try:
        payload = json.loads(exc.read() or b"null")
    except (ValueError, OSError):
        return ""
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return f": {str(message)[:300]}" if message else ""
