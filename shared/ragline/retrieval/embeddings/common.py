"""What every HTTP embedding provider shares: request batching, one JSON POST with error
mapping (429/5xx/timeouts are transient, other HTTP errors permanent), normalisation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from ragline.cloud import http
from ragline.core.errors import ConfigurationError, EmbeddingError


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
    """POST to an embedding provider through the shared client (`ragline.cloud.http`)."""
    return http.post_json(
        url, body, headers, provider=provider, kind="embeddings", permanent=EmbeddingError
    )
