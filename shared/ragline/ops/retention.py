"""Retention: delete (or clear) what ragline no longer needs, org by org, in bounded batches.

Policies, each overridable per org with `org.settings["retention"]` (see docs/operations.md):

- `runs`: runs created more than `runs_days` (30) days ago are deleted. Their children keep
  working: `run.parent_run_id` is `ON DELETE SET NULL`, so a child of a deleted parent stays
  with `parent_run_id = NULL` (an agent's sub-run outlives the record of who started it).
- `tool_logs`: `tool_log` of finished runs created more than `tool_log_hours` (24) hours ago is
  cleared to `[]` (the row is kept).
- `idempotency_keys`: keys past `expires_at`, and `in_progress` claims created more than
  `idempotency_in_progress_hours` (24) hours ago, are deleted.
- `tombstone_chunks`, `tombstones`: documents soft-deleted (`deleted_at`) more than
  `tombstone_hours` (0) hours ago are purged, their remaining chunks first.
- `rate_limit_buckets`: buckets not updated for `rate_limit_days` (1) days are deleted.
- `embedding_spaces`: embedding spaces retired more than `embedding_space_days` (7) days ago
  are purged, their vectors first (issue 17; until then `ragline embeddings rollback` can
  bring one back).
- `query_log`: logged search queries older than `query_log_days` (30) days are deleted (the
  log is also bounded per org by QUERY_LOG_SIZE; issue 17).

Org ids and settings are listed with the owner session (`org` has RLS for the runtime role and
no cross-org reader); every delete runs in `tenant_session(org_id)` as the runtime role, so
row-level security bounds each statement to its org. Each batch is one transaction of at most
`batch_size` rows (`... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`); once
`budget_s` is spent (and something was deleted), no batch starts, and the next run resumes
where this one stopped. Each org visited gets a `retention` run recording its counts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import RaglineError, ValidationError
from ragline.core.logs import log
from ragline.db import engine as db
from ragline.db import tenancy
from ragline.db.models import Chunk, Document, IdempotencyKey, QueryLog, RateLimitBucket, Run
from ragline.ops.status import OrgInfo, list_orgs
from ragline.retrieval import spaces

#: Policy names, in the order they run (runs first: no point clearing logs about to go).
POLICIES: tuple[str, ...] = (
    "runs",
    "tool_logs",
    "idempotency_keys",
    "tombstone_chunks",
    "tombstones",
    "rate_limit_buckets",
    "embedding_spaces",
    "query_log",
)
RUN_KIND = "retention"
_EMPTY_LIST = sa.cast(sa.literal("[]"), JSONB)
_UNFINISHED = ("pending", "running")
#: A SELECT of row keys (one or more columns).
Keys = sa.Select[*tuple[Any, ...]]


class RetentionPolicies(BaseModel):
    """Per-org limits; `org.settings["retention"]` overrides any of them."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    runs_days: int = Field(default=30, ge=1)
    tool_log_hours: int = Field(default=24, ge=1)
    idempotency_in_progress_hours: int = Field(default=24, ge=1)
    tombstone_hours: int = Field(default=0, ge=0)
    rate_limit_days: int = Field(default=1, ge=1)
    embedding_space_days: int = Field(default=7, ge=0)
    query_log_days: int = Field(default=30, ge=1)


class RetentionRequest(BaseModel):
    """Body of the `retention` function (all optional)."""

    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(default=False, strict=True)
    org_id: uuid.UUID | None = None


@dataclass
class OrgRetention:
    """What one execution did in one org."""

    org_id: uuid.UUID
    slug: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(POLICIES, 0))
    complete: bool = False
    error: str | None = None
    run_id: uuid.UUID | None = None
    policies: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "org_id": str(self.org_id),
            "slug": self.slug,
            "counts": dict(self.counts),
            "complete": self.complete,
            "error": self.error,
            "run_id": str(self.run_id) if self.run_id else None,
            "policies": dict(self.policies),
        }


