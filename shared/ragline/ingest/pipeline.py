"""The ingestion stages: chunk → embed → finalize. Each is idempotent under at-least-once
delivery: unique `(document_id, ord)`, compare-and-set status transitions under a row lock,
vectors written only where missing, and enqueues done after the transaction commits.
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import orm
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import (
    ConfigurationError,
    ExtractionError,
    QueueError,
    RaglineError,
    TransientError,
)
from ragline.core.logs import log
from ragline.db import tenancy, wire
from ragline.db.models import Chunk, Document, DocumentPart, Run
from ragline.guardrails import fairshare
from ragline.ingest import documents, queues

if TYPE_CHECKING:
    from ragline.retrieval.spaces import Space

ACTIVE = ("pending", "chunking", "embedding")


class TaskPayload(BaseModel):
    """What every stage task carries."""

    model_config = ConfigDict(extra="forbid")

    org_id: uuid.UUID
    document_id: uuid.UUID
    batch: int | None = Field(default=None, ge=0)
    #: Attempts already made (TASK_LOCAL_BACKOFF re-enqueues carry it: a new task's
    #: X-CloudTasks-TaskRetryCount starts at 0 again).
    attempt: int | None = Field(default=None, ge=0, le=1000)
    #: embed only: re-embed this batch into this embedding space, nothing else (a shadow
    #: build, or the fill of a space made active by a forced cutover; issue 17).
    space: uuid.UUID | None = None


@dataclass(frozen=True)
class Outcome:
    """`ok` = acknowledge the task (done, nothing to do, or failed for good)."""

    ok: bool
    detail: str


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _add_timing(doc_id: uuid.UUID, key: str, ms: float, **more: float) -> Any:
    """An UPDATE fragment adding `ms` to `timings[key]` (and each of `more`) atomically."""
    args: list[Any] = []
    for name, value in {key: ms, **more}.items():
        current = sa.func.coalesce(Document.timings[name].astext.cast(sa.Float), 0.0)
        args += [name, current + value]
    return Document.timings.op("||")(sa.func.jsonb_build_object(*args))


def _async_commit(session: Session) -> None:
    """A stage's write transaction commits without waiting for the WAL flush (one fsync, ~10 ms
    of every task on a busy machine, issue 16). A database crash may then lose the last few
    hundred milliseconds of stage commits, atomically and in order: the document is left
    behind where it was, its task already acknowledged, and `reconcile` re-enqueues the lost
    work. The ingest request itself (what a client was told) stays synchronous."""
    wire.async_commit(session.connection())


def _locked_doc(session: Session, doc_id: uuid.UUID) -> Document | None:
    """The document row, locked, without its text (loaded only if read)."""
    return session.scalars(
        tenancy.scoped_select(session, Document, Document.id == doc_id)
        .options(orm.defer(Document.content))
        .with_for_update()
    ).one_or_none()


# --- stages ------------------------------------------------------------------------------


def parse(task: TaskPayload) -> None:
    """Extract a file document's text (PDF, HTML, DOCX), then enqueue chunk.

    A PDF longer than PARSE_PAGES_PER_TASK pages is planned first (this task) and parsed by
    one task per page range (`batch`), each storing its part; the task that stores the last
    part assembles the text. Extraction runs outside any transaction; every write happens
    under the document's row lock, re-checked there, so duplicates change nothing."""
    from ragline.ingest import extract, sources

    settings = get_settings()
    started = time.monotonic()
    with tenancy.tenant_session(task.org_id) as session:
        doc = tenancy.get(session, Document, task.document_id)
        if doc is None or doc.status not in ACTIVE:
            return
        if doc.extracted_chars is not None:
            _enqueue_chunk(task)  # parsed already: a lost chunk enqueue heals here
            return
        source = sources.locate(session, doc)
        text_cap = fairshare.org_limit(session, "max_document_bytes", settings.max_document_bytes)
        plan = doc.timings.get("parse_plan")
    data = sources.read(source)
    fmt = extract.detect(source.content_type, data[: extract.HEAD_BYTES])
    limits = replace(
        extract.DEFAULT_LIMITS, max_chars=min(extract.DEFAULT_LIMITS.max_chars, text_cap)
    )
    charset = extract.charset(source.content_type)
    if task.batch is None:
        probed = extract.probe(data, fmt, limits=limits)
        per_task = settings.parse_pages_per_task
        if probed.page_count is not None and probed.page_count > per_task:
            _plan_parts(
                task,
                {
                    "page_count": probed.page_count,
                    "pages_per_task": per_task,
                    "title": probed.title,
                },
            )
            return
        whole = extract.extract(data, fmt, limits=limits, charset=charset)
        part = _Part(whole.text, [list(s) for s in whole.pages])
        _store_parsed(task, [part], whole, text_cap, started)
        return
    if not isinstance(plan, dict):
        raise TransientError("a page-range parse task arrived before its document's plan")
    pages = extract.page_ranges(int(plan["page_count"]), int(plan["pages_per_task"]))
    if task.batch >= len(pages):
        return  # not a part of this plan
    ranged = extract.extract(data, fmt, pages=pages[task.batch], limits=limits)
    _store_part(task, _Part(ranged.text, [list(s) for s in ranged.pages]), text_cap, started)


