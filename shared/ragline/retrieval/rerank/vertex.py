"""Vertex AI ranking API (`semantic-ranker-default@latest` and kin): Discovery Engine's
`rankingConfigs/default_ranking_config:rank`, authorised by application-default credentials."""

from __future__ import annotations

from collections.abc import Sequence

from ragline.cloud import http
from ragline.cloud.gcp.vertex import VertexAuth, check_http_url
from ragline.core.config import Settings
from ragline.core.errors import RerankError

DEFAULT_MODEL = "semantic-ranker-default@latest"
_MAX_RECORDS = 200  # per request (public limit)


class VertexReranker:
    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.name: str = settings.rerank_model or DEFAULT_MODEL
        self._auth = VertexAuth(
            settings,
            setting="RERANK_PROVIDER",
            model=self.name,
            method="rank",
            base_url=None,
            base_setting="VERTEX_ENDPOINT",
        )
        base = check_http_url(
            base_url or settings.rerank_base_url or "https://discoveryengine.googleapis.com",
            "RERANK_BASE_URL",
        )
        self.url = (
            f"{base}/v1/projects/{self._auth.project}/locations/global"
            "/rankingConfigs/default_ranking_config:rank"
        )

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        scores = [0.0] * len(passages)
        for start in range(0, len(passages), _MAX_RECORDS):
            part = passages[start : start + _MAX_RECORDS]
            body = {
                "model": self.name,
                "query": query,
                "records": [{"id": str(start + i), "content": p} for i, p in enumerate(part)],
                "topN": len(part),
                "ignoreRecordDetailsInResponse": True,
            }
            headers = {"Authorization": f"Bearer {self._auth.token(RerankError)}"}
            reply = http.post_json(
                self.url, body, headers, provider="vertex", kind="rank", permanent=RerankError
            )
            try:
                for record in reply.get("records", []):
                    scores[int(record["id"])] = float(record.get("score", 0.0))
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                raise RerankError("vertex rank: unexpected reply shape") from exc
        return scores
