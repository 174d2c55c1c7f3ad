"""Reconcile: no document stays in pending/chunking/embedding for good (issue 16).

A scheduled job (`functions/reconcile`, `ragline reconcile [--dry-run]`) walks every org.
`document.updated_at` is the document's last real progress (chunks written, each embed
batch, the ready transition); reconcile never moves it (it records `requeued_at`).

- While nothing progresses anywhere in the pipeline (no document of any org moved for
  RECONCILE_STALL_S), work has been lost or a dependency is down: an active document idle
  for RECONCILE_STALL_S gets its missing work re-enqueued (`pipeline.missing_work`: chunk,
  the embed batches still missing a vector, or finalize; the stages are idempotent, so a
  duplicate of work still queued is harmless), at most once per RECONCILE_STALL_S and
  RECONCILE_MAX_REQUEUES times; then it fails with `failure_reason = stage_timeout`.
- While the pipeline moves, an idle document is most likely waiting behind a backlog: it is
  re-enqueued only after BACKLOG_FACTOR times RECONCILE_STALL_S (its tasks may have been lost
  while others' were not), and fails only after RECONCILE_FAIL_AFTER_S without progress.

A shadow embedding build (issue 17) is watched the same way: when the vectors it lacks have
not changed for the same idle bound, its missing batches (at most BATCH) are re-enqueued, at
most RECONCILE_MAX_REQUEUES times; then the stall is recorded on the space (`ragline
embeddings status` shows it, cutover refuses) for `reembed --resume`.

Like retention, the org list needs the `ragline_ops` role; each org is then handled in its
own tenant transaction, so row-level security applies.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import NotFoundError
from ragline.core.logs import log
from ragline.db import engine as db
from ragline.db import tenancy
from ragline.db.models import Document
from ragline.ingest import pipeline, reembed
from ragline.ops.status import list_orgs
from ragline.retrieval import spaces

#: Stalled documents handled per org and run (the next run takes the rest).
BATCH = 500


class ReconcileRequest(BaseModel):
    """Body of the scheduled call (all optional)."""

    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False
    org_id: uuid.UUID | None = None


@dataclass
class Action:
    org_id: uuid.UUID
    document_id: uuid.UUID
    status: str
    stalled_s: float
    action: str  # "requeued" | "failed"
    tasks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["org_id"] = str(self.org_id)
        out["document_id"] = str(self.document_id)
        return out


@dataclass
class BuildAction:
    """A stalled shadow build: re-enqueued (`tasks` batches) or reported as stalled."""

    org_id: uuid.UUID
    space_id: uuid.UUID
    missing: int
    stalled_s: float
    action: str  # "requeued" | "stalled"
    tasks: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["org_id"], out["space_id"] = str(self.org_id), str(self.space_id)
        return out


@dataclass
class ReconcileReport:
    dry_run: bool
    stall_s: float
    max_requeues: int
    actions: list[Action] = field(default_factory=list)
    builds: list[BuildAction] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    pipeline_moving: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "stall_s": self.stall_s,
            "max_requeues": self.max_requeues,
            "pipeline_moving": self.pipeline_moving,
            "requeued": sum(a.action == "requeued" for a in self.actions),
            "failed": sum(a.action == "failed" for a in self.actions),
            "actions": [a.to_dict() for a in self.actions],
            "builds": [b.to_dict() for b in self.builds],
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


#: While the pipeline moves, a document's idle time must exceed this many stall bounds before
#: its work is re-enqueued: it is probably queued behind others, not lost.
BACKLOG_FACTOR = 3


def _ago(seconds: float) -> Any:
    return sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def org_progressed(org_id: uuid.UUID, within_s: float) -> bool:
    """Whether any document of the org progressed within `within_s` (an index lookup)."""
    with tenancy.tenant_session(org_id) as session:
        return bool(
            session.scalar(
                sa.select(
                    sa.exists().where(
                        Document.org_id == org_id, Document.updated_at >= _ago(within_s)
                    )
                )
            )
        )


@dataclass(frozen=True)
class Bounds:
    stall_s: float
    max_requeues: int
    fail_after_s: float
    pipeline_moving: bool

    @property
    def idle_s(self) -> float:
        """Idle time before a document's work is re-enqueued."""
        return self.stall_s * (BACKLOG_FACTOR if self.pipeline_moving else 1)