def _needs_parse(doc: Document) -> bool:
    """A file document whose text the parse stage has not extracted yet."""
    return doc.source_format is not None and doc.extracted_chars is None


@dataclass(frozen=True)
class _Part:
    text: str
    page_spans: list[list[int]]


def _enqueue_chunk(task: TaskPayload) -> None:
    queues.enqueue(
        "chunk",
        {"org_id": str(task.org_id), "document_id": str(task.document_id)},
        f"chunk-{task.document_id}",
    )


def _plan_parts(task: TaskPayload, new_plan: dict[str, Any]) -> None:
    """Record how a long PDF is split (once: `timings.parse_plan`, page count, per-task pages
    and title) and enqueue one parse task per page range."""
    with tenancy.tenant_session(task.org_id) as session:
        doc = _locked_doc(session, task.document_id)
        if doc is None or doc.status not in ACTIVE or doc.extracted_chars is not None:
            return
        plan = doc.timings.get("parse_plan")
        if not isinstance(plan, dict):
            plan = new_plan
            session.execute(
                tenancy.scoped_update(session, Document, Document.id == doc.id).values(
                    page_count=plan["page_count"],
                    timings=Document.timings.op("||")(
                        sa.func.jsonb_build_object("parse_plan", sa.cast(plan, JSONB))
                    ),
                    updated_at=sa.func.now(),
                )
            )
    from ragline.ingest.extract import page_ranges

    parts = len(page_ranges(int(plan["page_count"]), int(plan["pages_per_task"])))
    # A plan made again (reconcile, retry) re-enqueues its parts under fresh names: Cloud
    # Tasks refuses a name reused within the hour, and the parts are idempotent.
    tag = "" if plan is new_plan else f"-{uuid.uuid4().hex[:12]}"
    for i in range(parts):
        queues.enqueue(
            "parse",
            {"org_id": str(task.org_id), "document_id": str(task.document_id), "batch": i},
            f"parse-{task.document_id}-{i}{tag}",
        )


