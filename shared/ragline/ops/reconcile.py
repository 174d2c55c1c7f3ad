"""Reconcile: no document stays in pending/chunking/embedding for good (issue 16).

A scheduled job (`functions/reconcile`, `ragline reconcile [--dry-run]`) walks every org and
finds active documents whose `updated_at` (bumped by every stage's progress) is older than
RECONCILE_STALL_S — or, while other documents of the org are progressing (a backlog: the
document is waiting its turn, not lost), older than BACKLOG_FACTOR times that. Each gets
its missing work re-enqueued (`pipeline.missing_work`: chunk, the embed batches still
missing a vector, or finalize; the stages are idempotent, so a duplicate of work still
queued is harmless) and `requeues + 1`, which also restarts its stall
clock. A document already re-enqueued RECONCILE_MAX_REQUEUES times fails instead, with
failure_reason `stage_timeout`, its ingest run failed with it.

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
from ragline.core.logs import log
from ragline.db import engine as db
from ragline.db import tenancy
from ragline.db.models import Document
from ragline.ingest import pipeline
from ragline.ops.status import list_orgs

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
class ReconcileReport:
    dry_run: bool
    stall_s: float
    max_requeues: int
    actions: list[Action] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "stall_s": self.stall_s,
            "max_requeues": self.max_requeues,
            "requeued": sum(a.action == "requeued" for a in self.actions),
            "failed": sum(a.action == "failed" for a in self.actions),
            "actions": [a.to_dict() for a in self.actions],
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


def _stalled(session: Session, stall_s: float) -> list[Any]:
    """Active documents of the session's org with no progress for `stall_s`, oldest first;
    rows a stage holds locked right now are skipped (they are making progress)."""
    return list(
        session.execute(
            tenancy.scoped_select(
                session,
                Document,
                Document.status.in_(pipeline.ACTIVE),
                Document.deleted_at.is_(None),
                Document.updated_at
                < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, stall_s),
            )
            .with_only_columns(
                Document.id,
                Document.status,
                Document.requeues,
                sa.extract("epoch", sa.func.now() - Document.updated_at).label("stalled_s"),
            )
            .order_by(Document.updated_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
    )


def reconcile_org(
    org_id: uuid.UUID, *, dry_run: bool, stall_s: float, max_requeues: int
) -> list[Action]:
    """Handle the stalled documents of one org (one transaction; enqueues after commit)."""
    actions: list[Action] = []
    work: list[pipeline.Work] = []
    failed: list[Action] = []
    with tenancy.tenant_session(org_id) as session:
        for row in _stalled(session, stall_s):
            action = Action(org_id, row.id, row.status, round(float(row.stalled_s), 1), "requeued")
            if row.requeues >= max_requeues:
                action.action = "failed"
                if not dry_run:
                    message = (
                        f"{row.status}: no progress for {action.stalled_s:.0f}s after "
                        f"{row.requeues} re-enqueues"
                    )
                    pipeline.fail_document(session, row.id, "stage_timeout", message)
                    failed.append(action)
            else:
                tag = f"rc{row.requeues + 1}-{uuid.uuid4().hex[:8]}"
                todo = pipeline.missing_work(session, row.id, tag)
                action.tasks = [w.name for w in todo]
                if not dry_run:
                    work += todo
                    session.execute(
                        tenancy.scoped_update(session, Document, Document.id == row.id).values(
                            requeues=Document.requeues + 1, updated_at=sa.func.now()
                        )
                    )
            actions.append(action)
    # After commit: a lost enqueue leaves the document stalled, and the next run retries it.
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


def run_reconcile(
    *,
    dry_run: bool = False,
    org: uuid.UUID | None = None,
    stall_s: float | None = None,
    max_requeues: int | None = None,
) -> ReconcileReport:
    """Reconcile every org (or one); defaults from RECONCILE_STALL_S, RECONCILE_MAX_REQUEUES."""
    settings = get_settings()
    report = ReconcileReport(
        dry_run=dry_run,
        stall_s=stall_s if stall_s is not None else settings.reconcile_stall_s,
        max_requeues=max_requeues if max_requeues is not None else settings.reconcile_max_requeues,
    )
    started = time.monotonic()
    with Session(db.get_engine()) as session, session.begin():
        session.execute(sa.text("SET LOCAL ROLE ragline_ops"))
        orgs = list_orgs(session, org)
    for info in orgs:
        try:
            report.actions += reconcile_org(
                info.id,
                dry_run=dry_run,
                stall_s=report.stall_s,
                max_requeues=report.max_requeues,
            )
        except Exception as exc:  # one org's trouble must not stop the others
            report.errors[str(info.id)] = f"{type(exc).__name__}: {exc}"[:500]
    report.seconds = time.monotonic() - started
    return report
