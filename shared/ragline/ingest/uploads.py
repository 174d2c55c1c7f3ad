"""Objects of the ingestion bucket become documents: `handle_event` applies one object event
(Cloud Storage through Eventarc, or S3 through SQS), exactly once and in generation order.

An object `orgs/<org_id>/<upload_id>/<filename>` belongs to that org. Per object, the row in
`storage_object` remembers the newest generation applied; under its row lock:

- `finalized` of a newer generation creates a pending document for it, which *replaces* the
  document of the previous generation: the old one stays searchable until the new one is
  ready, and is deleted in the very transaction that makes the new one ready;
- `deleted` of the current (or a newer) generation deletes the object's documents; a
  `deleted` for an older generation is the overwrite's own notice and changes nothing;
- an event for a generation already applied (a duplicate, or one that arrives after a newer
  one) changes nothing.

The document's ACL is the object's `ragline-acl` custom metadata, which only the signed
upload URL sets (`upload_urls`; issue 18); a malformed one refuses the object rather than
ingest it for the whole org.

An object of another bucket than UPLOAD_BUCKET, outside `orgs/<org_id>/` or for an unknown
org is refused and logged, never ingested; refusals are acknowledged (a retry would not change
them). Without UPLOAD_BUCKET no event is applied (ConfigurationError: delivered again).
"""

from __future__ import annotations

import hashlib
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import ConfigurationError, ValidationError
from ragline.core.logs import log
from ragline.db import tenancy
from ragline.db.models import Document, DocumentStatus, Org, StorageObject
from ragline.ingest import documents, ingestion, queues
from ragline.ingest.documents import Ingested, insert_document, placeholder_title
from ragline.ingest.objects import ObjectEvent
from ragline.ingest.upload_urls import ACL_METADATA_KEY, parse_object_name


def declared_format(content_type: str | None) -> str:
    """The format an object's Content-Type announces (the parse stage checks it against the
    bytes and records what it found); `unknown` lets the bytes decide."""
    from ragline.ingest.extract.detect import MEDIA_TYPES, media_type

    fmt = MEDIA_TYPES.get(media_type(content_type))
    return str(fmt) if fmt is not None else "unknown"


def _refuse(event: ObjectEvent, why: str) -> str:
    log(
        "WARNING",
        "object event refused",
        event="upload_refused",
        bucket=event.bucket,
        object=event.name[:300],
        generation=event.generation,
        reason=why,
    )
    return f"refused: {why}"


def _upload_bucket() -> str:
    bucket = get_settings().upload_bucket
    if not bucket:
        raise ConfigurationError("UPLOAD_BUCKET is not set: object events cannot be applied")
    return bucket


def handle_event(event: ObjectEvent) -> str:
    """Apply one object event; returns what was done (for the log and the reply)."""
    if event.bucket != _upload_bucket():
        # Another bucket's trigger or a forged event: its objects are never read (the
        # functions' account may read more than the upload bucket).
        return _refuse(event, "not the upload bucket")
    try:
        org = parse_object_name(event.name).org_id
    except ValidationError as exc:
        return _refuse(event, exc.message)
    if event.generation <= 0:
        return _refuse(event, "generation must be positive")
    try:
        acl = documents.parse_acl(event.metadata.get(ACL_METADATA_KEY))
    except ValidationError as exc:
        return _refuse(event, f"{ACL_METADATA_KEY} metadata: {exc.message}")
    started: Ingested | None = None
    resume: uuid.UUID | None = None
    with tenancy.tenant_session(org) as session:
        if session.scalar(sa.select(Org.id).where(Org.id == org)) is None:
            return _refuse(event, "unknown org")
        current = _lock_object(session, event)
        if current is not None and current.generation >= event.generation:
            if current.generation == event.generation and current.deleted is False:
                if event.kind == "deleted":
                    outcome = _delete(session, current, event)
                else:
                    outcome = "duplicate: generation already applied"
                    resume = current.document_id
            elif current.generation == event.generation:
                outcome = "duplicate: generation already deleted"
            else:
                outcome = f"stale: generation {current.generation} already applied"
        elif event.kind == "deleted":
            outcome = _delete(session, current, event)
        else:
            started = _replace(session, current, event, acl)
            outcome = f"ingesting generation {event.generation} as {started.document.id}"
    if started is not None and started.created:
        ingestion.start_pipeline(org, started)
    elif resume is not None:
        _resume(org, resume)
    log(
        "INFO",
        "object event applied",
        event="upload_event",
        org_id=org,
        bucket=event.bucket,
        object=event.name[:300],
        generation=event.generation,
        kind=event.kind,
        outcome=outcome,
    )
    return outcome