def _store_part(task: TaskPayload, part: _Part, text_cap: int, started: float) -> None:
    """Keep one page range's text; the writer of the last part assembles the document."""
    with tenancy.tenant_session(task.org_id) as session:
        _async_commit(session)
        doc = _locked_doc(session, task.document_id)  # serialises the parts' writers
        if doc is None or doc.status not in ACTIVE or doc.extracted_chars is not None:
            return
        session.execute(
            insert(DocumentPart)
            .values(
                org_id=task.org_id,
                document_id=task.document_id,
                part=task.batch,
                text=part.text,
                page_spans=part.page_spans,
            )
            .on_conflict_do_nothing(index_elements=["document_id", "part"])
        )
        session.execute(
            tenancy.scoped_update(session, Document, Document.id == doc.id).values(
                timings=_add_timing(doc.id, "parse_ms", _ms(started)), updated_at=sa.func.now()
            )
        )
        plan = doc.timings.get("parse_plan") or {}
        from ragline.ingest.extract import page_ranges

        expected = len(page_ranges(int(plan["page_count"]), int(plan["pages_per_task"])))
        rows = session.execute(
            tenancy.scoped_select(session, DocumentPart, DocumentPart.document_id == doc.id)
            .with_only_columns(DocumentPart.text, DocumentPart.page_spans)
            .order_by(DocumentPart.part)
        ).all()
        if len(rows) < expected:
            return
        parts = [_Part(r.text, r.page_spans) for r in rows]
        _assemble(session, doc, "pdf", parts, plan.get("title"), text_cap)
        session.execute(
            tenancy.scoped_delete(session, DocumentPart, DocumentPart.document_id == doc.id)
        )
    _enqueue_chunk(task)


def _store_parsed(
    task: TaskPayload, parts: list[_Part], extracted: Any, text_cap: int, started: float
) -> None:
    with tenancy.tenant_session(task.org_id) as session:
        _async_commit(session)
        doc = _locked_doc(session, task.document_id)
        if doc is None or doc.status not in ACTIVE or doc.extracted_chars is not None:
            return
        doc.page_count = extracted.page_count
        _assemble(session, doc, str(extracted.format), parts, extracted.title, text_cap)
        session.execute(
            tenancy.scoped_update(session, Document, Document.id == doc.id).values(
                timings=_add_timing(doc.id, "parse_ms", _ms(started))
            )
        )
    _enqueue_chunk(task)


def _assemble(
    session: Session,
    doc: Document,
    fmt: str,
    parts: list[_Part],
    title: str | None,
    text_cap: int,
) -> None:
    """With the row locked: the parts' texts joined by blank lines become the document's
    text, their page spans shifted to match. Raises ExtractionError `no_text` (nothing to
    index) or `too_large` (over the org's text cap)."""
    from ragline.ingest.extract import Reason

    texts: list[str] = []
    spans: list[list[int]] = []
    offset = 0
    for part in parts:
        if texts and part.text:
            offset += 2  # the "\n\n" joining this part to the previous one
        spans += [[offset + a, offset + b] for a, b in part.page_spans]
        if part.text:
            texts.append(part.text)
            offset += len(part.text)
    text = "\n\n".join(texts)
    if not text.strip():
        raise ExtractionError(
            str(Reason.NO_TEXT), "the file has no extractable text (scanned pages?)"
        )
    size = len(text.encode("utf-8"))
    if size > text_cap:
        raise ExtractionError(
            str(Reason.TOO_LARGE),
            f"the extracted text is {size} bytes; the limit per document is {text_cap}",
            details={"reason": str(Reason.TOO_LARGE), "bytes": size, "limit": text_cap},
        )
    doc.content = text
    doc.source_format = fmt
    doc.extracted_chars = len(text)
    doc.page_spans = spans or None
    if doc.title_from_file and title:
        doc.title = title
    doc.updated_at = sa.func.now()
    session.flush()