@dataclass
class RetentionReport:
    """One execution: per-org, per-policy counts (rows deleted, or eligible when `dry_run`)."""

    dry_run: bool
    now: datetime
    batch_size: int
    budget_s: float
    orgs: list[OrgRetention] = field(default_factory=list)
    skipped_orgs: list[uuid.UUID] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Every org was reached and every policy finished within the budget."""
        return not self.skipped_orgs and all(o.complete for o in self.orgs)

    @property
    def ok(self) -> bool:
        """No org failed (an incomplete run is still ok: the next one resumes)."""
        return all(o.error is None for o in self.orgs)

    def totals(self) -> dict[str, int]:
        return {p: sum(o.counts[p] for o in self.orgs) for p in POLICIES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "complete": self.complete,
            "ok": self.ok,
            "batch_size": self.batch_size,
            "budget_s": self.budget_s,
            "elapsed_s": round(self.elapsed_s, 3),
            "totals": self.totals(),
            "orgs": [o.to_dict() for o in self.orgs],
            "skipped_orgs": [str(o) for o in self.skipped_orgs],
        }


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these instants are eligible."""

    now: datetime
    runs: datetime
    tool_logs: datetime
    idempotency_in_progress: datetime
    tombstones: datetime
    rate_limit_buckets: datetime
    embedding_spaces: datetime
    query_log: datetime


def policies_for(org_settings: Mapping[str, Any]) -> RetentionPolicies:
    """The org's policies: defaults overridden by `settings["retention"]` (validated)."""
    raw = org_settings.get("retention") or {}
    try:
        return RetentionPolicies.model_validate(raw)
    except pydantic.ValidationError as exc:
        details = [{"loc": list(e["loc"]), "type": e["type"]} for e in exc.errors()]
        raise ValidationError("invalid org.settings.retention", details=details) from exc


def cutoffs(policies: RetentionPolicies, now: datetime) -> Cutoffs:
    return Cutoffs(
        now=now,
        runs=now - timedelta(days=policies.runs_days),
        tool_logs=now - timedelta(hours=policies.tool_log_hours),
        idempotency_in_progress=now - timedelta(hours=policies.idempotency_in_progress_hours),
        tombstones=now - timedelta(hours=policies.tombstone_hours),
        rate_limit_buckets=now - timedelta(days=policies.rate_limit_days),
        embedding_spaces=now - timedelta(days=policies.embedding_space_days),
        query_log=now - timedelta(days=policies.query_log_days),
    )


# --- eligible rows, per policy -----------------------------------------------------------------


def candidates(
    session: Session, policy: str, cut: Cutoffs, keep_run: uuid.UUID | None = None
) -> Keys:
    """The keys of the rows `policy` would delete or clear in the session's org."""
    if policy == "runs":
        where: list[Any] = [Run.created_at < cut.runs]
        if keep_run is not None:
            where.append(Run.id != keep_run)  # never the record of this very execution
        return tenancy.scoped_select(session, Run, *where).with_only_columns(Run.id)
    if policy == "tool_logs":
        return tenancy.scoped_select(
            session,
            Run,
            Run.created_at < cut.tool_logs,
            Run.created_at >= cut.runs,  # older runs are deleted instead
            Run.status.not_in(_UNFINISHED),
            Run.tool_log != _EMPTY_LIST,
        ).with_only_columns(Run.id)
    if policy == "idempotency_keys":
        return tenancy.scoped_select(
            session,
            IdempotencyKey,
            sa.or_(
                IdempotencyKey.expires_at < cut.now,
                sa.and_(
                    IdempotencyKey.status == "in_progress",
                    IdempotencyKey.created_at < cut.idempotency_in_progress,
                ),
            ),
        ).with_only_columns(IdempotencyKey.id)
    if policy == "tombstone_chunks":
        return tenancy.scoped_select(
            session, Chunk, Chunk.document_id.in_(_tombstones(session, cut))
        ).with_only_columns(Chunk.id)
    if policy == "tombstones":
        return _tombstones(session, cut)
    if policy == "rate_limit_buckets":
        return tenancy.scoped_select(
            session, RateLimitBucket, RateLimitBucket.updated_at < cut.rate_limit_buckets
        ).with_only_columns(
            RateLimitBucket.org_id, RateLimitBucket.caller_id, RateLimitBucket.bucket
        )
    if policy == "query_log":
        return tenancy.scoped_select(
            session, QueryLog, QueryLog.created_at < cut.query_log
        ).with_only_columns(QueryLog.org_id, QueryLog.slot)
    raise ValueError(f"unknown retention policy {policy!r}")


def _tombstones(session: Session, cut: Cutoffs) -> Keys:
    return tenancy.scoped_select(
        session,
        Document,
        Document.deleted_at.is_not(None),
        Document.deleted_at < cut.tombstones,
    ).with_only_columns(Document.id)


def count_eligible(
    session: Session, policy: str, cut: Cutoffs, keep_run: uuid.UUID | None = None
) -> int:
    """How many rows `policy` would touch now (the dry run)."""
    if policy == "embedding_spaces":
        return spaces.purgeable(session, cut.embedding_spaces)
    sub = candidates(session, policy, cut, keep_run).subquery()
    return int(session.scalar(sa.select(sa.func.count()).select_from(sub)) or 0)