def _resume(org: uuid.UUID, doc_id: uuid.UUID) -> None:
    """A redelivered `finalized`: if the enqueue after the first delivery's commit was lost
    (the function died in between), the document would wait for reconcile; its first task is
    enqueued again under the same name instead (Cloud Tasks drops the duplicate; the stage
    is idempotent anyway)."""
    with tenancy.tenant_session(org) as session:
        doc = tenancy.get(session, Document, doc_id)
        waiting = doc is not None and doc.status == DocumentStatus.PENDING
        waiting = waiting and doc is not None and doc.extracted_chars is None
    if waiting:
        queues.enqueue("parse", {"org_id": str(org), "document_id": str(doc_id)}, f"parse-{doc_id}")


def _lock_object(session: Session, event: ObjectEvent) -> StorageObject | None:
    """The object's row, locked; events of one object are applied one after the other.

    The first events of an object find no row to lock: without more, two of them both saw
    "nothing applied yet", both made a document, and the later commit overwrote the row
    (two live documents, or one left behind by a `deleted`). So the transaction first takes
    an advisory lock on the object's key; the row is read after it, seeing every event that
    committed before."""
    key = f"storage_object:{tenancy.current_org(session)}/{event.bucket}/{event.name}"
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))
    return session.scalars(
        tenancy.scoped_select(
            session,
            StorageObject,
            StorageObject.bucket == event.bucket,
            StorageObject.name == event.name,
        ).with_for_update()
    ).one_or_none()


def _record(
    session: Session, event: ObjectEvent, *, deleted: bool, document_id: uuid.UUID | None
) -> None:
    """Insert or move the object's row to `event.generation` (under `_lock_object`)."""
    values = {
        "generation": event.generation,
        "deleted": deleted,
        "document_id": document_id,
        "updated_at": sa.func.now(),
    }
    session.execute(
        insert(StorageObject)
        .values(org_id=tenancy.current_org(session), bucket=event.bucket, name=event.name, **values)
        .on_conflict_do_update(index_elements=["org_id", "bucket", "name"], set_=values)
    )


def _delete(session: Session, current: StorageObject | None, event: ObjectEvent) -> str:
    """The object is gone: its document (and a version it was replacing) is deleted."""
    gone = 0
    if current is not None and current.document_id is not None:
        gone = _delete_version(session, current.document_id)
    _record(session, event, deleted=True, document_id=None)
    return f"deleted generation {event.generation} ({gone} document(s))"


def _delete_version(session: Session, doc_id: uuid.UUID) -> int:
    """Delete a document and the older version it was replacing, if any."""
    replaces = session.scalar(
        tenancy.scoped_select(session, Document, Document.id == doc_id).with_only_columns(
            Document.replaces_id
        )
    )
    gone = int(documents.delete(session, doc_id))
    if replaces is not None:
        gone += int(documents.delete(session, replaces))
    return gone


def _replace(
    session: Session, current: StorageObject | None, event: ObjectEvent, acl: list[str] | None
) -> Ingested:
    """A new generation: a pending document that replaces what the object held. A previous
    version still in the pipeline is dropped now (it will never be current); the version
    being answered from stays until the new one is ready."""
    answering: uuid.UUID | None = None
    if current is not None and not current.deleted and current.document_id is not None:
        previous = tenancy.get(session, Document, current.document_id)
        if previous is not None and previous.deleted_at is None:
            if previous.status == DocumentStatus.READY:
                answering = previous.id
            else:
                answering = previous.replaces_id
                documents.delete(session, previous.id)
    uri = f"{event.scheme}://{event.bucket}/{event.name}"
    filename = event.name.rsplit("/", 1)[-1]
    ingested = insert_document(
        session,
        {
            "title": placeholder_title(filename, "file"),
            "title_from_file": True,
            "kind": "upload",
            "content": "",
            # Identity is the object generation, not the bytes: two objects with the same
            # content are two documents, each deleted with its own object.
            "content_hash": "object:"
            + hashlib.sha256(f"{uri}#{event.generation}".encode()).hexdigest(),
            "source_uri": uri,
            "source_generation": event.generation,
            "source_format": declared_format(event.content_type),
            "content_type": event.content_type,
            "file_bytes": event.size,
            "replaces_id": answering,
            "metadata_": {"object": event.name, "bucket": event.bucket},
            "acl": acl,
        },
        run_input={"object": event.name, "generation": event.generation, "bytes": event.size},
    )
    _record(session, event, deleted=False, document_id=ingested.document.id)
    return ingested