def chunk(task: TaskPayload) -> None:
    """Split the document into chunks (once), then enqueue one embed task per batch.

    The split runs outside any transaction (no row lock held while computing); the insert
    and the status change happen under the document's row lock, re-checked there."""
    settings = get_settings()
    started = time.monotonic()
    with tenancy.tenant_session(task.org_id) as session:
        doc = tenancy.get(session, Document, task.document_id)
        if doc is None or doc.status not in ACTIVE or _needs_parse(doc):
            return  # a file not parsed yet: its parse task enqueues chunk when done
        existing = tenancy.count(session, Chunk, Chunk.document_id == doc.id)
        content = doc.content if existing == 0 else ""
        spans = [(int(a), int(b)) for a, b in doc.page_spans or []]
        cap = fairshare.org_limit(
            session, "max_chunks_per_document", settings.max_chunks_per_document
        )
    rows: list[dict[str, Any]] = []
    if existing == 0:
        from ragline.ingest.chunking import split_document
        from ragline.ingest.extract import page_of

        pieces = split_document(
            content,
            max_tokens=settings.chunk_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
            max_chunks=cap,
            breaks=[start for start, _ in spans[1:]],
        )
        rows = [
            {
                "ord": p.ord,
                "text": p.text,
                "section_label": p.section_label,
                "token_count": p.token_count,
                "start_offset": p.start,
                "end_offset": p.end,
                "page": page_of(p.start, spans) if spans else None,
            }
            for p in pieces
        ]
    with tenancy.tenant_session(task.org_id) as session:
        _async_commit(session)
        doc = _locked_doc(session, task.document_id)
        if doc is None or doc.status not in ACTIVE:
            return
        documents.insert_chunks(session, doc.id, rows)
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


def _batch_missing(
    session: Session, task: TaskPayload, size: int, space: Space | None
) -> sa.Select[uuid.UUID, str]:
    """Id and text of the chunks of the task's batch still without a vector in `space`
    (None: the legacy `chunk.embedding`), in order."""
    from ragline.retrieval import spaces

    batch = task.batch or 0
    return (
        tenancy.scoped_select(
            session,
            Chunk,
            Chunk.document_id == task.document_id,
            Chunk.ord >= batch * size,
            Chunk.ord < (batch + 1) * size,
            spaces.missing(space),
        )
        .with_only_columns(Chunk.id, Chunk.text)
        .order_by(Chunk.ord)
    )


def embed(task: TaskPayload) -> None:
    """Embed one batch of chunks in every live embedding space of the org (the configured
    model alone when it has none), writing only missing vectors; the task that writes the
    last missing vector of the searched space also completes the document (same
    transaction), else finalize is queued.

    Per batch: one read transaction, the models run outside any transaction, and one write
    transaction (row lock, one multi-row write of the vectors per space, timings, the
    completeness check and, when nothing is missing, the ready transition)."""
    if task.space is not None:
        _reembed(task, task.space)
        return
    from ragline.retrieval import spaces
    from ragline.retrieval.embeddings import for_org

    settings = get_settings()
    size = settings.embed_batch_chunks
    started = time.monotonic()
    with tenancy.tenant_session(task.org_id) as session:
        status = session.scalar(
            tenancy.scoped_select(
                session, Document, Document.id == task.document_id
            ).with_only_columns(Document.status)
        )
        if status != "embedding":
            return
        live = spaces.live(session)
        targets: list[tuple[spaces.Space | None, Any, Any]] = []
        each: list[spaces.Space | None] = [*live] if live else [None]
        for space in each:
            todo = session.execute(_batch_missing(session, task, size, space)).all()
            if todo:
                embedder = (
                    for_org(session, settings)
                    if space is None
                    else spaces.embedder_for(space, settings)
                )
                targets.append((space, embedder, todo))
    computed: list[tuple[spaces.Space | None, str, list[Any], list[list[float]]]] = []
    model_ms = 0.0
    for space, embedder, todo in targets:
        # The models run outside any transaction: no locks held while computing.
        model_started = time.monotonic()
        vectors = embedder.embed([t.text for t in todo], kind="document")
        model_ms += _ms(model_started)
        computed.append((space, embedder.name, todo, vectors))
    with tenancy.tenant_session(task.org_id) as session:
        _async_commit(session)
        doc = _locked_doc(session, task.document_id)  # serialises a document's writers
        if doc is None or doc.status != "embedding":
            return
        for space, model, todo, vectors in computed:
            # One statement per space for the whole batch, writing only missing vectors, so
            # that a duplicate delivery never overwrites one.
            spaces.write_vectors(session, space, model, [t.id for t in todo], vectors)
        if computed:
            session.execute(
                tenancy.scoped_update(session, Document, Document.id == task.document_id).values(
                    # embed_ms: the whole stage (reads, model, vector write); embed_model_ms:
                    # the model alone (bench/ingest.py compares it with the bare embedder).
                    timings=_add_timing(
                        task.document_id, "embed_ms", _ms(started), embed_model_ms=model_ms
                    ),
                    updated_at=sa.func.now(),  # progress: reconcile measures stalls from it
                )
            )
        # Under the row lock, this statement sees every other batch's committed vectors.
        # The searched space decides; a cutover since the read is seen here.
        searched: spaces.Space | None = spaces.active(session) if live else None
        counts = _counts(session, doc, searched)
        missing = counts.unembedded
        done = missing == 0 and _complete(session, doc, searched, counts)
    if done:
        _log_ready(task, doc.chunk_count or 0)
    elif missing == 0:
        _enqueue_finalize(task)


