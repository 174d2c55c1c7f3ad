"""The schema: SQLAlchemy 2 typed models. Every tenant table carries `org_id`."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ragline.core.config import EMBEDDING_DIM


class DocumentStatus(StrEnum):
    """The one vocabulary of document states (check constraint, API types, pipeline, status,
    retention). `pending → chunking → embedding → ready`, or `failed`; `deleted` tombstones."""

    PENDING = "pending"
    CHUNKING = "chunking"
    EMBEDDING = "embedding"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"


#: Documents still moving through the pipeline.
IN_PIPELINE: tuple[DocumentStatus, ...] = (
    DocumentStatus.PENDING,
    DocumentStatus.CHUNKING,
    DocumentStatus.EMBEDDING,
)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class IdempotencyStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


def _one_of(enum: type[StrEnum]) -> str:
    return "status IN (" + ", ".join(f"'{member.value}'" for member in enum) + ")"


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


#: An object's generation: Cloud Storage's fits a bigint, an S3 sequencer needs 128 bits.
GENERATION = sa.Numeric(40, 0)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")
    )


def _org_fk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("org.id", ondelete="CASCADE"), nullable=False, index=True
    )


def _now() -> Mapped[datetime]:
    return mapped_column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _jsonb(default: str = "'{}'::jsonb") -> Mapped[Any]:
    return mapped_column(JSONB, nullable=False, server_default=sa.text(default))


class Org(Base):
    """A customer. Not a tenant table itself: its row is visible only to its own members."""

    __tablename__ = "org"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    slug: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    settings: Mapped[dict[str, Any]] = _jsonb()
    created_at: Mapped[datetime] = _now()


class AppUser(Base):
    """A person in an org: invited by email (no subject yet) or created at first sign-in with
    an OIDC token (issuer + subject; issue 18). `role` `admin` sees every run of the org."""

    __tablename__ = "app_user"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "email"),
        sa.UniqueConstraint("org_id", "issuer", "subject"),
        sa.Index("ix_app_user_issuer_subject", "issuer", "subject"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    org_id: Mapped[uuid.UUID] = _org_fk()
    #: None when another identity of the org already holds the token's email.
    email: Mapped[str | None] = mapped_column(sa.Text)
    issuer: Mapped[str | None] = mapped_column(sa.Text)
    subject: Mapped[str | None] = mapped_column(sa.Text)
    #: The groups claim of the last sign-in (a key acting for the user gets them too).
    groups: Mapped[list[str]] = mapped_column(
        sa.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")
    )
    name: Mapped[str | None] = mapped_column(sa.Text)
    role: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="member")
    created_at: Mapped[datetime] = _now()


class ApiKey(Base):
    """Only the prefix and an HMAC of the secret are stored."""

    __tablename__ = "api_key"

    id: Mapped[uuid.UUID] = _uuid_pk()
    org_id: Mapped[uuid.UUID] = _org_fk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("app_user.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    prefix: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    key_hash: Mapped[str] = mapped_column(sa.Text, nullable=False)
    scopes: Mapped[list[str]] = mapped_column(
        sa.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{read}'::text[]")
    )
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Document(Base):
    __tablename__ = "document"
    __table_args__ = (
        # Same content in the same org is one document (soft-deleted ones excepted).
        sa.Index(
            "uq_document_org_id_content_hash",
            "org_id",
            "content_hash",
            unique=True,
            postgresql_where=sa.text("deleted_at IS NULL"),
        ),
        sa.Index("ix_document_org_id_status_created_at", "org_id", "status", "created_at"),
        sa.Index("ix_document_org_id_kind_created_at", "org_id", "kind", "created_at"),
        sa.Index("ix_document_org_id_updated_at", "org_id", "updated_at"),
        sa.CheckConstraint(_one_of(DocumentStatus), name="status"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    org_id: Mapped[uuid.UUID] = _org_fk()
    title: Mapped[str] = mapped_column(sa.Text, nullable=False)
    kind: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="text")
    content: Mapped[str] = mapped_column(sa.Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(sa.Text, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
    )
    source_uri: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="pending")
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: Why a document failed: stage_timeout, retries_exhausted or error (issue 16).
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    #: Times `reconcile` re-enqueued the work of this document since it last started.
    requeues: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default=sa.text("0"))
    #: When reconcile last re-enqueued it (`updated_at` stays the last real progress).
    requeued_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    chunk_count: Mapped[int | None] = mapped_column(sa.Integer)
    timings: Mapped[dict[str, Any]] = _jsonb()
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # --- files (issue 13): a file document waits for the parse stage until `extracted_chars`
    # is set; text documents have source_format markdown/text and are never parsed.
    #: pdf, html, docx, markdown or text (`ragline.ingest.extract.Format`); None: JSON text.
    source_format: Mapped[str | None] = mapped_column(sa.Text)
    #: The media type the file was declared with (checked against its bytes when parsed).
    content_type: Mapped[str | None] = mapped_column(sa.Text)
    #: Size of the original file in bytes.
    file_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    page_count: Mapped[int | None] = mapped_column(sa.Integer)
    #: Characters of extracted text: set by the parse stage (None: not parsed yet).
    extracted_chars: Mapped[int | None] = mapped_column(sa.Integer)
    #: PDF: [start, end) of each page in `content`, page 1 first.
    page_spans: Mapped[list[Any] | None] = mapped_column(JSONB)
    #: The title is a placeholder until the parse stage reads the file's own title.
    title_from_file: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, server_default=sa.false()
    )
    #: Object uploads: the Cloud Storage generation (or S3 sequencer) this document holds.
    source_generation: Mapped[int | None] = mapped_column(GENERATION)
    #: The earlier version of the same object, deleted when this one becomes ready.
    replaces_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("document.id", ondelete="SET NULL")
    )
    #: Who may see it: principals `user:<id>` / `group:<name>`; None = the whole org. Enforced
    #: by row-level security with `app.principals` (migration 0008, issue 18).
    acl: Mapped[list[str] | None] = mapped_column(sa.ARRAY(sa.Text))


class Chunk(Base):
    __tablename__ = "chunk"
    __table_args__ = (
        sa.UniqueConstraint("document_id", "ord"),
        sa.Index("ix_chunk_tsv", "tsv", postgresql_using="gin"),
        sa.Index(
            "ix_chunk_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 128},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        # The embed stage polls for chunks still without a vector.
        sa.Index(
            "ix_chunk_document_id_missing_embedding",
            "document_id",
            postgresql_where=sa.text("embedding IS NULL"),
        ),
        # Covers the candidate count, ACL policy included (migration 0010).
        sa.Index(
            "ix_chunk_org_id_embedding_model",
            "org_id",
            "embedding_model",
            postgresql_include=["acl"],
        ),
        # The exact scan of a small org: an index-only scan of its vectors (migration 0013).
        sa.Index(
            "ix_chunk_exact_scan",
            "org_id",
            "embedding_model",
            postgresql_include=["acl", "id", "document_id", "embedding"],
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    org_id: Mapped[uuid.UUID] = _org_fk()
    document_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        sa.ForeignKey("document.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    ord: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    text: Mapped[str] = mapped_column(sa.Text, nullable=False)
    section_label: Mapped[str | None] = mapped_column(sa.Text)
    token_count: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    start_offset: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default="0")
    end_offset: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default="0")
    #: 1-based page of the chunk's start (documents with pages: PDF).
    page: Mapped[int | None] = mapped_column(sa.Integer)
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR,
        sa.Computed(
            "to_tsvector('english'::regconfig, coalesce(section_label, '') || ' ' || text)",
            persisted=True,
        ),
    )
    # STORAGE PLAIN (migration 0004): searched vectors are read in line, never from TOAST.
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIM), nullable=True)
    embedding_model: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _now()
    #: The document's ACL, copied by a trigger (never written by the application).
    acl: Mapped[list[str] | None] = mapped_column(sa.ARRAY(sa.Text))


class Run(Base):
    """One recorded execution: an ingest, an answer, an agent run, a retention pass."""

    __tablename__ = "run"
    __table_args__ = (
        sa.Index("ix_run_org_id_kind_status_created_at", "org_id", "kind", "status", "created_at"),
        sa.CheckConstraint(_one_of(RunStatus), name="status"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    org_id: Mapped[uuid.UUID] = _org_fk()
    kind: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="pending")
    parent_run_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("run.id", ondelete="SET NULL"), index=True
    )
    document_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("document.id", ondelete="SET NULL"), index=True
    )
    scenario_label: Mapped[str | None] = mapped_column(sa.Text)
    #: The signed-in user (or the user a key acts for) who started it; None: a server key.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("app_user.id", ondelete="SET NULL"), index=True
    )
    input: Mapped[dict[str, Any]] = _jsonb()
    state: Mapped[dict[str, Any]] = _jsonb()
    tool_log: Mapped[list[Any]] = _jsonb("'[]'::jsonb")
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now()


class IdempotencyKey(Base):
    __tablename__ = "idempotency_key"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "function", "key"),
        sa.Index("ix_idempotency_key_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    org_id: Mapped[uuid.UUID] = _org_fk()
    function: Mapped[str] = mapped_column(sa.Text, nullable=False)
    key: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    request_hash: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="in_progress")
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    response_body: Mapped[Any] = mapped_column(JSONB, nullable=True)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    locked_until: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = _now()


class RateLimitBucket(Base):
    __tablename__ = "rate_limit_bucket"
    __table_args__ = (sa.Index("ix_rate_limit_bucket_updated_at", "updated_at"),)

    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("org.id", ondelete="CASCADE"), primary_key=True
    )
    #: The API key, or the user (per-user limits, issue 18), the bucket belongs to.
    caller_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, index=True)
    bucket: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    tokens: Mapped[float] = mapped_column(sa.Float, nullable=False)
    updated_at: Mapped[datetime] = _now()


class QueryLog(Base):
    """Recent search queries of an org, text only (issue 17: `ragline embeddings compare`
    without a questions file): a ring of at most QUERY_LOG_SIZE slots per org, each search
    overwriting a random one, so the table stays bounded with one upsert and no read;
    retention purges entries older than `query_log_days`."""

    __tablename__ = "query_log"
    __table_args__ = (sa.Index("ix_query_log_created_at", "created_at"),)

    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("org.id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    query: Mapped[str] = mapped_column(sa.Text, nullable=False)
    created_at: Mapped[datetime] = _now()


class StageLease(Base):
    """A slot of an org's fair share of a pipeline stage (`ragline.guardrails.fairshare`):
    held while a task of that org runs the stage, released at the end, expired if its worker
    died."""

    __tablename__ = "stage_lease"

    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("org.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    slot: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(sa.Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)


class DocumentFile(Base):
    """The bytes of a file posted to `ingest`, kept until its document is deleted (the parse
    stage reads them, a retry reads them again). Object uploads stay in their bucket."""

    __tablename__ = "document_file"

    document_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("document.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[uuid.UUID] = _org_fk()
    data: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    created_at: Mapped[datetime] = _now()


class DocumentPart(Base):
    """The text of one page range of a large PDF, parsed by its own task; the task that adds
    the last part assembles the document's text and deletes the parts."""

    __tablename__ = "document_part"

    document_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("document.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    org_id: Mapped[uuid.UUID] = _org_fk()
    text: Mapped[str] = mapped_column(sa.Text, nullable=False)
    #: [start, end) of each page of the range in `text`.
    page_spans: Mapped[list[Any]] = _jsonb("'[]'::jsonb")
    created_at: Mapped[datetime] = _now()


class StorageObject(Base):
    """The last event applied to one object of an ingestion bucket: object events are applied
    once, in generation order, whatever order and however often they arrive."""

    __tablename__ = "storage_object"

    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("org.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    generation: Mapped[int] = mapped_column(GENERATION, nullable=False)
    deleted: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    #: The document holding the newest generation (None once deleted).
    document_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("document.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = _now()


class SpaceState(StrEnum):
    """An embedding space's life: `shadow` (being built) → `active` (searched) → `retired`
    (kept for rollback, purged by retention after a grace period). Issue 17."""

    ACTIVE = "active"
    SHADOW = "shadow"
    RETIRED = "retired"


#: Where a space keeps its vectors: `chunk` (the legacy `chunk.embedding` column, an org's
#: first space) or `chunk_vector_<dim>`.
LEGACY_STORAGE = "chunk"
#: Dimensions with a vector table (`chunk_vector_<dim>`, migration 0007). HNSW on `vector`
#: indexes at most 2000 dimensions; STORAGE PLAIN needs a row to fit one 8 kB page.
VECTOR_DIMS: tuple[int, ...] = (256, 384, 768, 1024, 1536)


class EmbeddingSpace(Base):
    """One embedding model of an org (provider, model, dimension): at most one `active`
    (searched, written by ingestion) and one `shadow` (being built, also written) per org.
    An org without a row uses the configured model and `chunk.embedding`, as before."""

    __tablename__ = "embedding_space"
    __table_args__ = (
        sa.Index(
            "uq_embedding_space_org_id_active",
            "org_id",
            unique=True,
            postgresql_where=sa.text("state = 'active'"),
        ),
        sa.Index(
            "uq_embedding_space_org_id_shadow",
            "org_id",
            unique=True,
            postgresql_where=sa.text("state = 'shadow'"),
        ),
        sa.CheckConstraint("state IN ('active', 'shadow', 'retired')", name="state"),
        sa.CheckConstraint("dimension BETWEEN 1 AND 2000", name="dimension"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    org_id: Mapped[uuid.UUID] = _org_fk()
    provider: Mapped[str] = mapped_column(sa.Text, nullable=False)
    #: The model as the provider's setting names it (MiniLM: the variant).
    model: Mapped[str] = mapped_column(sa.Text, nullable=False)
    dimension: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    normalised: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, server_default=sa.true())
    state: Mapped[str] = mapped_column(sa.Text, nullable=False)
    #: `chunk` (legacy column) or `chunk_vector_<dim>`.
    storage: Mapped[str] = mapped_column(sa.Text, nullable=False)
    #: Tokens of the chunks to embed when the build started, and the price per million
    #: tokens if one is configured (the up-front cost estimate).
    estimate: Mapped[dict[str, Any]] = _jsonb()
    #: Build batches that failed for good (after their retries) and the last error: the
    #: build stays incomplete (cutover refuses) until `reembed --resume` fills them.
    failed_batches: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, server_default=sa.text("0")
    )
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _now()
    activated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: Reconcile's watch of a shadow build (migration 0009): the vectors it lacked when
    #: last seen to change and when; stalled past RECONCILE_STALL_S, its missing batches are
    #: re-enqueued, at most RECONCILE_MAX_REQUEUES times.
    watched_missing: Mapped[int | None] = mapped_column(sa.Integer)
    watched_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    requeues: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default=sa.text("0"))
    requeued_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


def _vector_table(dim: int) -> sa.Table:
    name = f"chunk_vector_{dim}"
    return sa.Table(
        name,
        Base.metadata,
        sa.Column(
            "space_id",
            UUID(as_uuid=True),
            sa.ForeignKey("embedding_space.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "chunk_id",
            UUID(as_uuid=True),
            sa.ForeignKey("chunk.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
        sa.Column(
            "org_id",
            UUID(as_uuid=True),
            sa.ForeignKey("org.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        # STORAGE PLAIN (migration 0007), like chunk.embedding: read in line, never TOAST.
        sa.Column("embedding", Vector(dim), nullable=False),
        sa.Index(
            f"ix_{name}_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 128},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )


#: dimension → its vector table (spaces other than an org's legacy one).
VECTOR_TABLES: dict[int, sa.Table] = {dim: _vector_table(dim) for dim in VECTOR_DIMS}


#: Tables that carry `org_id` and get row-level security.
TENANT_TABLES: tuple[str, ...] = tuple(
    t.name for t in Base.metadata.sorted_tables if "org_id" in t.columns
)