def apply_batch(
    session: Session, policy: str, cut: Cutoffs, limit: int, keep_run: uuid.UUID | None = None
) -> int:
    """Delete (or clear) at most `limit` eligible rows, skipping rows other transactions hold.

    Returns the number of rows touched; fewer than `limit` means the policy is done for now."""
    if policy == "embedding_spaces":  # vectors in several tables, then the space rows
        return spaces.purge_retired(session, cut.embedding_spaces, limit=limit)
    # MATERIALIZED: the batch is chosen once. Inlined into `IN (...)`, the planner may rescan
    # the locking subquery per row, and each rescan skips the rows this very statement has
    # already deleted and locks the next ones: the LIMIT would bound nothing.
    batch = (
        candidates(session, policy, cut, keep_run)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("retention_batch")
        .prefix_with("MATERIALIZED")
    )
    keys = sa.select(*batch.c)
    stmt: sa.Executable
    if policy in ("runs", "tool_logs"):
        if policy == "runs":
            stmt = tenancy.scoped_delete(session, Run, Run.id.in_(keys))
        else:
            stmt = tenancy.scoped_update(session, Run, Run.id.in_(keys)).values(
                tool_log=_EMPTY_LIST, updated_at=sa.func.now()
            )
    elif policy == "idempotency_keys":
        stmt = tenancy.scoped_delete(session, IdempotencyKey, IdempotencyKey.id.in_(keys))
    elif policy == "tombstone_chunks":
        stmt = tenancy.scoped_delete(session, Chunk, Chunk.id.in_(keys))
    elif policy == "tombstones":
        stmt = tenancy.scoped_delete(session, Document, Document.id.in_(keys))
    elif policy == "query_log":
        slots = sa.tuple_(QueryLog.org_id, QueryLog.slot)
        stmt = tenancy.scoped_delete(session, QueryLog, slots.in_(keys))
    else:
        columns = sa.tuple_(
            RateLimitBucket.org_id, RateLimitBucket.caller_id, RateLimitBucket.bucket
        )
        stmt = tenancy.scoped_delete(session, RateLimitBucket, columns.in_(keys))
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


# --- the job -----------------------------------------------------------------------------------


