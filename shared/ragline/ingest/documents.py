"""Documents: create (deduplicated by content hash), list, read, delete. Tenant sessions only."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import (
    ConflictError,
    DocumentTooLargeError,
    NotFoundError,
    ValidationError,
)
from ragline.db import pagination, tenancy
from ragline.db.models import (
    Chunk,
    Document,
    DocumentFile,
    DocumentPart,
    DocumentStatus,
    Run,
    RunStatus,
    StorageObject,
)
from ragline.guardrails import fairshare

MAX_TITLE = 500
#: A document ACL entry (issue 18): `user:<app_user id>` or `group:<name>` (a token's groups).
_PRINCIPAL = re.compile(
    r"user:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|group:[A-Za-z0-9._:@/+-]{1,128}"
)
MAX_ACL = 100
#: Longest `?acl=` (a query string stays well under servers' request-line limits).
MAX_ACL_QUERY = 2000


def check_acl(acl: list[str] | None) -> list[str] | None:
    """A document's ACL, normalised (sorted, unique); None: the whole org. An empty list is
    refused (a document nobody but server keys could see is better made explicit)."""
    if acl is None:
        return None
    bad = [p for p in acl if not isinstance(p, str) or not _PRINCIPAL.fullmatch(p.strip())]
    if bad or not acl or len(acl) > MAX_ACL:
        raise ValueError(
            f"acl must be 1-{MAX_ACL} principals 'user:<uuid>' or 'group:<name>' (or null)"
        )
    return sorted({p.strip() for p in acl})


def parse_acl(text: str | None) -> list[str] | None:
    """`?acl=group:hr,user:<id>` of a raw or file upload; None when absent."""
    if text is None:
        return None
    if len(text) > MAX_ACL_QUERY:
        raise ValidationError(
            f"?acl= is longer than {MAX_ACL_QUERY} characters: send a JSON body or PATCH the ACL"
        )
    try:
        return check_acl([p for p in text.split(",") if p.strip()])
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


class AclPatch(BaseModel):
    """The body of `PATCH documents/<id>`: the new ACL (null: the whole org)."""

    model_config = ConfigDict(extra="forbid")

    acl: list[str] | None

    @field_validator("acl")
    @classmethod
    def _acl(cls, v: list[str] | None) -> list[str] | None:
        return check_acl(v)


class NewDocument(BaseModel):
    """The body of an ingest request."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    title: str = Field(min_length=1, max_length=MAX_TITLE)
    text: str = Field(min_length=1)
    kind: str = Field(default="text", min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$")
    metadata: dict[str, Any] = Field(default_factory=dict)
    source_uri: str | None = Field(default=None, max_length=2048)
    #: Who may see it (None: the whole org): `user:<id>` / `group:<name>` principals.
    acl: list[str] | None = None

    @field_validator("acl")
    @classmethod
    def _acl(cls, v: list[str] | None) -> list[str] | None:
        return check_acl(v)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text must not be blank")
        if "\x00" in v:
            raise ValueError("text must not contain NUL characters")
        return v

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        v = v.strip()
        if not v or "\x00" in v:
            raise ValueError("title must be non-blank text without NUL")
        return v


@dataclass(frozen=True)
class NewFile:
    """A file posted to `ingest` (its format already checked against its bytes)."""

    data: bytes
    content_type: str  # the declared media type, e.g. application/pdf
    format: str  # `ragline.ingest.extract.Format`
    title: str | None = None  # None: the file's own title once parsed (else `filename`)
    filename: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source_uri: str | None = None
    acl: list[str] | None = None  # checked by `check_acl`


@dataclass(frozen=True)
class Ingested:
    document: Document
    run_id: uuid.UUID | None
    created: bool


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_hash(data: bytes) -> str:
    """A file's identity for deduplication: a different prefix from text hashes, so a file
    and its own extracted text stay two documents."""
    return "file:" + hashlib.sha256(data).hexdigest()


def create(session: Session, new: NewDocument | NewFile) -> Ingested:
    """Create a pending document and its ingest run, or return the existing same-content one
    (a file: see `create_file`)."""
    if isinstance(new, NewFile):
        return create_file(session, new)
    size = len(new.text.encode("utf-8"))
    limit = fairshare.org_limit(session, "max_document_bytes", get_settings().max_document_bytes)
    if size > limit:
        raise DocumentTooLargeError(
            f"document text is {size} bytes; the limit per document is {limit}",
            details={"bytes": size, "limit": limit},
        )
    return insert_document(
        session,
        {
            "title": new.title,
            "kind": new.kind,
            "content": new.text,
            "content_hash": content_hash(new.text),
            "metadata_": new.metadata,
            "source_uri": new.source_uri,
            "acl": new.acl,
        },
        run_input={"title": new.title, "kind": new.kind, "bytes": size},
    )


def create_file(session: Session, new: NewFile) -> Ingested:
    """A pending file document (text empty until the parse stage extracts it) with its bytes
    kept in `document_file`, or the existing document with the same bytes."""
    ingested = insert_document(
        session,
        {
            "title": new.title or placeholder_title(new.filename, new.format),
            "title_from_file": new.title is None,
            "kind": new.kind or new.format,
            "content": "",
            "content_hash": file_hash(new.data),
            "metadata_": new.metadata,
            "source_uri": new.source_uri,
            "source_format": new.format,
            "content_type": new.content_type,
            "file_bytes": len(new.data),
            "acl": new.acl,
        },
        run_input={"title": new.title, "format": new.format, "bytes": len(new.data)},
    )
    if ingested.created:
        tenancy.add(
            session,
            DocumentFile(document_id=ingested.document.id, data=new.data),
        )
        session.flush()
    return ingested


def title_from_text(text: str) -> str | None:
    """A text body's own title: its first Markdown heading, else its first non-blank line."""
    first: str | None = None
    for line in text[:20_000].splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            heading = stripped.lstrip("#").strip()
            if heading:
                return heading[:MAX_TITLE]
        elif stripped and first is None:
            first = stripped[:MAX_TITLE]
    return first


def placeholder_title(filename: str | None, fmt: str) -> str:
    """The title of a file document until its own title is read (or when it has none)."""
    name = " ".join((filename or "").split())[:MAX_TITLE]
    return name or f"untitled {fmt}"


def insert_document(
    session: Session, values: dict[str, Any], *, run_input: dict[str, Any]
) -> Ingested:
    """Insert a pending document and its running ingest run, unless the org already has a
    live document with the same `content_hash` (then that one, `created=False`)."""
    org_id = tenancy.current_org(session)
    digest = values["content_hash"]
    inserted = session.execute(
        insert(Document)
        .values(
            org_id=org_id,
            timings={"ingested_at": datetime.now().astimezone().isoformat()},
            **values,
        )
        .on_conflict_do_nothing(
            index_elements=["org_id", "content_hash"], index_where=sa.text("deleted_at IS NULL")
        )
        .returning(Document.id)
    ).scalar_one_or_none()
    if inserted is None:
        existing = session.scalars(
            tenancy.scoped_select(
                session, Document, Document.content_hash == digest, Document.deleted_at.is_(None)
            )
        ).one_or_none()
        if existing is None:
            # The same content is a document the caller may not see (its ACL): refused
            # without saying more about it (issue 18).
            raise ConflictError("this content cannot be ingested here")
        run_id = session.scalar(
            tenancy.scoped_select(
                session, Run, Run.document_id == existing.id, Run.kind == "ingest"
            )
            .with_only_columns(Run.id)
            .order_by(Run.created_at.desc())
            .limit(1)
        )
        return Ingested(existing, run_id, created=False)
    run = tenancy.add(
        session,
        Run(
            kind="ingest",
            status=RunStatus.RUNNING,
            document_id=inserted,
            input=run_input,
            started_at=sa.func.now(),
        ),
    )
    session.flush()
    doc = session.get(Document, inserted)
    assert doc is not None
    return Ingested(doc, run.id, created=True)


def get(session: Session, document_id: uuid.UUID) -> Document:
    doc = tenancy.get(session, Document, document_id)
    if doc is None or doc.deleted_at is not None:
        raise NotFoundError(f"no document {document_id}")
    return doc


#: The chunk stage's rows in one statement: the rows travel as one JSON parameter (one
#: round trip, one prepared statement whatever their number; pg8000 would send a list
#: per row, or escape text arrays character by character). Idempotent under redelivery.
_INSERT_CHUNKS = sa.text(
    """
    INSERT INTO chunk (org_id, document_id, ord, text, section_label, token_count,
                       start_offset, end_offset, page)
    SELECT :org, :document, r.ord, r.text, r.section_label, r.token_count,
           r.start_offset, r.end_offset, r.page
    FROM json_to_recordset(CAST(:rows AS json)) AS r(
        ord int, text text, section_label text, token_count int,
        start_offset int, end_offset int, page int)
    ON CONFLICT (document_id, ord) DO NOTHING
    """
)


def insert_chunks(session: Session, document_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
    """Insert the document's chunks (`ord`, `text`, `section_label`, `token_count`,
    `start_offset`, `end_offset`, `page` each), skipping the ords already there."""
    if rows:
        session.execute(
            _INSERT_CHUNKS,
            {
                "org": tenancy.current_org(session),
                "document": document_id,
                "rows": json.dumps(rows, ensure_ascii=False),
            },
        )


def chunk_counts(session: Session, document_id: uuid.UUID) -> dict[str, int]:
    """Chunks of the document, and those with a vector in the org's searched space."""
    from ragline.retrieval import spaces

    missing = spaces.missing(spaces.active(session))
    row = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(sa.not_(missing)),
        ).where(Chunk.org_id == tenancy.current_org(session), Chunk.document_id == document_id)
    ).one()
    return {"total": int(row[0]), "embedded": int(row[1])}


