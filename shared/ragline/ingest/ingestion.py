"""The front of the pipeline: hand a new document to the queue (the ingest request itself is
parsed in `ragline.api.body.ingest_body`)."""

from __future__ import annotations

import time
import uuid
from typing import Any

# The pipeline installs the inline queue backend's stage runner when imported.
from ragline.ingest import (
    pipeline,  # noqa: F401
    queues,
)
from ragline.ingest.documents import Ingested

#: A pending document re-submitted after this long gets its chunk task enqueued again.
REQUEUE_AFTER_S = 60


def start_pipeline(org_id: uuid.UUID, result: Ingested) -> None:
    """Enqueue the chunk task (after commit). A re-submitted document still pending is
    enqueued again under a new name, so a lost enqueue heals on the client's retry."""
    doc = result.document
    if result.created:
        name = f"chunk-{doc.id}"
    elif doc.status == "pending":
        name = f"chunk-{doc.id}-r{int(time.time()) // REQUEUE_AFTER_S}"
    else:
        return
    queues.enqueue("chunk", {"org_id": str(org_id), "document_id": str(doc.id)}, name)


def describe(result: Ingested) -> dict[str, Any]:
    return {
        "document_id": str(result.document.id),
        "run_id": str(result.run_id) if result.run_id else None,
        "status": result.document.status,
        "created": result.created,
    }
