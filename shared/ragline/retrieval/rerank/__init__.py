"""Rerankers behind one protocol: score (query, passage) pairs, best first after sorting.

Off by default (`RERANK_PROVIDER=none`); a search asks for it with `rerank: true`. Providers
are looked up by name in `PROVIDERS` and import their heavy dependencies only when built:

- `vertex`: Vertex AI ranking API (Discovery Engine `rankingConfigs:rank`), ADC auth;
- `http`: Cohere-style `POST {RERANK_BASE_URL}/rerank` (Cohere, Jina, Voyage, TEI, vLLM and
  other OpenAI-compatible gateways that serve `/rerank`);
- `onnx`: a local cross-encoder exported to ONNX, run by onnxruntime + tokenizers (no torch),
  from the folder `RERANK_ONNX_PATH` (`model.onnx` + `tokenizer.json`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Protocol

from ragline.core.config import Settings, get_settings
from ragline.core.errors import ConfigurationError

__all__ = ["PROVIDERS", "Reranker", "get_reranker", "reset_rerankers"]


class Reranker(Protocol):
    """Relevance scores of passages for a query (higher is better), in input order."""

    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


#: provider name -> "module:Class" (imported when chosen).
PROVIDERS: dict[str, str] = {
    "vertex": "ragline.retrieval.rerank.vertex:VertexReranker",
    "http": "ragline.retrieval.rerank.http_api:HttpReranker",
    "onnx": "ragline.retrieval.rerank.cross_encoder:OnnxCrossEncoder",
}

_lock = threading.Lock()
_rerankers: dict[tuple[object, ...], Reranker] = {}


def _key(settings: Settings) -> tuple[object, ...]:
    return (
        settings.rerank_provider,
        settings.rerank_model,
        settings.rerank_base_url,
        settings.rerank_onnx_path,
        settings.vertex_project,
    )


def get_reranker(settings: Settings | None = None) -> Reranker:
    """The reranker named by `settings.rerank_provider`, built once per process."""
    settings = settings if settings is not None else get_settings()
    if settings.rerank_provider == "none":
        raise ConfigurationError("reranking needs RERANK_PROVIDER (vertex, http or onnx)")
    key = _key(settings)
    reranker = _rerankers.get(key)
    if reranker is None:
        with _lock:
            reranker = _rerankers.get(key)
            if reranker is None:
                module_name, _, class_name = PROVIDERS[settings.rerank_provider].partition(":")
                cls = getattr(importlib.import_module(module_name), class_name)
                reranker = cls(settings)
                _rerankers[key] = reranker
    assert reranker is not None
    return reranker


def reset_rerankers() -> None:
    """Forget built rerankers (tests)."""
    with _lock:
        _rerankers.clear()