def describe(session: Session, doc: Document, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(doc.id),
        "title": doc.title,
        "kind": doc.kind,
        "status": doc.status,
        "content_hash": doc.content_hash,
        "metadata": doc.metadata_,
        "source_uri": doc.source_uri,
        "acl": doc.acl,
        "chunk_count": doc.chunk_count,
        "error": doc.error,
        "failure_reason": doc.failure_reason,
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
    }
    if doc.source_format is not None:
        out["source"] = {
            "format": doc.source_format,
            "content_type": doc.content_type,
            "file_bytes": doc.file_bytes,
            "page_count": doc.page_count,
            "extracted_chars": doc.extracted_chars,
            "generation": None if doc.source_generation is None else int(doc.source_generation),
        }
    if detail:
        out["chunks"] = chunk_counts(session, doc.id)
        out["timings"] = doc.timings
        out["replaces"] = str(doc.replaces_id) if doc.replaces_id else None
    return out


#: Statuses a listing may filter on (deleted documents are never listed).
ListStatus = Literal[
    DocumentStatus.PENDING,
    DocumentStatus.CHUNKING,
    DocumentStatus.EMBEDDING,
    DocumentStatus.READY,
    DocumentStatus.FAILED,
]


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ListStatus | None = None
    kind: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=pagination.MAX_CURSOR_LENGTH)