def _candidates(session: Session, bounds: Bounds) -> list[Any]:
    """Active documents of the session's org idle past the bound and not re-enqueued within
    it, oldest progress first; rows a stage holds locked right now are skipped."""
    never_or_long_ago = sa.or_(
        Document.requeued_at.is_(None), Document.requeued_at < _ago(bounds.idle_s)
    )
    return list(
        session.execute(
            tenancy.scoped_select(
                session,
                Document,
                Document.status.in_(pipeline.ACTIVE),
                Document.deleted_at.is_(None),
                Document.updated_at < _ago(bounds.idle_s),
                never_or_long_ago,
            )
            .with_only_columns(
                Document.id,
                Document.status,
                Document.requeues,
                sa.extract("epoch", sa.func.now() - Document.updated_at).label("idle_s"),
            )
            .order_by(Document.updated_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
    )


def reconcile_org(org_id: uuid.UUID, *, dry_run: bool, bounds: Bounds) -> list[Action]:
    """Handle the stalled documents of one org (one transaction; enqueues after commit)."""
    actions: list[Action] = []
    work: list[pipeline.Work] = []
    with tenancy.tenant_session(org_id) as session:
        for row in _candidates(session, bounds):
            idle = round(float(row.idle_s), 1)
            action = Action(org_id, row.id, row.status, idle, "requeued")
            if row.requeues >= bounds.max_requeues:
                if bounds.pipeline_moving and idle < bounds.fail_after_s:
                    continue  # waiting its turn; its re-enqueued work is still queued
                action.action = "failed"
                if not dry_run:
                    message = (
                        f"{row.status}: no progress for {idle:.0f}s after "
                        f"{row.requeues} re-enqueues"
                    )
                    pipeline.fail_document(session, row.id, "stage_timeout", message)
            else:
                tag = f"rc{row.requeues + 1}-{uuid.uuid4().hex[:8]}"
                todo = pipeline.missing_work(session, row.id, tag)
                action.tasks = [w.name for w in todo]
                if not dry_run:
                    work += todo
                    session.execute(
                        tenancy.scoped_update(session, Document, Document.id == row.id).values(
                            requeues=Document.requeues + 1, requeued_at=sa.func.now()
                        )
                    )
            actions.append(action)
    # After commit: a lost enqueue leaves the document idle, and a later run retries it.
    pipeline.enqueue_work(work)
    for action in actions:
        log(
            "ERROR" if action.action == "failed" else "WARNING",
            f"reconcile: document {action.action}",
            event="document_failed" if action.action == "failed" else "document_requeued",
            org_id=action.org_id,
            document_id=action.document_id,
            status=action.status,
            stalled_s=action.stalled_s,
            reason="stage_timeout" if action.action == "failed" else None,
            dry_run=dry_run,
        )
    return actions


def reconcile_build(org_id: uuid.UUID, *, dry_run: bool, bounds: Bounds) -> BuildAction | None:
    """Restart the org's shadow build if it stalled (one transaction; enqueues after commit)."""
    with tenancy.tenant_session(org_id) as session:
        stall = spaces.watch_build(
            session,
            idle_s=bounds.idle_s,
            max_requeues=bounds.max_requeues,
            batch_size=get_settings().embed_batch_chunks,
            limit=BATCH,
            dry_run=dry_run,
        )
    if stall is None:
        return None
    action = BuildAction(
        org_id,
        stall.space.id,
        stall.missing,
        round(stall.idle_s, 1),
        "requeued" if stall.work else "stalled",
        len(stall.work),
    )
    if not dry_run and stall.work:
        reembed.enqueue(org_id, stall.space.id, stall.work)
    log(
        "ERROR" if action.action == "stalled" else "WARNING",
        f"reconcile: re-embed build {action.action}",
        event="reembed_build_" + action.action,
        org_id=org_id,
        space_id=stall.space.id,
        missing=stall.missing,
        stalled_s=action.stalled_s,
        tasks=action.tasks,
        dry_run=dry_run,
    )
    return action


def run_reconcile(
    *,
    dry_run: bool = False,
    org: uuid.UUID | None = None,
    stall_s: float | None = None,
    max_requeues: int | None = None,
    fail_after_s: float | None = None,
) -> ReconcileReport:
    """Reconcile every org (or one); defaults from RECONCILE_STALL_S, RECONCILE_MAX_REQUEUES
    and RECONCILE_FAIL_AFTER_S. Whether the pipeline moves is judged over every org."""
    settings = get_settings()
    report = ReconcileReport(
        dry_run=dry_run,
        stall_s=stall_s if stall_s is not None else settings.reconcile_stall_s,
        max_requeues=max_requeues if max_requeues is not None else settings.reconcile_max_requeues,
    )
    started = time.monotonic()
    with Session(db.get_engine()) as session, session.begin():
        session.execute(sa.text("SET LOCAL ROLE ragline_ops"))
        every_org = list_orgs(session)
    orgs = every_org if org is None else [o for o in every_org if o.id == org]
    if org is not None and not orgs:
        raise NotFoundError(f"no org {org}")
    moving = False
    for info in every_org:
        try:
            if org_progressed(info.id, report.stall_s):
                moving = True
                break
        except Exception as exc:
            report.errors[str(info.id)] = f"{type(exc).__name__}: {exc}"[:500]
    report.pipeline_moving = moving
    bounds = Bounds(
        stall_s=report.stall_s,
        max_requeues=report.max_requeues,
        fail_after_s=fail_after_s if fail_after_s is not None else settings.reconcile_fail_after_s,
        pipeline_moving=moving,
    )
    for info in orgs:
        try:
            report.actions += reconcile_org(info.id, dry_run=dry_run, bounds=bounds)
            build = reconcile_build(info.id, dry_run=dry_run, bounds=bounds)
            if build is not None:
                report.builds.append(build)
        except Exception as exc:  # one org's trouble must not stop the others
            report.errors[str(info.id)] = f"{type(exc).__name__}: {exc}"[:500]
    report.seconds = time.monotonic() - started
    return report
