"""Cloud Storage: read one generation of an object, upload, delete and list objects, and sign
V4 PUT URLs for uploads (issue 13).

Signing: with a service-account key file when `STORAGE_SIGNING_KEY_FILE` is set (the local
stack writes a throwaway one), else through IAM signBlob as the function's own service account
(`google.auth.default()`; a Cloud Function holds no private key), so both run the same V4 code.
`STORAGE_EMULATOR_HOST` points every call at an emulator (anonymous credentials).

Errors: a missing object or generation is `ObjectGoneError`; throttling, 5xx, timeouts and
transport failures are `TransientError`; any other refusal is `StorageError`.
google-cloud-storage is imported on first use, never at import (cold starts).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from ragline.core.config import Settings, get_settings
from ragline.core.errors import (
    ConfigurationError,
    ObjectGoneError,
    RaglineError,
    StorageError,
    TransientError,
)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: Connect timeout of one HTTP request to Cloud Storage (the read timeout is STORAGE_TIMEOUT_S).
CONNECT_TIMEOUT_S = 10.0

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_signer: dict[str, Any] = {}


@dataclass(frozen=True)
class StoredObject:
    """One live object generation, as a listing reports it (the fields Eventarc sends)."""

    bucket: str
    name: str
    generation: int
    metageneration: int
    size: int
    content_type: str | None
    md5_hash: str | None
    crc32c: str | None
    etag: str | None
    storage_class: str | None
    time_created: datetime | None
    updated: datetime | None
    #: Custom metadata (`x-goog-meta-*` of the upload), e.g. `ragline-acl` (issue 18).
    metadata: dict[str, str] | None = None


def emulator_url(host: str) -> str:
    """`STORAGE_EMULATOR_HOST` as a base URL (the variable may omit the scheme)."""
    return (host if "://" in host else f"http://{host}").rstrip("/")


def client(settings: Settings | None = None) -> Any:
    """The process-wide `google.cloud.storage.Client` (one per emulator or Google Cloud)."""
    s = settings or get_settings()
    key = s.storage_emulator_host or "gcp"
    with _lock:
        if key not in _clients:
            from google.cloud import storage

            if s.storage_emulator_host:
                from google.auth.credentials import AnonymousCredentials

                _clients[key] = storage.Client(
                    project=s.gcp_project,
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    client_options={"api_endpoint": emulator_url(s.storage_emulator_host)},
                )
            else:
                _clients[key] = storage.Client(project=s.gcp_project)
        return _clients[key]


def reset_clients() -> None:
    """Forget clients and signing credentials (tests; the next call builds new ones)."""
    with _lock:
        _clients.clear()
        _signer.clear()
    _key_credentials.cache_clear()


def _call_options(s: Settings) -> dict[str, Any]:
    """Bounded waits: the library's default retry keeps trying for 120 s."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return {
        "timeout": (CONNECT_TIMEOUT_S, s.storage_timeout_s),
        "retry": DEFAULT_RETRY.with_timeout(s.storage_timeout_s),
    }


def _translate(exc: Exception, what: str) -> RaglineError | None:
    """The ragline error for a Cloud Storage failure, or None when `exc` is not one."""
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as gexc
    from google.cloud.storage import exceptions as storage_exc

    name = type(exc).__name__
    if isinstance(exc, gexc.NotFound):
        return ObjectGoneError(f"{what}: not found (object, generation or bucket)")
    if isinstance(exc, gexc.TooManyRequests | gexc.ServerError):
        return TransientError(f"{what}: Cloud Storage unavailable ({name})")
    if isinstance(exc, gexc.GoogleAPICallError):
        return StorageError(f"{what}: Cloud Storage refused the request ({name})")
    if isinstance(
        exc,
        gexc.RetryError
        | google.auth.exceptions.TransportError
        | requests.exceptions.RequestException
        | storage_exc.DataCorruption
        | storage_exc.InvalidResponse
        | ConnectionError
        | TimeoutError,
    ):
        return TransientError(f"{what}: Cloud Storage unreachable ({name})")
    return None


def read_object(
    bucket: str, name: str, generation: int, *, settings: Settings | None = None
) -> bytes:
    """The bytes of generation `generation` of `name`: `ObjectGoneError` when that generation
    no longer exists (overwritten or deleted), `TransientError` when worth retrying."""
    if generation <= 0:
        raise ValueError(f"generation must be positive, got {generation}")
    s = settings or get_settings()
    blob = client(s).bucket(bucket).blob(name, generation=generation)
    try:
        return bytes(blob.download_as_bytes(**_call_options(s)))
    except Exception as exc:
        mapped = _translate(exc, f"read gs://{bucket}/{name}#{generation}")
        if mapped is None:
            raise
        raise mapped from exc


