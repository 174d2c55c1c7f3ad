"""Vertex AI text embeddings (`text-embedding-005` and kin), with RETRIEVAL_DOCUMENT and
RETRIEVAL_QUERY task types."""

from __future__ import annotations

from collections.abc import Sequence

from ragline.cloud.gcp.vertex import VertexAuth
from ragline.core.config import Settings
from ragline.core.errors import EmbeddingError
from ragline.retrieval.embeddings import EmbedKind
from ragline.retrieval.embeddings.common import batches, check_dim, normalise, post_json

_VERTEX_MAX_INPUTS = 250  # per request (public limit)
_VERTEX_MAX_CHARS = 40_000  # keeps a request under the 20 000-token request limit


class VertexEmbedder:
    """Vertex AI text embeddings via the REST `:predict` endpoint, authorised by ADC."""

    def __init__(self, settings: Settings) -> None:
        self.name: str = settings.vertex_embedding_model
        self.dim: int = settings.embedding_dim
        self._vertex = VertexAuth(
            settings,
            setting="EMBEDDING_PROVIDER",
            model=self.name,
            method="predict",
            base_url=settings.vertex_endpoint,
            base_setting="VERTEX_ENDPOINT",
        )

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> list[list[float]]:
        """Unit vectors with task type RETRIEVAL_DOCUMENT or RETRIEVAL_QUERY by `kind`."""
        task_type = "RETRIEVAL_QUERY" if kind == "query" else "RETRIEVAL_DOCUMENT"
        result: list[list[float]] = []
        for batch in batches(texts, _VERTEX_MAX_INPUTS, _VERTEX_MAX_CHARS):
            result.extend(self._request(batch, task_type))
        return result

    def _request(self, batch: Sequence[str], task_type: str) -> list[list[float]]:
        body = {
            "instances": [{"content": text, "task_type": task_type} for text in batch],
            "parameters": {"outputDimensionality": self.dim, "autoTruncate": True},
        }
        headers = {"Authorization": f"Bearer {self._vertex.token(EmbeddingError)}"}
        reply = post_json(self._vertex.url, body, headers, "vertex")
        try:
            vectors = [
                [float(x) for x in item["embeddings"]["values"]] for item in reply["predictions"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError("vertex embeddings: unexpected reply shape") from exc
        if len(vectors) != len(batch):
            raise EmbeddingError(
                f"vertex embeddings: {len(vectors)} vectors for {len(batch)} inputs"
            )
        for vector in vectors:
            check_dim("vertex", len(vector), self.dim)
        return [normalise(v) for v in vectors]
