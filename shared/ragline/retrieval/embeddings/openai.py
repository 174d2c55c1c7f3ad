"""OpenAI-compatible `/embeddings` endpoints (OpenAI, Azure-style gateways, local servers)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

from ragline.cloud.gcp.vertex import check_http_url
from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError, EmbeddingError
from ragline.retrieval.embeddings import EmbedKind
from ragline.retrieval.embeddings.common import batches, check_dim, normalise, post_json

_OPENAI_MAX_INPUTS = 2048  # per request (public limit)
_OPENAI_MAX_CHARS = 600_000  # keeps a request well under the 300 000-token request limit


class OpenAIEmbedder:
    """Any OpenAI-compatible `POST {base}/embeddings` endpoint, over stdlib HTTP."""

    def __init__(self, settings: Settings) -> None:
        self.name: str = settings.openai_embedding_model
        self.dim: int = settings.embedding_dim
        self._url = check_http_url(settings.openai_base_url, "OPENAI_BASE_URL") + "/embeddings"
        api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        if not api_key and urllib.parse.urlsplit(self._url).hostname == "api.openai.com":
            raise ConfigurationError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Only the text-embedding-3 family can shorten its vectors on request.
        self._send_dimensions = self.name.startswith("text-embedding-3")

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> list[list[float]]:
        """Unit vectors from the endpoint (OpenAI models take no query/document hint)."""
        result: list[list[float]] = []
        for batch in batches(texts, _OPENAI_MAX_INPUTS, _OPENAI_MAX_CHARS):
            result.extend(self._request(batch))
        return result

    def _request(self, batch: Sequence[str]) -> list[list[float]]:
        body: dict[str, Any] = {
            "model": self.name,
            "input": list(batch),
            "encoding_format": "float",
        }
        if self._send_dimensions:
            body["dimensions"] = self.dim
        reply = post_json(self._url, body, self._headers, "openai")
        try:
            items = sorted(reply["data"], key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError("openai embeddings: unexpected reply shape") from exc
        if len(vectors) != len(batch):
            raise EmbeddingError(
                f"openai embeddings: {len(vectors)} vectors for {len(batch)} inputs"
            )
        for vector in vectors:
            check_dim("openai", len(vector), self.dim)
        return [normalise(v) for v in vectors]


# --------------------------------------------------------------------------- vertex
