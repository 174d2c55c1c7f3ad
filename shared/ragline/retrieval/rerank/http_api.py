"""Cohere-style rerank endpoints: `POST {base}/rerank` with `{model, query, documents,
top_n}`, answered with `{"results": [{"index", "relevance_score"}]}` (Cohere, Jina, Voyage,
vLLM) or a bare list of `{"index", "score"}` (Hugging Face text-embeddings-inference)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragline.cloud import http
from ragline.cloud.gcp.vertex import check_http_url
from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError, RerankError


class HttpReranker:
    def __init__(self, settings: Settings) -> None:
        if not settings.rerank_base_url:
            raise ConfigurationError("RERANK_PROVIDER=http needs RERANK_BASE_URL")
        self._url = check_http_url(settings.rerank_base_url, "RERANK_BASE_URL") + "/rerank"
        self.name: str = settings.rerank_model or "rerank"
        key = settings.rerank_api_key.get_secret_value() if settings.rerank_api_key else ""
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        body: dict[str, Any] = {
            "model": self.name,
            "query": query,
            "documents": list(passages),
            "top_n": len(passages),
        }
        reply = http.post_json(
            self._url, body, self._headers, provider="http", kind="rerank", permanent=RerankError
        )
        items: Any = reply.get("results", reply.get("data")) if isinstance(reply, dict) else reply
        scores = [float("-inf")] * len(passages)
        try:
            for item in items:
                value = item.get("relevance_score", item.get("score"))
                scores[int(item["index"])] = float(value)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise RerankError("rerank: unexpected reply shape") from exc
        return scores
