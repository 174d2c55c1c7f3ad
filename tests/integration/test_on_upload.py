"""`on_upload` on the real Cloud Storage emulator (issue 13): object events become documents
exactly once per generation, whatever the order and however often they arrive; an overwrite
replaces its document with no moment where searches find neither version; a delete removes
it; objects outside `orgs/<org_id>/` or of unknown orgs are refused, never ingested."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable
from typing import Any, Literal

import pytest
import sqlalchemy as sa

from ragline.cloud.gcp import storage
from ragline.cloud.gcp.cloud_tasks import TASK_SECRET_HEADER
from ragline.core.config import Settings
from ragline.db import tenancy
from ragline.db.models import Chunk, Document, StorageObject
from ragline.dev import events
from ragline.testing import documents as samples

from .helpers import Tenant, client
from .test_files import pdf_with_facts

PDF = "application/pdf"
Kind = Literal["finalized", "deleted"]
SECRET = "on-upload-test-secret"


@pytest.fixture(autouse=True)
def _stack(offline_pipeline: Callable[..., None], gcs: Settings) -> None:
    offline_pipeline(task_auth="secret", task_secret=SECRET)


def put(tenant: Tenant, data: bytes, filename: str = "manual.pdf", ctype: str = PDF) -> Any:
    """Upload a new object (a new generation when the name exists) and return it as listed."""
    name = f"orgs/{tenant.org_id}/{uuid.UUID(int=7)}/{filename}"
    storage.upload_object(storage_bucket(), name, data, ctype)
    return next(o for o in storage.list_objects(storage_bucket(), name) if o.name == name)


def storage_bucket() -> str:
    from ragline.core.config import get_settings

    return get_settings().upload_bucket or ""


def deliver(kind: Kind, obj: Any, secret: str = SECRET) -> Any:
    headers, body = events.cloud_event(kind, obj)
    return client("on_upload").post("/", headers={**headers, TASK_SECRET_HEADER: secret}, data=body)


def live_documents(tenant: Tenant) -> list[Document]:
    with tenancy.tenant_session(tenant.org_id) as s:
        return list(
            s.scalars(
                sa.select(Document)
                .where(Document.deleted_at.is_(None))
                .order_by(Document.created_at)
            )
        )


def search(tenant: Tenant, query: str) -> list[dict[str, Any]]:
    resp = client("search").post(
        "/", json={"query": query, "mode": "text", "top_k": 5}, headers=tenant.headers
    )
    assert resp.status_code == 200, resp.json
    hits: list[dict[str, Any]] = resp.json["results"]
    return hits


def test_finalized_twice_is_one_ready_document_with_pages(tenant: Tenant) -> None:
    obj = put(tenant, pdf_with_facts(3))
    assert deliver("finalized", obj).status_code == 200
    assert deliver("finalized", obj).status_code == 200
    docs = live_documents(tenant)
    assert len(docs) == 1
    doc = docs[0]
    assert (doc.status, doc.title, doc.source_format) == ("ready", "Field Manual", "pdf")
    assert doc.source_uri == f"gs://{obj.bucket}/{obj.name}"
    assert int(doc.source_generation or 0) == obj.generation
    assert search(tenant, "zebra2quux")[0]["page"] == 2


def test_overwrite_replaces_without_a_gap_and_stale_events_change_nothing(tenant: Tenant) -> None:
    first = put(tenant, pdf_with_facts(2))
    deliver("finalized", first)
    (old,) = live_documents(tenant)
    second = put(tenant, pdf_with_facts(4, title="Field Manual v2"))
    seen: list[int] = []
    stop = threading.Event()

    def searching() -> None:
        while not stop.is_set():
            seen.append(len(search(tenant, "access code")))

    watcher = threading.Thread(target=searching)
    watcher.start()
    try:
        assert deliver("finalized", second).status_code == 200
    finally:
        stop.set()
        watcher.join()
    assert seen and min(seen) > 0, "a search found neither version"
    (new,) = live_documents(tenant)
    assert new.id != old.id and new.status == "ready" and new.title == "Field Manual v2"
    # The overwrite's own notice for the old generation, and replays in the wrong order.
    for kind, obj in [("deleted", first), ("finalized", first), ("finalized", second)] * 2:
        assert deliver(kind, obj).status_code == 200
    assert [d.id for d in live_documents(tenant)] == [new.id]
    assert search(tenant, "zebra4quux")[0]["document_id"] == str(new.id)


def test_delete_removes_document_and_chunks_and_replays_change_nothing(tenant: Tenant) -> None:
    obj = put(tenant, pdf_with_facts(2))
    deliver("finalized", obj)
    (doc,) = live_documents(tenant)
    storage.delete_object(obj.bucket, obj.name)
    for _ in range(2):
        assert deliver("deleted", obj).status_code == 200
    assert deliver("finalized", obj).status_code == 200  # late: the object is gone
    assert live_documents(tenant) == []
    with tenancy.tenant_session(tenant.org_id) as s:
        chunks = s.scalar(sa.select(sa.func.count()).where(Chunk.document_id == doc.id))
        row = s.scalars(sa.select(StorageObject)).one()
    assert chunks == 0
    assert (row.deleted, int(row.generation)) == (True, obj.generation)
    assert search(tenant, "zebra1quux") == []


def test_deleted_before_finalized_never_ingests(tenant: Tenant) -> None:
    obj = put(tenant, pdf_with_facts(1))
    assert deliver("deleted", obj).status_code == 200
    assert deliver("finalized", obj).status_code == 200
    assert live_documents(tenant) == []


def test_a_generation_gone_before_parse_fails_and_the_next_one_wins(tenant: Tenant) -> None:
    first = put(tenant, pdf_with_facts(1))
    second = put(tenant, pdf_with_facts(2))  # overwrites before first's event arrives
    deliver("finalized", first)
    (gone,) = live_documents(tenant)
    assert (gone.status, gone.failure_reason) == ("failed", "source_gone")
    deliver("finalized", second)
    deliver("deleted", first)
    (doc,) = live_documents(tenant)
    assert doc.status == "ready" and int(doc.source_generation or 0) == second.generation


def test_a_bad_file_fails_with_its_reason(tenant: Tenant) -> None:
    obj = put(tenant, samples.pdf_encrypted(), "locked.pdf")
    deliver("finalized", obj)
    (doc,) = live_documents(tenant)
    assert (doc.status, doc.failure_reason, doc.title) == ("failed", "encrypted", "locked.pdf")


@pytest.mark.parametrize(
    "name",
    [
        "elsewhere/manual.pdf",
        "orgs/not-a-uuid/{u}/manual.pdf",
        "orgs/{org}/{u}/../../etc/passwd",
        f"orgs/{uuid.uuid4()}/{{u}}/manual.pdf",  # an org that does not exist
    ],
    ids=["outside", "bad-org", "traversal", "unknown-org"],
)
def test_objects_outside_an_org_are_refused(tenant: Tenant, name: str) -> None:
    """The event names the object (a forged or stray one too): only `orgs/<org>/<id>/<file>`
    of an existing org is ever read."""
    real = put(tenant, pdf_with_facts(1))
    forged = dataclasses.replace(real, name=name.format(org=tenant.org_id, u=uuid.uuid4()))
    assert deliver("finalized", forged).status_code == 200  # acknowledged: retrying changes nothing
    assert live_documents(tenant) == []


def test_events_without_the_secret_or_malformed(tenant: Tenant) -> None:
    obj = put(tenant, pdf_with_facts(1))
    refused = deliver("finalized", obj, secret="wrong")
    assert refused.status_code == 401
    assert refused.json["error"]["code"] == "unauthenticated"
    headers, _ = events.cloud_event("finalized", obj)
    junk = client("on_upload").post(
        "/", headers={**headers, TASK_SECRET_HEADER: SECRET}, data=b'{"bucket": 3}'
    )
    assert junk.status_code == 200  # logged and acknowledged: it can never succeed
    assert live_documents(tenant) == []
