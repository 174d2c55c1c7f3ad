"""The ingestion stages: chunk → embed → finalize. Each is idempotent under at-least-once
delivery: unique `(document_id, ord)`, compare-and-set status transitions under a row lock,
vectors written only where missing, and enqueues done after the transaction commits.
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import ConfigurationError, RaglineError, TransientError
from ragline.core.logs import log
from ragline.db import tenancy
from ragline.db.models import Chunk, Document, Run
from ragline.guardrails import fairshare
from ragline.ingest import queues

ACTIVE = ("pending", "chunking", "embedding")


class TaskPayload(BaseModel):
    """What every stage task carries."""

    model_config = ConfigDict(extra="forbid")

    org_id: uuid.UUID
    document_id: uuid.UUID
    batch: int | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class Outcome:
    """`ok` = acknowledge the task (done, nothing to do, or failed for good)."""

    ok: bool
    detail: str


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _add_timing(doc_id: uuid.UUID, key: str, ms: float) -> Any:
    """An UPDATE fragment adding `ms` to `timings[key]` atomically."""
    current = sa.func.coalesce(Document.timings[key].astext.cast(sa.Float), 0.0)
    return Document.timings.op("||")(sa.func.jsonb_build_object(key, current + ms))


def _locked_doc(session: Session, doc_id: uuid.UUID) -> Document | None:
    return tenancy.get(session, Document, doc_id, for_update=True)


# --- stages ------------------------------------------------------------------------------


def chunk(task: TaskPayload) -> None:
    """Split the document into chunks (once), then enqueue one embed task per batch.

    The split runs outside any transaction (no row lock held while computing); the insert
    and the status change happen under the document's row lock, re-checked there."""
    settings = get_settings()
    started = time.monotonic()
    with tenancy.tenant_session(task.org_id) as session:
        doc = tenancy.get(session, Document, task.document_id)
        if doc is None or doc.status not in ACTIVE:
            return
        existing = tenancy.count(session, Chunk, Chunk.document_id == doc.id)
        content = doc.content if existing == 0 else ""
        cap = fairshare.org_limit(
            session, "max_chunks_per_document", settings.max_chunks_per_document
        )
    rows: list[dict[str, Any]] = []
    if existing == 0:
        from ragline.ingest.chunking import split_document

        pieces = split_document(
            content,
            max_tokens=settings.chunk_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
            max_chunks=cap,
        )
        rows = [
            {
                "org_id": task.org_id,
                "document_id": task.document_id,
                "ord": p.ord,
                "text": p.text,
                "section_label": p.section_label,
                "token_count": p.token_count,
                "start_offset": p.start,
                "end_offset": p.end,
            }
            for p in pieces
        ]
    with tenancy.tenant_session(task.org_id) as session:
        doc = _locked_doc(session, task.document_id)
        if doc is None or doc.status not in ACTIVE:
            return
        if rows:
            session.execute(
                insert(Chunk).on_conflict_do_nothing(index_elements=["document_id", "ord"]), rows
            )
        n_chunks = tenancy.count(session, Chunk, Chunk.document_id == doc.id)
        if doc.status != "embedding":
            doc.status = "embedding"
            doc.chunk_count = n_chunks
            doc.updated_at = sa.func.now()
            session.flush()
            session.execute(
                tenancy.scoped_update(session, Document, Document.id == doc.id).values(
                    timings=_add_timing(doc.id, "chunk_ms", _ms(started))
                )
            )
    size = settings.embed_batch_chunks
    batches = (n_chunks + size - 1) // size
    for i in range(batches):
        queues.enqueue(
            "embed",
            {"org_id": str(task.org_id), "document_id": str(task.document_id), "batch": i},
            f"embed-{task.document_id}-{i}",
        )
    if batches == 0:
        _enqueue_finalize(task)


