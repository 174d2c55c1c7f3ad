"""Runs: what agents (and ragline itself) record about one execution. Create, patch
atomically, read, list, and compare two branches of a what-if. Tenant sessions only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from ragline.core.errors import ConflictError, NotFoundError
from ragline.db import pagination, tenancy
from ragline.db.models import Run, RunStatus

Status = RunStatus
KIND_PATTERN = r"^[a-z0-9_-]{1,64}$"
#: Kinds ragline records itself; an agent cannot create runs that pass for them.
SYSTEM_KINDS = frozenset({"answer", "ingest", "retention"})
TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
#: New status -> statuses a run may have to take it (None: no status change). Terminal runs
#: are final: no transition, and no state or tool_log change either.
ALLOWED_FROM: dict[str | None, tuple[str, ...]] = {
    None: (RunStatus.PENDING, RunStatus.RUNNING),
    RunStatus.PENDING: (RunStatus.PENDING,),
    RunStatus.RUNNING: (RunStatus.PENDING, RunStatus.RUNNING),
    RunStatus.SUCCEEDED: (RunStatus.PENDING, RunStatus.RUNNING),
    RunStatus.FAILED: (RunStatus.PENDING, RunStatus.RUNNING),
    RunStatus.CANCELLED: (RunStatus.PENDING, RunStatus.RUNNING),
}
MAX_LOG_ENTRIES = 100


class NewRun(BaseModel):
    """The body of `POST /runs`."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern=KIND_PATTERN)
    input: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict)
    status: Literal[RunStatus.PENDING, RunStatus.RUNNING] = RunStatus.PENDING
    parent_run_id: uuid.UUID | None = None
    scenario_label: str | None = Field(default=None, max_length=200)

    @field_validator("kind")
    @classmethod
    def _not_system(cls, v: str) -> str:
        if v in SYSTEM_KINDS:
            raise ValueError(f"kind {v!r} is recorded by ragline itself")
        return v


class RunPatch(BaseModel):
    """The body of `PATCH /runs/<id>`: state is merged shallowly, tool_log entries appended."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    state: dict[str, Any] | None = None
    tool_log: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_LOG_ENTRIES)
    error: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _something(self) -> RunPatch:
        if (self.status, self.state, self.tool_log, self.error) == (None, None, None, None):
            raise ValueError("nothing to change: give status, state, tool_log or error")
        return self


class RunQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parent_run_id: uuid.UUID | None = None
    kind: str | None = Field(default=None, pattern=KIND_PATTERN)
    status: Status | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=pagination.MAX_CURSOR_LENGTH)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def describe(run: Run, *, detail: bool = True) -> dict[str, Any]:
    """The API shape of a run; lists leave out the (unbounded) input, state and tool_log."""
    out: dict[str, Any] = {
        "id": str(run.id),
        "kind": run.kind,
        "status": run.status,
        "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
        "scenario_label": run.scenario_label,
        "document_id": str(run.document_id) if run.document_id else None,
        "user_id": str(run.user_id) if run.user_id else None,
        "error": run.error,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "updated_at": _iso(run.updated_at),
    }
    if detail:
        out.update(input=run.input, state=run.state, tool_log=run.tool_log)
    return out


def get(session: Session, run_id: uuid.UUID, *, owner: uuid.UUID | None = None) -> Run:
    """The run, if it is `owner`'s (given: an end user who is not an admin; issue 18)."""
    run = tenancy.get(session, Run, run_id)
    if run is None or (owner is not None and run.user_id != owner):
        raise NotFoundError(f"no run {run_id}")
    return run


def create(session: Session, new: NewRun) -> Run:
    """Record a run an agent is starting; its parent must be a run of the same org."""
    if new.parent_run_id is not None:
        get(session, new.parent_run_id)
    run = tenancy.add(
        session,
        Run(
            kind=new.kind,
            status=new.status,
            input=new.input,
            state=new.state,
            parent_run_id=new.parent_run_id,
            scenario_label=new.scenario_label,
            user_id=tenancy.current_user(session),
            started_at=sa.func.now() if new.status == RunStatus.RUNNING else None,
        ),
    )
    session.flush()
    session.refresh(run)
    return run


