"""ACLs on object uploads (issue 18), on the real Cloud Storage emulator: the `uploads`
request's `acl` is signed into the URL as `x-goog-meta-ragline-acl`, stored with the object,
and `on_upload` gives the document that ACL; a malformed ACL on an object refuses it rather
than ingest it for the whole org."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from ragline.cloud.gcp import storage
from ragline.core.config import Settings
from ragline.db import tenancy
from ragline.db.models import Document
from ragline.ingest.upload_urls import ACL_HEADER

from .conftest import UPLOAD_BUCKET
from .helpers import Tenant, client
from .test_files import pdf_with_facts
from .test_on_upload import SECRET, deliver

PDF = "application/pdf"


@pytest.fixture(autouse=True)
def _stack(offline_pipeline: Callable[..., None], gcs: Settings) -> None:
    offline_pipeline(task_auth="secret", task_secret=SECRET)


def _upload_url(tenant: Tenant, data: bytes, acl: list[str] | None) -> Any:
    body: dict[str, Any] = {"filename": "hr.pdf", "content_type": PDF, "size": len(data)}
    if acl is not None:
        body["acl"] = acl
    return client("uploads").post("/", json=body, headers=tenant.headers)


def _stored(name: str) -> storage.StoredObject:
    return next(o for o in storage.list_objects(UPLOAD_BUCKET, name) if o.name == name)


def _documents(tenant: Tenant) -> list[Document]:
    with tenancy.tenant_session(tenant.org_id) as s:
        return list(s.scalars(sa.select(Document).where(Document.deleted_at.is_(None))))


def test_the_signed_acl_becomes_the_documents_acl(tenant: Tenant) -> None:
    data = pdf_with_facts(1)
    resp = _upload_url(tenant, data, ["group:hr", "group:hr", "group:board"])
    assert resp.status_code == 201, resp.json
    out = resp.json
    assert out["headers"][ACL_HEADER] == "group:board,group:hr"
    signed = parse_qs(urlsplit(out["url"]).query)["X-Goog-SignedHeaders"][0].split(";")
    assert ACL_HEADER in signed  # the holder of the URL cannot drop or change it
    put = httpx.put(out["url"], content=data, headers=out["headers"])
    assert put.status_code == 200, put.text
    obj = _stored(out["object"])
    assert obj.metadata == {"ragline-acl": "group:board,group:hr"}
    assert deliver("finalized", obj).status_code == 200
    [doc] = _documents(tenant)
    assert doc.acl == ["group:board", "group:hr"]
    # Invisible to a caller without those groups (RLS on app.principals).
    with tenancy.tenant_session(tenant.org_id, principals={"group:sales"}) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Document)) == 0


def test_without_an_acl_the_document_is_the_whole_orgs(tenant: Tenant) -> None:
    data = pdf_with_facts(1)
    out = _upload_url(tenant, data, None).json
    assert ACL_HEADER not in out["headers"]
    assert httpx.put(out["url"], content=data, headers=out["headers"]).status_code == 200
    assert deliver("finalized", _stored(out["object"])).status_code == 200
    [doc] = _documents(tenant)
    assert doc.acl is None


@pytest.mark.parametrize("acl", [[], ["everyone"], ["group:a,b"], ["user:not-a-uuid"]])
def test_a_malformed_acl_is_422(tenant: Tenant, acl: list[str]) -> None:
    assert _upload_url(tenant, b"x", acl).status_code == 422


@pytest.mark.parametrize("value", ["", "everyone", "group:hr,*", "group:" + "x" * 200])
def test_an_object_with_a_malformed_acl_is_refused_not_ingested(tenant: Tenant, value: str) -> None:
    name = f"orgs/{tenant.org_id}/{uuid.uuid4()}/hr.pdf"
    blob = storage.client().bucket(UPLOAD_BUCKET).blob(name)
    blob.metadata = {"ragline-acl": value}
    blob.upload_from_string(pdf_with_facts(1), content_type=PDF)
    resp = deliver("finalized", _stored(name))
    assert resp.status_code == 200, resp.json
    assert _documents(tenant) == []
