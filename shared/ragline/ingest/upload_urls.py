"""Signed upload URLs (issue 13): a client asks the `uploads` function for one, PUTs the file
straight to Cloud Storage, and the object's event starts the pipeline.

Objects are named `orgs/<org_id>/<upload_id>/<filename>`. The org comes from the caller's
API key, never from the client, so an object event names its tenant; the upload id makes
every upload a new object. The URL allows one PUT with exactly the signed Content-Type and
at most the declared size (`x-goog-content-length-range`, which Cloud Storage enforces on
signed PUTs).

An optional `acl` (the shape `ingest` takes) travels with the object as the custom metadata
`ragline-acl` (comma-separated principals), sent as `x-goog-meta-ragline-acl`, a *signed*
header: Cloud Storage refuses a PUT through the URL whose signed headers are missing or
differ, and counts every `x-goog-*` header of the request in the signature, so the holder of
the URL can neither drop the ACL, change it nor add one to a URL made without it. `on_upload`
reads it from the object's event (`uploads.handle_event`; issue 18).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragline.core import errors
from ragline.core.config import Settings, get_settings
from ragline.ingest.documents import check_acl

#: Media types an upload may declare: what `ingest.extract` reads.
ALLOWED_CONTENT_TYPES = frozenset(
    {
        "application/pdf",
        "text/html",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "text/markdown",
        "text/plain",
    }
)
MAX_FILENAME_CHARS = 200
OBJECT_PREFIX = "orgs"
#: Header that makes Cloud Storage refuse a signed PUT outside the byte range.
LENGTH_RANGE_HEADER = "x-goog-content-length-range"
#: Custom metadata key of an upload's ACL, and the signed header that sets it (issue 18).
ACL_METADATA_KEY = "ragline-acl"
ACL_HEADER = f"x-goog-meta-{ACL_METADATA_KEY}"
#: Unicode categories refused in file names: controls, format characters (bidi overrides,
#: zero-width), surrogates, private use, unassigned, line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_CHARSET = re.compile(r"[A-Za-z0-9._:-]{1,40}")


def check_filename(value: str) -> str:
    """The file name as stored (NFC, surrounding blanks removed), or ValueError saying why
    not: empty, longer than 200 characters, a `/` or `\\`, `..`, or a control character."""
    name = unicodedata.normalize("NFC", value).strip()
    if not name:
        raise ValueError("filename is empty")
    if len(name) > MAX_FILENAME_CHARS:
        raise ValueError(f"filename is longer than {MAX_FILENAME_CHARS} characters")
    if "/" in name or "\\" in name:
        raise ValueError("filename must not contain '/' or '\\'")
    if ".." in name:
        raise ValueError("filename must not contain '..'")
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in name):
        raise ValueError("filename must not contain control or format characters")
    return name


def check_content_type(value: str) -> str:
    """The Content-Type the upload must be sent with: the media type in lower case, plus
    `charset` for text types; any other type is UnsupportedMediaTypeError (415)."""
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media not in ALLOWED_CONTENT_TYPES:
        raise errors.UnsupportedMediaTypeError(
            f"content type {media[:100]!r} is not accepted",
            details={"accepted": sorted(ALLOWED_CONTENT_TYPES)},
        )
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip('"')
    if charset and media.startswith("text/"):
        if not _CHARSET.fullmatch(charset):
            raise errors.ValidationError("content_type has an invalid charset")
        return f"{media}; charset={charset.lower()}"
    return media


class UploadRequest(BaseModel):
    """The body of `POST /uploads`."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=1000)
    content_type: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1, description="Bytes the client will upload (at most)")
    #: Who may see the document (None: the whole org), as `ingest` takes it.
    acl: list[str] | None = None

    @field_validator("acl")
    @classmethod
    def _acl(cls, v: list[str] | None) -> list[str] | None:
        return check_acl(v)

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        return check_filename(value)


@dataclass(frozen=True)
class ObjectName:
    """The parts of an upload's object name."""

    org_id: uuid.UUID
    upload_id: uuid.UUID
    filename: str


def object_name(org_id: uuid.UUID, upload_id: uuid.UUID, filename: str) -> str:
    return f"{OBJECT_PREFIX}/{org_id}/{upload_id}/{filename}"


def _canonical_uuid(text: str) -> uuid.UUID | None:
    try:
        value = uuid.UUID(text)
    except ValueError:
        return None
    return value if str(value) == text else None


def parse_object_name(name: str) -> ObjectName:
    """Org, upload id and file name of `orgs/<org_id>/<upload_id>/<filename>`; anything else
    (another layout, non-canonical UUIDs, a file name `check_filename` would change) is a
    ValidationError: the object was not made through an upload URL."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != OBJECT_PREFIX:
        raise errors.ValidationError("object name is not orgs/<org_id>/<upload_id>/<filename>")
    org_id, upload_id = _canonical_uuid(parts[1]), _canonical_uuid(parts[2])
    if org_id is None or upload_id is None:
        raise errors.ValidationError("object name does not carry canonical UUIDs")
    try:
        filename = check_filename(parts[3])
    except ValueError as exc:
        raise errors.ValidationError(f"object name has an invalid file name: {exc}") from exc
    if filename != parts[3]:
        raise errors.ValidationError("object name has a file name that is not normalised")
    return ObjectName(org_id, upload_id, filename)


@dataclass(frozen=True)
class UploadUrl:
    upload_id: uuid.UUID
    bucket: str
    object: str
    url: str
    headers: dict[str, str]
    expires_at: datetime
    method: str = "PUT"


def create_upload_url(
    org_id: uuid.UUID,
    request: UploadRequest,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> UploadUrl:
    """A signed PUT URL for a new object of `org_id`; 415 for a type extraction cannot read,
    413 over MAX_UPLOAD_BYTES."""
    s = settings or get_settings()
    content_type = check_content_type(request.content_type)
    if request.size > s.max_upload_bytes:
        raise errors.PayloadTooLargeError(
            f"a file of {request.size} bytes is over the upload limit of {s.max_upload_bytes}",
            details={"max_bytes": s.max_upload_bytes},
        )
    if not s.upload_bucket:
        raise errors.ConfigurationError("UPLOAD_BUCKET is not set")
    from ragline.cloud.gcp import storage

    upload_id = uuid.uuid4()
    name = object_name(org_id, upload_id, request.filename)
    headers = {"Content-Type": content_type, LENGTH_RANGE_HEADER: f"0,{request.size}"}
    if request.acl is not None:
        headers[ACL_HEADER] = ",".join(request.acl)
    signed_at = now or datetime.now(UTC)
    url = storage.signed_put_url(
        s.upload_bucket,
        name,
        content_type,
        s.upload_url_expires_s,
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
        settings=s,
    )
    expires_at = signed_at + timedelta(seconds=s.upload_url_expires_s)
    return UploadUrl(upload_id, s.upload_bucket, name, url, headers, expires_at)


def describe(upload: UploadUrl) -> dict[str, Any]:
    """The `201` body of `POST /uploads`."""
    return {
        "upload_id": str(upload.upload_id),
        "object": upload.object,
        "url": upload.url,
        "method": upload.method,
        "headers": dict(upload.headers),
        "expires_at": upload.expires_at.isoformat().replace("+00:00", "Z"),
    }
