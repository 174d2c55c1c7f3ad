"""Vertex AI access shared by the embedder and the LLM: ADC credentials, model URLs, tokens."""

from __future__ import annotations

import threading
import urllib.parse
from typing import Any

from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError, RaglineError, TransientError

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def check_http_url(url: str, setting: str) -> str:
    """`url` without a trailing slash, or ConfigurationError naming `setting`."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigurationError(f"{setting} must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


class VertexAuth:
    """Application-default credentials and the URL of one publisher model method."""

    def __init__(
        self,
        settings: Settings,
        *,
        setting: str,
        model: str,
        method: str,
        base_url: str | None,
        base_setting: str,
    ) -> None:
        try:
            import google.auth
            import google.auth.exceptions
        except ImportError as exc:
            raise ConfigurationError(f"{setting}=vertex needs google-auth") from exc
        try:
            credentials, detected_project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigurationError(f"no Google credentials for Vertex AI: {exc}") from exc
        project = settings.vertex_project or detected_project
        if not project:
            raise ConfigurationError(f"{setting}=vertex needs VERTEX_PROJECT")
        self.project: str = project
        location = settings.vertex_location
        base = base_url or f"https://{location}-aiplatform.googleapis.com"
        self.url = (
            check_http_url(base, base_setting)
            + f"/v1/projects/{project}/locations/{location}"
            + f"/publishers/google/models/{model}:{method}"
        )
        self._credentials: Any = credentials
        self._lock = threading.Lock()

    def token(self, permanent: type[RaglineError]) -> str:
        """A valid access token, refreshed (once, under a lock) when expired; a refresh that
        fails in transport is transient, any other auth failure raises `permanent`."""
        import google.auth.exceptions

        with self._lock:
            if not self._credentials.valid:
                from google.auth.transport.requests import Request

                try:
                    self._credentials.refresh(Request())
                except google.auth.exceptions.TransportError as exc:
                    raise TransientError(f"vertex: token refresh failed: {exc}") from exc
                except google.auth.exceptions.GoogleAuthError as exc:
                    raise permanent(f"vertex: token refresh failed: {exc}") from exc
            return str(self._credentials.token)
