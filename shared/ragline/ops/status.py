"""The operator view (`ragline status`): per org, documents by status, chunks, runs by kind and
status, the latest failed documents and the oldest document still in the pipeline.

It reads across orgs, so it takes an owner session (a role that bypasses row-level security:
the owner of an embedded or local database, a superuser, or a role with BYPASSRLS); a session
that RLS would blind to every org raises instead of reporting nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ragline.core.errors import ConfigurationError, NotFoundError
from ragline.db.models import (
    IN_PIPELINE,
    LEGACY_STORAGE,
    VECTOR_TABLES,
    Chunk,
    Document,
    DocumentStatus,
    EmbeddingSpace,
    Run,
)

DOCUMENT_STATUSES: tuple[str, ...] = tuple(DocumentStatus)


@dataclass(frozen=True)
class OrgInfo:
    id: uuid.UUID
    slug: str
    name: str
    settings: dict[str, Any]


def list_orgs(session: Session, org: uuid.UUID | None = None) -> list[OrgInfo]:
    """Every org (or just `org`), oldest first, with its settings.

    Reads through the definer function `ragline_orgs()`, executable by `ragline_admin`
    (owner/admin sessions) and `ragline_ops` (the retention job), never by `ragline_app`."""
    try:
        rows = session.execute(sa.text("SELECT id, slug, name, settings FROM ragline_orgs()")).all()
    except sa.exc.ProgrammingError as exc:
        raise ConfigurationError(
            "listing orgs needs the ragline_admin or ragline_ops role (see docs/operations.md)"
        ) from exc
    if org is not None:
        rows = [r for r in rows if r.id == org]
        if not rows:
            raise NotFoundError(f"no org {org}")
    return [OrgInfo(r.id, r.slug, r.name, dict(r.settings or {})) for r in rows]


@dataclass(frozen=True)
class FailedDocument:
    id: uuid.UUID
    title: str
    error: str | None
    updated_at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class PendingDocument:
    id: uuid.UUID
    title: str
    status: str
    created_at: datetime
    age_s: float


@dataclass(frozen=True)
class SpaceStatus:
    """One embedding space of an org (issue 17): its vectors against the org's chunks."""

    state: str
    model: str
    dimension: int
    vectors: int
    failed_batches: int


@dataclass
class OrgStatus:
    org_id: uuid.UUID
    slug: str
    documents: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    runs: dict[str, dict[str, int]] = field(default_factory=dict)
    failed: list[FailedDocument] = field(default_factory=list)
    oldest_pending: PendingDocument | None = None
    spaces: list[SpaceStatus] = field(default_factory=list)

    @property
    def total_documents(self) -> int:
        return sum(self.documents.values())

    def runs_with_status(self, status: str) -> int:
        return sum(by_status.get(status, 0) for by_status in self.runs.values())


@dataclass
class StatusReport:
    generated_at: datetime
    orgs: list[OrgStatus]