def embed(task: TaskPayload) -> None:
    """Embed one batch of chunks, writing only missing vectors; enqueue finalize when done."""
    from ragline.retrieval.embeddings import get_embedder

    settings = get_settings()
    size = settings.embed_batch_chunks
    batch = task.batch or 0
    started = time.monotonic()
    with tenancy.tenant_session(task.org_id) as session:
        doc = tenancy.get(session, Document, task.document_id)
        if doc is None or doc.status != "embedding":
            return
        todo = session.execute(
            tenancy.scoped_select(
                session,
                Chunk,
                Chunk.document_id == task.document_id,
                Chunk.ord >= batch * size,
                Chunk.ord < (batch + 1) * size,
                Chunk.embedding.is_(None),
            )
            .with_only_columns(Chunk.id, Chunk.text)
            .order_by(Chunk.ord)
        ).all()
    if todo:
        # The model runs outside any transaction: no locks held while computing.
        embedder = get_embedder(settings)
        vectors = embedder.embed([t.text for t in todo], kind="document")
        with tenancy.tenant_session(task.org_id) as session:
            table = cast(sa.Table, Chunk.__table__)
            # Core executemany (not ORM bulk-by-primary-key): guarded by `embedding IS NULL`
            # so a duplicate delivery never overwrites a vector.
            session.connection().execute(
                sa.update(table)
                .where(
                    table.c.org_id == task.org_id,
                    table.c.id == sa.bindparam("cid"),
                    table.c.embedding.is_(None),
                )
                .values(embedding=sa.bindparam("vec"), embedding_model=embedder.name),
                [{"cid": t.id, "vec": v} for t, v in zip(todo, vectors, strict=True)],
            )
            session.execute(
                tenancy.scoped_update(session, Document, Document.id == task.document_id).values(
                    timings=_add_timing(task.document_id, "embed_ms", _ms(started))
                )
            )
    with tenancy.tenant_session(task.org_id) as session:
        missing = tenancy.count(
            session, Chunk, Chunk.document_id == task.document_id, Chunk.embedding.is_(None)
        )
    if missing == 0:
        _enqueue_finalize(task)


def _enqueue_finalize(task: TaskPayload) -> None:
    queues.enqueue(
        "finalize",
        {"org_id": str(task.org_id), "document_id": str(task.document_id)},
        f"finalize-{task.document_id}",
    )


def finalize(task: TaskPayload) -> None:
    """Verify every chunk is there and embedded, then mark the document ready (once)."""
    with tenancy.tenant_session(task.org_id) as session:
        doc = _locked_doc(session, task.document_id)
        if doc is None or doc.status != "embedding":
            return
        total, embedded, lo, hi = session.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(Chunk.embedding),
                sa.func.min(Chunk.ord),
                sa.func.max(Chunk.ord),
            ).where(Chunk.org_id == task.org_id, Chunk.document_id == doc.id)
        ).one()
        expected = doc.chunk_count or 0
        contiguous = total == 0 or (lo == 0 and hi == total - 1)
        if total != expected or embedded != total or not contiguous:
            raise TransientError(
                f"document not complete: {embedded}/{total} embedded, {expected} expected"
            )
        ingested = session.scalar(
            sa.select(sa.extract("epoch", sa.func.now() - Document.created_at)).where(
                Document.id == doc.id
            )
        )
        total_ms = round(float(ingested or 0) * 1000, 1)
        doc.status = "ready"
        doc.error = None
        doc.updated_at = sa.func.now()
        session.flush()
        session.execute(
            tenancy.scoped_update(session, Document, Document.id == doc.id).values(
                timings=Document.timings.op("||")(sa.func.jsonb_build_object("total_ms", total_ms))
            )
        )
        session.refresh(doc)
        session.execute(
            tenancy.scoped_update(
                session,
                Run,
                Run.document_id == doc.id,
                Run.kind == "ingest",
                Run.status == "running",
            ).values(
                status="succeeded",
                finished_at=sa.func.now(),
                updated_at=sa.func.now(),
                state={"chunks": total, "timings": doc.timings},
            )
        )
    log(
        "INFO",
        "document ready",
        event="document_ready",
        org_id=task.org_id,
        document_id=task.document_id,
        chunks=total,
    )