def _reembed(task: TaskPayload, space_id: uuid.UUID) -> None:
    """One batch of a document into one space, vectors written only where missing: no
    re-parse, no re-chunk, no document state change (a shadow build, issue 17)."""
    from ragline.retrieval import spaces

    settings = get_settings()
    size = settings.embed_batch_chunks
    with tenancy.tenant_session(task.org_id) as session:
        space = spaces.get(session, space_id)
        if space is None or space.state == "retired":
            return  # cut over, rolled back or purged since: nothing left to build
        todo = session.execute(
            _batch_missing(session, task, size, space)
            .join(Document, Document.id == Chunk.document_id)
            .where(Document.deleted_at.is_(None))
        ).all()
    if not todo:
        return
    embedder = spaces.embedder_for(space, settings)
    vectors = embedder.embed([t.text for t in todo], kind="document")
    with tenancy.tenant_session(task.org_id) as session:
        _async_commit(session)
        spaces.write_vectors(session, space, embedder.name, [t.id for t in todo], vectors)


def _enqueue_finalize(task: TaskPayload) -> None:
    queues.enqueue(
        "finalize",
        {"org_id": str(task.org_id), "document_id": str(task.document_id)},
        f"finalize-{task.document_id}",
    )


@dataclass(frozen=True)
class _Counts:
    total: int
    unembedded: int
    contiguous: bool


def _counts(session: Session, doc: Document, space: Space | None) -> _Counts:
    """The document's chunks, those without a vector in `space` (None: `chunk.embedding`),
    and whether their ords run 0..n-1: one statement."""
    from ragline.retrieval import spaces

    total, unembedded, lo, hi = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(spaces.missing(space)),
            sa.func.min(Chunk.ord),
            sa.func.max(Chunk.ord),
        ).where(Chunk.org_id == doc.org_id, Chunk.document_id == doc.id)
    ).one()
    return _Counts(total, unembedded, total == 0 or (lo == 0 and hi == total - 1))


def _complete(
    session: Session, doc: Document, space: Space | None = None, counts: _Counts | None = None
) -> bool:
    """With the document row locked: when every expected chunk is there (ords contiguous) and
    has a vector in the searched space (`space`; None: `chunk.embedding`), mark it ready and
    its ingest run succeeded; False (nothing changed) otherwise. `counts`: `_counts` of the
    same transaction, when the caller has them."""
    counts = counts or _counts(session, doc, space)
    if counts.total != (doc.chunk_count or 0) or counts.unembedded or not counts.contiguous:
        return False
    doc.status = "ready"
    doc.error = None
    doc.updated_at = sa.func.now()
    session.flush()
    if doc.replaces_id is not None:
        # The new version of an object takes over in this same transaction: no moment
        # where a search finds neither (issue 13).
        documents.delete(session, doc.replaces_id)
    ingest_ms = sa.func.round(
        sa.cast(sa.extract("epoch", sa.func.now() - Document.created_at) * 1000, sa.Numeric), 1
    )
    total_ms = sa.func.jsonb_build_object("total_ms", ingest_ms)
    timings = session.execute(
        tenancy.scoped_update(session, Document, Document.id == doc.id)
        .values(timings=Document.timings.op("||")(total_ms))
        .returning(Document.timings)
        .execution_options(synchronize_session=False)
    ).scalar_one()
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
            state={"chunks": counts.total, "timings": timings},
        )
    )
    return True