def collect_status(
    session: Session, *, org: uuid.UUID | None = None, failed_limit: int = 5
) -> StatusReport:
    """Gather the operator view from an owner session (read only, never commits)."""
    infos = list_orgs(session, org)
    ids = [i.id for i in infos]
    by_org = {i.id: OrgStatus(i.id, i.slug) for i in infos}
    generated_at = session.execute(sa.select(sa.func.now())).scalar_one()
    if not ids:
        return StatusReport(generated_at, [])

    for org_id, status, n in session.execute(
        sa.select(Document.org_id, Document.status, sa.func.count())
        .where(Document.org_id.in_(ids))
        .group_by(Document.org_id, Document.status)
    ):
        by_org[org_id].documents[status] = int(n)

    for org_id, n in session.execute(
        sa.select(Chunk.org_id, sa.func.count()).where(Chunk.org_id.in_(ids)).group_by(Chunk.org_id)
    ):
        by_org[org_id].chunks = int(n)

    runs: dict[uuid.UUID, dict[str, dict[str, int]]] = defaultdict(dict)
    for org_id, kind, status, n in session.execute(
        sa.select(Run.org_id, Run.kind, Run.status, sa.func.count())
        .where(Run.org_id.in_(ids))
        .group_by(Run.org_id, Run.kind, Run.status)
        .order_by(Run.org_id, Run.kind, Run.status)
    ):
        runs[org_id].setdefault(kind, {})[status] = int(n)
    for org_id, kinds in runs.items():
        by_org[org_id].runs = kinds

    ranked = (
        sa.select(
            Document.org_id,
            Document.id,
            Document.title,
            Document.error,
            Document.failure_reason,
            Document.updated_at,
            sa.func.row_number()
            .over(
                partition_by=Document.org_id,
                order_by=(Document.updated_at.desc(), Document.id.desc()),
            )
            .label("rank"),
        )
        .where(Document.org_id.in_(ids), Document.status == "failed", Document.deleted_at.is_(None))
        .subquery()
    )
    for row in session.execute(
        sa.select(ranked)
        .where(ranked.c.rank <= failed_limit)
        .order_by(ranked.c.org_id, ranked.c.rank)
    ):
        by_org[row.org_id].failed.append(
            FailedDocument(row.id, row.title, row.error, row.updated_at, row.failure_reason)
        )

    age = sa.extract("epoch", sa.func.now() - Document.created_at)
    for row in session.execute(
        sa.select(
            Document.org_id,
            Document.id,
            Document.title,
            Document.status,
            Document.created_at,
            age.label("age_s"),
        )
        .distinct(Document.org_id)
        .where(
            Document.org_id.in_(ids),
            Document.status.in_(IN_PIPELINE),
            Document.deleted_at.is_(None),
        )
        .order_by(Document.org_id, Document.created_at, Document.id)
    ):
        by_org[row.org_id].oldest_pending = PendingDocument(
            row.id, row.title, row.status, row.created_at, float(row.age_s)
        )

    for space in session.scalars(
        sa.select(EmbeddingSpace)
        .where(EmbeddingSpace.org_id.in_(ids))
        .order_by(EmbeddingSpace.org_id, EmbeddingSpace.created_at)
    ):
        if space.storage == LEGACY_STORAGE:
            stored = sa.select(sa.func.count()).where(
                Chunk.org_id == space.org_id, Chunk.embedding.is_not(None)
            )
        else:
            table = VECTOR_TABLES[space.dimension]
            stored = (
                sa.select(sa.func.count()).select_from(table).where(table.c.space_id == space.id)
            )
        by_org[space.org_id].spaces.append(
            SpaceStatus(
                space.state,
                f"{space.provider}/{space.model}",
                space.dimension,
                int(session.scalar(stored) or 0),
                space.failed_batches,
            )
        )

    return StatusReport(generated_at, [by_org[i] for i in ids])


# --- text --------------------------------------------------------------------------------------


def format_age(seconds: float) -> str:
    """`45s`, `12m`, `3h 05m`, `2d 04h`."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns left-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _short(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_status(report: StatusReport) -> str:
    """The report as text tables (what `ragline status` prints)."""
    if not report.orgs:
        return "no orgs"
    headers = ["ORG", "DOCS", *(s.upper() for s in DOCUMENT_STATUSES), "CHUNKS", "RUNS"]
    headers += ["RUNS FAILED", "OLDEST PENDING"]
    rows = []
    for o in report.orgs:
        oldest = o.oldest_pending
        rows.append(
            [
                o.slug,
                str(o.total_documents),
                *(str(o.documents.get(s, 0)) for s in DOCUMENT_STATUSES),
                str(o.chunks),
                str(sum(sum(v.values()) for v in o.runs.values())),
                str(o.runs_with_status("failed")),
                f"{format_age(oldest.age_s)} ({oldest.status})" if oldest else "-",
            ]
        )
    out = [f"ragline status at {report.generated_at:%Y-%m-%d %H:%M:%S %Z}", ""]
    out += _table(headers, rows)

    run_rows = [
        [o.slug, kind, ", ".join(f"{s} {n}" for s, n in sorted(by_status.items()))]
        for o in report.orgs
        for kind, by_status in sorted(o.runs.items())
    ]
    if run_rows:
        out += ["", *_table(["ORG", "RUN KIND", "BY STATUS"], run_rows, left=3)]

    pending_rows = [
        [o.slug, str(p.id), p.status, format_age(p.age_s), _short(p.title, 40)]
        for o in report.orgs
        if (p := o.oldest_pending) is not None
    ]
    if pending_rows:
        headers = ["ORG", "OLDEST PENDING DOCUMENT", "STATUS", "AGE", "TITLE"]
        out += ["", *_table(headers, pending_rows, left=5)]

    space_rows = [
        [
            o.slug,
            s.state,
            s.model,
            str(s.dimension),
            f"{s.vectors}/{o.chunks}",
            str(s.failed_batches),
        ]
        for o in report.orgs
        for s in o.spaces
    ]
    if space_rows:
        headers = ["ORG", "EMBEDDING SPACE", "MODEL", "DIM", "VECTORS", "FAILED BATCHES"]
        out += ["", *_table(headers, space_rows, left=3)]

    failed_rows = [
        [
            o.slug,
            str(f.id),
            f"{f.updated_at:%Y-%m-%d %H:%M}",
            f.reason or "-",
            _short(f.error, 60),
        ]
        for o in report.orgs
        for f in o.failed
    ]
    if failed_rows:
        headers = ["ORG", "LATEST FAILED DOCUMENTS", "UPDATED", "REASON", "LAST ERROR"]
        out += ["", *_table(headers, failed_rows, left=5)]
    return "\n".join(out)