def list_documents(session: Session, q: ListQuery) -> tuple[list[Document], str | None]:
    """Newest first, keyset-paginated by (created_at, id)."""
    where: list[Any] = [Document.deleted_at.is_(None)]
    if q.status:
        where.append(Document.status == q.status)
    if q.kind:
        where.append(Document.kind == q.kind)
    return pagination.newest_first(session, Document, where, q.cursor, q.limit)


def set_acl(session: Session, document_id: uuid.UUID, patch: AclPatch) -> Document:
    """Change who may see a document the caller can see (its chunks follow, by trigger)."""
    doc = get(session, document_id)
    doc.acl = patch.acl
    doc.updated_at = datetime.now().astimezone()
    session.flush()
    return doc


def delete(session: Session, document_id: uuid.UUID) -> bool:
    """Remove a document and its chunks now; repeatable (False when nothing was there).

    The row is kept as a tombstone (`status = deleted`, content cleared) until retention
    purges it, so late pipeline tasks for it find nothing to do."""
    doc = tenancy.get(session, Document, document_id, for_update=True)
    if doc is None or doc.deleted_at is not None:
        return False
    session.execute(tenancy.scoped_delete(session, Chunk, Chunk.document_id == document_id))
    for table in (DocumentFile, DocumentPart):
        session.execute(tenancy.scoped_delete(session, table, table.document_id == document_id))
    doc.status = DocumentStatus.DELETED
    doc.deleted_at = sa.func.now()
    doc.updated_at = sa.func.now()
    doc.content = ""
    _restore_replaced(session, doc)
    # The ingest run ends with its document (a later stage task finds nothing to do).
    session.execute(
        tenancy.scoped_update(
            session,
            Run,
            Run.document_id == document_id,
            Run.kind == "ingest",
            Run.status.in_((RunStatus.PENDING, RunStatus.RUNNING)),
        ).values(
            status=RunStatus.CANCELLED,
            error="document deleted",
            finished_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )
    return True


def _restore_replaced(session: Session, doc: Document) -> None:
    """A new version of an object deleted before it took over: the version it was replacing
    (still live) is the object's document again, so the next event of the object replaces
    or deletes it instead of leaving it live for good (the tombstone of the deleted version,
    which alone pointed at it, is purged by retention)."""
    if doc.replaces_id is None:
        return
    replaced = tenancy.get(session, Document, doc.replaces_id)
    if replaced is None or replaced.deleted_at is not None:
        return
    session.execute(
        tenancy.scoped_update(session, StorageObject, StorageObject.document_id == doc.id).values(
            document_id=replaced.id, updated_at=sa.func.now()
        )
    )