class _Budget:
    """Wall-clock budget, enforced only once the execution has touched a row: however small
    the budget, every run makes progress (empty batches are cheap index scans)."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        self.progressed = False

    def spend(self, touched: int) -> None:
        self.progressed = self.progressed or touched > 0

    def exhausted(self) -> bool:
        return self.progressed and time.monotonic() >= self._deadline


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, RaglineError):
        details = f" {json.dumps(exc.details, default=str)}" if exc.details else ""
        return f"{exc.code}: {exc.message}{details}"[:500]
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig  # the driver's message, not the SQL statement and its parameters
    return f"{type(exc).__name__}: {exc}"[:500]


def _start_run(org_id: uuid.UUID, inputs: dict[str, Any]) -> uuid.UUID:
    with tenancy.tenant_session(org_id) as session:
        run = tenancy.add(
            session, Run(kind=RUN_KIND, status="running", input=inputs, started_at=sa.func.now())
        )
        session.flush()
        return run.id


def _finish_run(result: OrgRetention, state: dict[str, Any]) -> None:
    assert result.run_id is not None
    with tenancy.tenant_session(result.org_id) as session:
        session.execute(
            tenancy.scoped_update(session, Run, Run.id == result.run_id).values(
                status="failed" if result.error else "succeeded",
                error=result.error,
                state=state,
                finished_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
        )


def _drain(
    result: OrgRetention, policy: str, cut: Cutoffs, batch_size: int, budget: _Budget
) -> bool:
    """Run batches of one policy until it is done (True) or the budget is spent (False)."""
    while not budget.exhausted():
        with tenancy.tenant_session(result.org_id) as session:
            touched = apply_batch(session, policy, cut, batch_size, result.run_id)
        budget.spend(touched)
        result.counts[policy] += touched
        if touched < batch_size:
            return True
    return False


def _count_all(result: OrgRetention, cut: Cutoffs, budget: _Budget) -> bool:
    for policy in POLICIES:
        if budget.exhausted():
            return False
        with tenancy.tenant_session(result.org_id) as session:
            result.counts[policy] = count_eligible(session, policy, cut)
        budget.spend(1)  # a count is the dry run's unit of work
    return True


def _retain_org(
    info: OrgInfo,
    *,
    now: datetime,
    dry_run: bool,
    batch_size: int,
    budget: _Budget,
) -> OrgRetention:
    """Apply every policy to one org and record the execution as a `retention` run there
    (not for a dry run, which writes nothing). Failures are recorded, not raised."""
    started = time.monotonic()
    result = OrgRetention(info.id, info.slug)
    try:
        policies = policies_for(info.settings)
        result.policies = policies.model_dump()
        cut = cutoffs(policies, now)
        if dry_run:
            result.complete = _count_all(result, cut, budget)
            return result
        inputs = {"now": now.isoformat(), "batch_size": batch_size, "policies": result.policies}
        result.run_id = _start_run(info.id, inputs)
        result.complete = all(_drain(result, p, cut, batch_size, budget) for p in POLICIES)
    except Exception as exc:  # one org's failure must not stop the others
        result.error = _error_text(exc)
        log(
            "ERROR",
            "retention failed",
            event="retention_failed",
            org_id=info.id,
            error=result.error,
        )
    finally:
        if not dry_run:
            _record(result, started)
    return result


def _record(result: OrgRetention, started: float) -> None:
    state = {
        "counts": dict(result.counts),
        "complete": result.complete,
        "policies": result.policies,
        "elapsed_s": round(time.monotonic() - started, 3),
    }
    try:
        if result.run_id is None:
            result.run_id = _start_run(result.org_id, {})
        _finish_run(result, state)
    except Exception as exc:  # the database may be what failed: log, keep the report
        log(
            "ERROR",
            "retention run not recorded",
            event="retention_unrecorded",
            org_id=result.org_id,
            error=_error_text(exc),
        )


def run_retention(
    *,
    dry_run: bool = False,
    org: uuid.UUID | None = None,
    batch_size: int | None = None,
    budget_s: float | None = None,
    now: datetime | None = None,
    progress: Callable[[OrgRetention], None] | None = None,
) -> RetentionReport:
    """Run every policy in every org (or one), owning its transactions: one per batch.

    `batch_size` and `budget_s` default to RETENTION_BATCH_SIZE and RETENTION_BUDGET_S;
    `progress` is called after each org."""
    settings = get_settings()
    size = batch_size if batch_size is not None else settings.retention_batch_size
    seconds = budget_s if budget_s is not None else settings.retention_budget_s
    if size < 1 or seconds < 0:
        raise ValidationError("batch_size must be >= 1 and budget_s >= 0")
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValidationError("now must be timezone-aware")
    started = time.monotonic()
    budget = _Budget(seconds)
    with Session(db.get_engine()) as session, session.begin():
        # Only the retention job's database user holds ragline_ops (the app role + the org list).
        session.execute(sa.text("SET LOCAL ROLE ragline_ops"))
        orgs = list_orgs(session, org)
    report = RetentionReport(dry_run=dry_run, now=moment, batch_size=size, budget_s=seconds)
    for info in orgs:
        if budget.exhausted():
            report.skipped_orgs.append(info.id)
            continue
        result = _retain_org(info, now=moment, dry_run=dry_run, batch_size=size, budget=budget)
        report.orgs.append(result)
        if progress is not None:
            progress(result)
    report.elapsed_s = time.monotonic() - started
    log(
        "INFO" if report.ok else "ERROR",
        "retention finished",
        event="retention",
        dry_run=dry_run,
        complete=report.complete,
        orgs=len(report.orgs),
        skipped_orgs=len(report.skipped_orgs),
        totals=report.totals(),
        elapsed_s=round(report.elapsed_s, 3),
    )
    return report


def format_org_line(result: OrgRetention, *, dry_run: bool = False) -> str:
    """One progress line: `acme  runs=12 tool_logs=0 … complete`."""
    counts = " ".join(f"{p}={result.counts[p]}" for p in POLICIES)
    state = "FAILED: " + result.error if result.error else ("complete" if result.complete else "")
    verb = "would touch" if dry_run else "touched"
    return f"{result.slug:<20} {verb} {counts} {state or 'incomplete (budget)'}"


def format_report(report: RetentionReport) -> str:
    """A short summary of a report (the CLI prints it after the progress lines)."""
    totals = " ".join(f"{p}={n}" for p, n in report.totals().items())
    lines = [
        f"{'dry run: ' if report.dry_run else ''}{len(report.orgs)} org(s) in "
        f"{report.elapsed_s:.1f}s; totals {totals}",
    ]
    if report.skipped_orgs:
        lines.append(f"{len(report.skipped_orgs)} org(s) not reached: budget spent")
    if not report.complete:
        lines.append("incomplete: the next run resumes")
    failed = [o.slug for o in report.orgs if o.error]
    if failed:
        lines.append(f"failed: {', '.join(failed)}")
    return "\n".join(lines)