def _log_ready(task: TaskPayload, chunks: int) -> None:
    log(
        "INFO",
        "document ready",
        event="document_ready",
        org_id=task.org_id,
        document_id=task.document_id,
        chunks=chunks,
    )


def finalize(task: TaskPayload) -> None:
    """Verify every chunk is there and embedded, then mark the document ready (once)."""
    with tenancy.tenant_session(task.org_id) as session:
        doc = _locked_doc(session, task.document_id)
        if doc is None or doc.status != "embedding":
            return
        from ragline.retrieval import spaces

        if not _complete(session, doc, spaces.active(session)):
            raise TransientError("document not complete: chunks missing or not embedded")
        chunks = doc.chunk_count or 0
    _log_ready(task, chunks)


HANDLERS: dict[str, Callable[[TaskPayload], None]] = {
    "parse": parse,
    "chunk": chunk,
    "embed": embed,
    "finalize": finalize,
}


# --- the runner ----------------------------------------------------------------------------


#: Why a document failed (`document.failure_reason`): stage_timeout, retries_exhausted or
#: error, or the parse stage's reason (`ragline.ingest.extract.Reason`: encrypted, no_text,
#: corrupt, too_large, ..., or source_gone).
FailureReason = str


def fail_document(session: Session, doc_id: uuid.UUID, reason: FailureReason, message: str) -> bool:
    """With a tenant session: an active document becomes failed (reason, message) and its
    running ingest run fails with it; False when it was not active (nothing changed)."""
    message = message[:2000]
    failed = session.execute(
        tenancy.scoped_update(session, Document, Document.id == doc_id, Document.status.in_(ACTIVE))
        .values(status="failed", error=message, failure_reason=reason, updated_at=sa.func.now())
        .returning(Document.id)
    ).first()
    if failed is None:
        return False
    # The page-range parts of a long PDF are of no use to a failed document (a retry parses
    # again): they go now rather than with the document.
    session.execute(
        tenancy.scoped_delete(session, DocumentPart, DocumentPart.document_id == doc_id)
    )
    replaced = session.scalar(
        tenancy.scoped_select(session, Document, Document.id == doc_id).with_only_columns(
            Document.replaces_id
        )
    )
    if replaced is not None:
        # The object now holds this unreadable version: the old text must not keep answering.
        documents.delete(session, replaced)
    session.execute(
        tenancy.scoped_update(
            session,
            Run,
            Run.document_id == doc_id,
            Run.kind == "ingest",
            Run.status == "running",
        ).values(
            status="failed",
            error=f"{reason}: {message}"[:2000],
            finished_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )
    return True


def mark_failed(task: TaskPayload, stage: str, error: str, reason: FailureReason = "error") -> None:
    """Record a permanent failure on the document and its ingest run."""
    with tenancy.tenant_session(task.org_id) as session:
        if not fail_document(session, task.document_id, reason, f"{stage}: {error}"):
            return
    log(
        "ERROR",
        "document failed",
        event="document_failed",
        org_id=task.org_id,
        document_id=task.document_id,
        stage=stage,
        reason=reason,
        error=error[:500],
    )


@dataclass(frozen=True)
class Work:
    """One task to enqueue (after the transaction that decided it commits)."""

    stage: str
    payload: dict[str, Any]
    name: str


def missing_work(session: Session, doc_id: uuid.UUID, tag: str) -> list[Work]:
    """The tasks that move a document on from its first unfinished stage: parse when it is a
    file not parsed yet (a page-range plan is re-made and its parts re-enqueued), chunk when it has
    no chunks, embed for each batch with a missing vector, else finalize. Every stage is
    idempotent, so enqueuing work that is already queued or running is harmless. `tag` makes
    the task names fresh (Cloud Tasks refuses a name reused within about an hour)."""
    org = tenancy.current_org(session)
    base: dict[str, Any] = {"org_id": str(org), "document_id": str(doc_id)}
    doc = tenancy.get(session, Document, doc_id)
    if doc is not None and _needs_parse(doc):
        return [Work("parse", base, f"parse-{doc_id}-{tag}")]
    chunks = tenancy.count(session, Chunk, Chunk.document_id == doc_id)
    if chunks == 0:
        return [Work("chunk", base, f"chunk-{doc_id}-{tag}")]
    from ragline.retrieval import spaces

    size = get_settings().embed_batch_chunks
    missing = session.scalars(
        sa.select(Chunk.ord).where(
            Chunk.org_id == org,
            Chunk.document_id == doc_id,
            spaces.missing(spaces.active(session)),
        )
    ).all()
    batches = sorted({int(o) // size for o in missing})
    if batches:
        return [
            Work("embed", {**base, "batch": int(b)}, f"embed-{doc_id}-{int(b)}-{tag}")
            for b in batches
        ]
    return [Work("finalize", base, f"finalize-{doc_id}-{tag}")]


def enqueue_work(work: list[Work]) -> None:
    for item in work:
        queues.enqueue(item.stage, item.payload, item.name)


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
FAIR_STAGES = ("parse", "chunk", "embed")


def _defer(stage: str, task: TaskPayload) -> None:
    """Enqueue the task again, a little later, under a fresh name (the stages are idempotent,
    so a duplicate is harmless)."""
    payload = task.model_dump(mode="json", exclude_none=True)
    name = f"{stage}-{task.document_id}-{task.batch or 0}-d{uuid.uuid4().hex[:12]}"
    queues.enqueue(stage, payload, name, delay_s=get_settings().fairshare_defer_s)


#: The fair-share "stage" of re-embedding tasks: slots of their own (REEMBED_CONCURRENCY,
#: `limits.reembed_concurrency`), so a build never takes the embed slots of live ingestion.
REEMBED_SLOTS = "reembed"


def _run_fairly(stage: str, task: TaskPayload) -> str:
    """Run the stage inside one of the org's slots, or defer it when they are all taken."""
    if stage not in FAIR_STAGES or not queues.can_defer():
        HANDLERS[stage](task)
        return "done"
    shares: dict[str, Any] = {}
    slot_stage = stage
    if stage == "embed" and task.space is not None:
        slot_stage = REEMBED_SLOTS
        shares = {"limit": "reembed_concurrency", "default": get_settings().reembed_concurrency}
    with fairshare.slot(task.org_id, slot_stage, **shares) as granted:
        if granted:
            HANDLERS[stage](task)
            return "done"
    _defer(stage, task)
    return "deferred: the org's share of this stage is in use"


def run_stage(stage: str, raw: dict[str, Any], *, attempt: int, max_attempts: int) -> Outcome:
    """Run one delivery of a stage task and say whether the queue should retry it."""
    task = TaskPayload.model_validate(raw)
    attempt = max(attempt, task.attempt or 0)
    try:
        if get_settings().fault_inject:
            _inject_fault(stage, attempt)
        return Outcome(True, _run_fairly(stage, task))
    except (TransientError, QueueError) as exc:
        # A successor that could not be enqueued is the queue's trouble, not the document's:
        # retry (issue 16: under load a refused enqueue used to fail documents for good).
        error = f"{type(exc).__name__}: {exc}"
        transient = True
    except ExtractionError as exc:  # the file itself: permanent, with its reason
        error = f"{exc.reason}: {exc.message}"
        mark_failed(task, stage, error, exc.reason)
        return Outcome(True, f"failed permanently: {error}")
    except RaglineError as exc:
        error = f"{exc.code}: {exc.message}"
        transient = False
    except Exception as exc:  # unknown or the database away: retry, but never forever
        error = f"{type(exc).__name__}: {exc}"
        transient = True
    last = attempt + 1 >= max_attempts
    if task.space is not None and not (transient and not last):
        # A build batch never fails its document (it may be ready and searched): it is
        # counted on the space and reported; `reembed --resume` enqueues it again.
        _reembed_failed(task, task.space, error)
        return Outcome(True, f"re-embed batch failed: {error}")
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
        if _retry_later(stage, task, attempt):
            return Outcome(True, f"retry {attempt + 1} scheduled: {error}")
        return Outcome(False, error)
    # The dead-letter signal: the last attempt (or a permanent error) fails the document and
    # logs `document_failed` (a log-based metric alerts on it). If the database is down even
    # for this, the exception answers 503 and reconcile fails the document later.
    mark_failed(task, stage, error, "retries_exhausted" if transient else "error")
    return Outcome(True, f"failed permanently: {error}")


def _reembed_failed(task: TaskPayload, space_id: uuid.UUID, error: str) -> None:
    from ragline.retrieval import spaces

    with tenancy.tenant_session(task.org_id) as session:
        spaces.record_failure(session, space_id, error)
    log(
        "ERROR",
        "re-embed batch failed",
        event="reembed_batch_failed",
        org_id=task.org_id,
        document_id=task.document_id,
        space_id=space_id,
        batch=task.batch,
        error=error[:500],
    )


def backoff_s(attempt: int) -> float:
    """Delay before retry `attempt + 1`: doubling from TASK_MIN_BACKOFF_S, capped, like a
    Cloud Tasks queue's retry_config (min_backoff, max_backoff, doublings)."""
    settings = get_settings()
    return float(
        min(settings.task_max_backoff_s, settings.task_min_backoff_s * 2 ** min(attempt, 20))
    )


def _retry_later(stage: str, task: TaskPayload, attempt: int) -> bool:
    """TASK_LOCAL_BACKOFF (the local stack): the emulator retries a failed task at once, ~10
    times a second, so a stage failing during a short outage would burn its attempts in
    seconds. Instead the task re-enqueues itself `backoff_s(attempt)` later, carrying its
    attempt count, and is acknowledged. False (answer 503, let the queue retry) when that is
    off or the enqueue itself fails."""
    if not get_settings().task_local_backoff or not queues.can_defer():
        return False
    payload = task.model_dump(mode="json", exclude_none=True) | {"attempt": attempt + 1}
    name = f"{stage}-{task.document_id}-{task.batch or 0}-a{attempt + 1}-{uuid.uuid4().hex[:8]}"
    try:
        queues.enqueue(stage, payload, name, delay_s=backoff_s(attempt))
    except Exception:  # the queue is away too: fall back on its own retry
        return False
    return True


def preload(stage: str) -> None:
    """Warm this process for `stage`: the stage's lazy imports, one pooled database connection
    and, for embed, the model, so a task does not pay for them (issue 16). Never raises.
    `ragline.api.tasks` runs it in a background thread of the forked gunicorn worker and
    decides when (issue 12)."""
    try:
        from ragline.db.engine import get_engine

        with get_engine().connect():
            pass
        if stage == "chunk":
            import ragline.ingest.chunking  # noqa: F401
        if stage == "embed" and get_settings().embedding_provider == "minilm":
            from ragline.retrieval.embeddings import get_embedder

            get_embedder()
    except Exception as exc:  # the first task reports it with its own error handling
        log("WARNING", "stage warm-up failed", event="preload_failed", error=str(exc))


def _run_inline(stage: str, payload: dict[str, Any], *, attempt: int, max_attempts: int) -> bool:
    return run_stage(stage, payload, attempt=attempt, max_attempts=max_attempts).ok


queues.set_inline_runner(_run_inline)
