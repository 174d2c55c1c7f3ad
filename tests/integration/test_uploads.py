"""The `uploads` function against the real emulator: a signed URL per file that accepts the
upload into the caller's org, and the refusals (type, size, name)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ragline.cloud.gcp import storage
from ragline.core.config import Settings
from ragline.ingest.upload_urls import parse_object_name

from .conftest import UPLOAD_BUCKET
from .helpers import Tenant, client

PDF = b"%PDF-1.4\n% a tiny test file\n"


def _post(tenant: Tenant, body: dict[str, Any], **headers: str) -> Any:
    return client("uploads").post("/", json=body, headers={**tenant.headers, **headers})


def test_signed_url_uploads_into_the_callers_org(gcs: Settings, tenant: Tenant) -> None:
    before = datetime.now(UTC)
    resp = _post(
        tenant, {"filename": " Q3 report.pdf", "content_type": "application/pdf", "size": len(PDF)}
    )
    assert resp.status_code == 201, resp.json
    out = resp.json
    parsed = parse_object_name(out["object"])
    assert (parsed.org_id, parsed.filename, str(parsed.upload_id)) == (
        tenant.org_id,
        "Q3 report.pdf",
        out["upload_id"],
    )
    assert out["method"] == "PUT"
    assert out["headers"] == {
        "Content-Type": "application/pdf",
        "x-goog-content-length-range": f"0,{len(PDF)}",
    }
    expires = datetime.fromisoformat(out["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=899) <= expires <= datetime.now(UTC) + timedelta(seconds=901)
    put = httpx.put(out["url"], content=PDF, headers=out["headers"])
    assert put.status_code == 200, put.text
    [stored] = storage.list_objects(UPLOAD_BUCKET, out["object"])
    assert (stored.content_type, stored.size) == ("application/pdf", len(PDF))
    assert storage.read_object(UPLOAD_BUCKET, out["object"], stored.generation) == PDF


def test_every_request_is_a_new_object_but_a_retried_key_replays(
    gcs: Settings, tenant: Tenant
) -> None:
    body = {"filename": "notes.md", "content_type": "text/markdown; charset=UTF-8", "size": 10}
    first, second = _post(tenant, body), _post(tenant, body)
    assert first.json["object"] != second.json["object"]
    assert first.json["headers"]["Content-Type"] == "text/markdown; charset=utf-8"
    once = _post(tenant, body, **{"Idempotency-Key": "upload-1"})
    again = _post(tenant, body, **{"Idempotency-Key": "upload-1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == once.json


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"content_type": "image/png"}, 415, "unsupported_media_type"),
        ({"content_type": "application/msword"}, 415, "unsupported_media_type"),
        ({"size": 101}, 413, "payload_too_large"),
        ({"size": 0}, 422, "invalid_request"),
        ({"size": "10"}, 422, "invalid_request"),
        ({"filename": "../etc/passwd"}, 422, "invalid_request"),
        ({"filename": "a\u202eb.pdf"}, 422, "invalid_request"),
        ({"filename": "x" * 201}, 422, "invalid_request"),
        ({"bucket": "elsewhere"}, 422, "invalid_request"),
    ],
    ids=["png", "msword", "too big", "empty", "size as text", "path", "bidi", "long", "extra"],
)
def test_refusals(
    gcs: Settings,
    tenant: Tenant,
    configure: Callable[..., None],
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    configure(max_upload_bytes="100")
    body = {"filename": "a.pdf", "content_type": "application/pdf", "size": 100, **change}
    resp = _post(tenant, body)
    assert resp.status_code == status, resp.json
    assert resp.json["error"]["code"] == code
    if status == 413:
        assert resp.json["error"]["details"] == {"max_bytes": 100}


def test_without_a_bucket_the_function_fails_loudly(
    gcs: Settings, tenant: Tenant, configure: Callable[..., None]
) -> None:
    configure(upload_bucket="")
    resp = _post(tenant, {"filename": "a.pdf", "content_type": "application/pdf", "size": 1})
    assert resp.status_code == 500
    assert resp.json["error"]["code"] == "configuration"