HANDLERS: dict[str, Callable[[TaskPayload], None]] = {
    "chunk": chunk,
    "embed": embed,
    "finalize": finalize,
}


# --- the runner ----------------------------------------------------------------------------


def mark_failed(task: TaskPayload, stage: str, error: str) -> None:
    """Record a permanent failure on the document and its ingest run."""
    with tenancy.tenant_session(task.org_id) as session:
        doc = _locked_doc(session, task.document_id)
        if doc is None or doc.status not in ACTIVE:
            return
        message = f"{stage}: {error}"[:2000]
        doc.status = "failed"
        doc.error = message
        doc.updated_at = sa.func.now()
        session.execute(
            tenancy.scoped_update(
                session,
                Run,
                Run.document_id == doc.id,
                Run.kind == "ingest",
                Run.status == "running",
            ).values(
                status="failed", error=message, finished_at=sa.func.now(), updated_at=sa.func.now()
            )
        )
    log(
        "ERROR",
        "document failed",
        event="document_failed",
        org_id=task.org_id,
        document_id=task.document_id,
        stage=stage,
        error=error[:500],
    )


def _inject_fault(stage: str, attempt: int) -> None:
    """FAULT_INJECT (end-to-end tests): the test tool is looked up by name, like an embedding
    provider, so deployed code never imports it (and a deployed function, which does not
    carry `ragline.testing`, refuses the setting)."""
    try:
        faults = importlib.import_module("ragline.testing.faults")
    except ImportError as exc:
        raise ConfigurationError(
            "FAULT_INJECT is a test setting: ragline.testing is absent"
        ) from exc
    faults.inject(stage, attempt)


#: Stages whose tasks take a slot of the org's fair share (`ragline.guardrails.fairshare`).
FAIR_STAGES = ("chunk", "embed")


def _defer(stage: str, task: TaskPayload) -> None:
    """Enqueue the task again, a little later, under a fresh name (the stages are idempotent,
    so a duplicate is harmless)."""
    payload = task.model_dump(mode="json", exclude_none=True)
    name = f"{stage}-{task.document_id}-{task.batch or 0}-d{uuid.uuid4().hex[:12]}"
    queues.enqueue(stage, payload, name, delay_s=get_settings().fairshare_defer_s)


def _run_fairly(stage: str, task: TaskPayload) -> str:
    """Run the stage inside one of the org's slots, or defer it when they are all taken."""
    if stage not in FAIR_STAGES or not queues.can_defer():
        HANDLERS[stage](task)
        return "done"
    with fairshare.slot(task.org_id, stage) as granted:
        if granted:
            HANDLERS[stage](task)
            return "done"
    _defer(stage, task)
    return "deferred: the org's share of this stage is in use"


def run_stage(stage: str, raw: dict[str, Any], *, attempt: int, max_attempts: int) -> Outcome:
    """Run one delivery of a stage task and say whether the queue should retry it."""
    task = TaskPayload.model_validate(raw)
    try:
        if get_settings().fault_inject:
            _inject_fault(stage, attempt)
        return Outcome(True, _run_fairly(stage, task))
    except TransientError as exc:
        error = f"{type(exc).__name__}: {exc}"
        transient = True
    except RaglineError as exc:
        error = f"{exc.code}: {exc.message}"
        transient = False
    except Exception as exc:  # unknown or the database away: retry, but never forever
        error = f"{type(exc).__name__}: {exc}"
        transient = True
    last = attempt + 1 >= max_attempts
    log(
        "WARNING",
        f"{stage} attempt {attempt} failed",
        event="stage_error",
        stage=stage,
        org_id=task.org_id,
        document_id=task.document_id,
        attempt=attempt,
        error=error[:500],
    )
    if transient and not last:
        return Outcome(False, error)
    mark_failed(task, stage, error)
    return Outcome(True, f"failed permanently: {error}")


def _run_inline(stage: str, payload: dict[str, Any], *, attempt: int, max_attempts: int) -> bool:
    return run_stage(stage, payload, attempt=attempt, max_attempts=max_attempts).ok


queues.set_inline_runner(_run_inline)
