"""The front of the pipeline: hand a new document to the queue (the ingest request itself is
parsed in `ragline.api.body.ingest_body`)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ragline.core.errors import ConflictError, NotFoundError
from ragline.db import tenancy
from ragline.db.models import Document, Run

# The pipeline installs the inline queue backend's stage runner when imported.
from ragline.ingest import pipeline, queues
from ragline.ingest.documents import Ingested

#: A document re-submitted with no progress for this long gets its missing work enqueued again.
REQUEUE_AFTER_S = 60


def start_pipeline(org_id: uuid.UUID, result: Ingested) -> None:
    """Enqueue the first stage's task (after commit): parse for a file, else chunk.

    A re-submitted document still in the pipeline whose last progress is older than
    REQUEUE_AFTER_S gets its missing work (parse, chunk, embed batches or finalize) enqueued
    again under new names, so a lost enqueue or a lost task heals on the client's retry (the
    stages are idempotent)."""
    doc = result.document
    if result.created:
        first = "parse" if doc.source_format is not None else "chunk"
        queues.enqueue(
            first, {"org_id": str(org_id), "document_id": str(doc.id)}, f"{first}-{doc.id}"
        )
        return
    if doc.status not in pipeline.ACTIVE:
        return
    with tenancy.tenant_session(org_id) as session:
        stalled = session.scalar(
            tenancy.scoped_select(
                session,
                Document,
                Document.id == doc.id,
                Document.status.in_(pipeline.ACTIVE),
                Document.updated_at < sa.func.now() - sa.text(f"interval '{REQUEUE_AFTER_S} s'"),
            ).with_only_columns(Document.id)
        )
        tag = f"r{int(time.time()) // REQUEUE_AFTER_S}"
        work = pipeline.missing_work(session, doc.id, tag) if stalled else []
    pipeline.enqueue_work(work)


def retry(session: Session, document_id: uuid.UUID) -> list[pipeline.Work]:
    """`POST documents/<id>/retry`: restart a failed document from its first unfinished stage
    (chunk when it has no chunks, else the embed batches missing a vector, else finalize),
    under a new ingest run. Returns the tasks to enqueue once the transaction commits."""
    doc = tenancy.get(session, Document, document_id, for_update=True)
    if doc is None or doc.deleted_at is not None:
        raise NotFoundError(f"no document {document_id}")
    if doc.status != "failed":
        raise ConflictError(
            f"document is {doc.status}: only a failed document can be retried",
            details={"status": doc.status},
        )
    work = pipeline.missing_work(session, doc.id, f"retry-{uuid.uuid4().hex[:12]}")
    doc.status = "pending" if work[0].stage in ("parse", "chunk") else "embedding"
    doc.error = None
    doc.failure_reason = None
    doc.requeues = 0
    doc.requeued_at = None
    doc.updated_at = sa.func.now()
    tenancy.add(
        session,
        Run(
            kind="ingest",
            status="running",
            document_id=doc.id,
            input={"retry": True, "from_stage": work[0].stage},
            started_at=sa.func.now(),
        ),
    )
    session.flush()
    return work


def enqueue(work: list[pipeline.Work]) -> None:
    """Hand the tasks of `retry` to their queues (after commit)."""
    pipeline.enqueue_work(work)


def describe(result: Ingested) -> dict[str, Any]:
    return {
        "document_id": str(result.document.id),
        "run_id": str(result.run_id) if result.run_id else None,
        "status": result.document.status,
        "created": result.created,
    }