def patch(
    session: Session, run_id: uuid.UUID, change: RunPatch, *, owner: uuid.UUID | None = None
) -> Run:
    """Apply `change` in ONE UPDATE (`state || patch`, `tool_log || entries`, status checked
    in the WHERE clause), so concurrent patches never lose each other's writes."""
    values: dict[str, Any] = {"updated_at": sa.func.now()}
    if change.state is not None:
        values["state"] = Run.state.op("||", return_type=JSONB)(
            sa.bindparam("state_patch", change.state, type_=JSONB)
        )
    if change.tool_log is not None:
        values["tool_log"] = Run.tool_log.op("||", return_type=JSONB)(
            sa.bindparam("tool_log_entries", change.tool_log, type_=JSONB)
        )
    if change.error is not None:
        values["error"] = change.error
    if change.status is not None:
        values["status"] = change.status
        if change.status != RunStatus.PENDING:
            values["started_at"] = sa.func.coalesce(Run.started_at, sa.func.now())
        if change.status in TERMINAL:
            values["finished_at"] = sa.func.coalesce(Run.finished_at, sa.func.now())
    get(session, run_id, owner=owner)
    stmt = (
        tenancy.scoped_update(
            session, Run, Run.id == run_id, Run.status.in_(ALLOWED_FROM[change.status])
        )
        .values(**values)
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).scalar_one_or_none() is None:
        current = get(session, run_id)
        message = (
            f"run {run_id} is {current.status}: it cannot become {change.status}"
            if current.status not in TERMINAL
            else f"run {run_id} is {current.status}: a finished run cannot change"
        )
        raise ConflictError(message, details={"status": current.status})
    return session.scalars(
        tenancy.scoped_select(session, Run, Run.id == run_id).execution_options(
            populate_existing=True
        )
    ).one()


def list_runs(
    session: Session, q: RunQuery, *, owner: uuid.UUID | None = None
) -> tuple[list[Run], str | None]:
    """Newest first, keyset-paginated by (created_at, id); only `owner`'s runs if given."""
    where: list[Any] = [] if owner is None else [Run.user_id == owner]
    if q.parent_run_id is not None:
        where.append(Run.parent_run_id == q.parent_run_id)
    if q.kind:
        where.append(Run.kind == q.kind)
    if q.status:
        where.append(Run.status == q.status)
    return pagination.newest_first(session, Run, where, q.cursor, q.limit)


def _params(run: Run) -> dict[str, Any]:
    """The knobs of a run: `state.params` (answer runs record effective values), else
    `input.params`."""
    for source in (run.state, run.input):
        params = source.get("params") if isinstance(source, dict) else None
        if isinstance(params, dict):
            return params
    return {}


def _retrieved(run: Run) -> list[str]:
    """Chunk ids in rank order from `state.retrieved` (ids, or objects with `chunk_id`)."""
    items = run.state.get("retrieved") if isinstance(run.state, dict) else None
    out: list[str] = []
    for item in items if isinstance(items, list) else []:
        value = item.get("chunk_id") if isinstance(item, dict) else item
        if isinstance(value, str) and value not in out:
            out.append(value)
    return out


def compare(
    session: Session, a_id: uuid.UUID, b_id: uuid.UUID, *, owner: uuid.UUID | None = None
) -> dict[str, Any]:
    """What differs between two runs of the org: params, retrieved chunks, answer, status."""
    a, b = get(session, a_id, owner=owner), get(session, b_id, owner=owner)
    pa, pb = _params(a), _params(b)
    ra, rb = _retrieved(a), _retrieved(b)
    rank_a = {c: i for i, c in enumerate(ra, start=1)}
    rank_b = {c: i for i, c in enumerate(rb, start=1)}
    common = [c for c in ra if c in rank_b]
    answer_a = a.state.get("answer") if isinstance(a.state, dict) else None
    answer_b = b.state.get("answer") if isinstance(b.state, dict) else None
    return {
        "a": str(a.id),
        "b": str(b.id),
        "kind": {"a": a.kind, "b": b.kind},
        "scenario_label": {"a": a.scenario_label, "b": b.scenario_label},
        "params": {
            "only_a": {k: v for k, v in pa.items() if k not in pb},
            "only_b": {k: v for k, v in pb.items() if k not in pa},
            "changed": {k: {"a": v, "b": pb[k]} for k, v in pa.items() if k in pb and v != pb[k]},
        },
        "retrieved": {
            "only_a": [c for c in ra if c not in rank_b],
            "only_b": [c for c in rb if c not in rank_a],
            "common": common,
            "rank_changes": [
                {"chunk_id": c, "a": rank_a[c], "b": rank_b[c]}
                for c in common
                if rank_a[c] != rank_b[c]
            ],
        },
        "answer": {"a": answer_a, "b": answer_b, "same": answer_a == answer_b},
        "status": {"a": a.status, "b": b.status},
    }