def upload_object(
    bucket: str,
    name: str,
    data: bytes | Path,
    content_type: str,
    *,
    settings: Settings | None = None,
) -> int:
    """Store `data` (bytes, or a file streamed from disk) as `name`; returns its generation."""
    s = settings or get_settings()
    blob = client(s).bucket(bucket).blob(name)
    try:
        if isinstance(data, Path):
            blob.upload_from_filename(str(data), content_type=content_type, **_call_options(s))
        else:
            blob.upload_from_string(data, content_type=content_type, **_call_options(s))
    except Exception as exc:
        mapped = _translate(exc, f"upload gs://{bucket}/{name}")
        if mapped is None:
            raise
        raise mapped from exc
    return int(blob.generation)


def delete_object(
    bucket: str, name: str, generation: int | None = None, *, settings: Settings | None = None
) -> bool:
    """Delete `name` (only while it is still `generation`, when given); False when there was
    nothing to delete (already gone, or replaced by a newer generation)."""
    from google.api_core import exceptions as gexc

    s = settings or get_settings()
    blob = client(s).bucket(bucket).blob(name)
    try:
        blob.delete(if_generation_match=generation, **_call_options(s))
    except (gexc.NotFound, gexc.PreconditionFailed):
        return False
    except Exception as exc:
        mapped = _translate(exc, f"delete gs://{bucket}/{name}")
        if mapped is None:
            raise
        raise mapped from exc
    return True


def list_objects(
    bucket: str, prefix: str = "", *, settings: Settings | None = None
) -> list[StoredObject]:
    """The live objects under `prefix`, with their generations."""
    s = settings or get_settings()
    try:
        blobs = list(client(s).list_blobs(bucket, prefix=prefix or None, **_call_options(s)))
    except Exception as exc:
        mapped = _translate(exc, f"list gs://{bucket}/{prefix}")
        if mapped is None:
            raise
        raise mapped from exc
    return [
        StoredObject(
            bucket=bucket,
            name=b.name,
            generation=int(b.generation),
            metageneration=int(b.metageneration or 1),
            size=int(b.size or 0),
            content_type=b.content_type,
            md5_hash=b.md5_hash,
            crc32c=b.crc32c,
            etag=b.etag,
            storage_class=b.storage_class,
            time_created=b.time_created,
            updated=b.updated,
            metadata=dict(b.metadata) if b.metadata else None,
        )
        for b in blobs
    ]


@lru_cache(maxsize=4)
def _key_credentials(path: Path) -> Any:
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(str(path))  # type: ignore[no-untyped-call]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigurationError(f"STORAGE_SIGNING_KEY_FILE {path} is not a usable key") from exc


def _iam_signer(s: Settings) -> tuple[str, str]:
    """(service account email, access token) for IAM signBlob: the function's own
    application-default credentials, refreshed once under a lock when expired."""
    import google.auth
    import google.auth.exceptions

    with _lock:
        try:
            if "credentials" not in _signer:
                credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
                _signer["credentials"] = credentials
            credentials = _signer["credentials"]
            if not credentials.valid:
                from google.auth.transport.requests import Request

                # On Cloud Functions the refresh also learns the account's email.
                credentials.refresh(Request())
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigurationError(f"no Google credentials to sign upload URLs: {exc}") from exc
        except google.auth.exceptions.TransportError as exc:
            raise TransientError(f"token refresh for URL signing failed: {exc}") from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            raise ConfigurationError(f"token refresh for URL signing failed: {exc}") from exc
        email = s.storage_signer_service_account or getattr(
            credentials, "service_account_email", None
        )
        if not email or email == "default":
            raise ConfigurationError(
                "cannot tell which service account signs upload URLs: set "
                "STORAGE_SIGNER_SERVICE_ACCOUNT (or STORAGE_SIGNING_KEY_FILE)"
            )
        return str(email), str(credentials.token)


def signed_put_url(
    bucket: str,
    name: str,
    content_type: str,
    expires_s: int,
    *,
    headers: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> str:
    """A V4 signed URL that lets its holder PUT `name` once with exactly this Content-Type
    (and `headers`, which are signed too and must be sent as given) for `expires_s` seconds."""
    import google.auth.exceptions

    s = settings or get_settings()
    blob = client(s).bucket(bucket).blob(name)
    options: dict[str, Any] = {
        "version": "v4",
        "expiration": timedelta(seconds=expires_s),
        "method": "PUT",
        "content_type": content_type,
        "headers": dict(headers or {}),
    }
    if s.storage_signing_key_file is not None:
        options["credentials"] = _key_credentials(s.storage_signing_key_file)
    else:
        options["service_account_email"], options["access_token"] = _iam_signer(s)
    try:
        return str(blob.generate_signed_url(**options))
    except google.auth.exceptions.TransportError as exc:
        # signBlob answers non-200 as a TransportError carrying the body: a refusal is
        # permanent (the account lacks iam.serviceAccounts.signBlob), the rest is transient.
        if "PERMISSION_DENIED" in str(exc) or '"code": 403' in str(exc):
            raise ConfigurationError(
                "IAM signBlob refused: the function's service account needs "
                "roles/iam.serviceAccountTokenCreator on the signing account"
            ) from exc
        raise TransientError(f"IAM signBlob failed: {type(exc).__name__}") from exc
