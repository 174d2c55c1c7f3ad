"""Moving an org to another embedding model (issue 17): start or resume a shadow build
(embed tasks carrying the space, through the normal embed queue), report its progress, cut
over, roll back. The space rules live in `ragline.retrieval.spaces`; this module adds the
queue side: which tasks to enqueue once the deciding transaction has committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.core.errors import ConfigurationError, EmbeddingSpaceError, ValidationError
from ragline.core.logs import log
from ragline.db import tenancy
from ragline.ingest import queues
from ragline.retrieval import spaces


@dataclass
class Build:
    """A started (or resumed) shadow build: the space and the tasks enqueued for it."""

    space: spaces.Space
    created: bool
    tasks: int
    estimate: dict[str, Any] = field(default_factory=dict)


def enqueue(org_id: uuid.UUID, space_id: uuid.UUID, work: list[tuple[uuid.UUID, int]]) -> int:
    """One embed task per (document, batch) lacking vectors in the space. Names are fresh
    per call (a resumed build re-enqueues; Cloud Tasks refuses a name reused within the
    hour) and the tasks idempotent, so enqueuing work already queued is harmless."""
    tag = uuid.uuid4().hex[:8]
    for doc_id, batch in work:
        queues.enqueue(
            "embed",
            {
                "org_id": str(org_id),
                "document_id": str(doc_id),
                "batch": batch,
                "space": str(space_id),
            },
            f"reembed-{doc_id}-{batch}-{tag}",
        )
    return len(work)


def _work(org_id: uuid.UUID, space: spaces.Space) -> list[tuple[uuid.UUID, int]]:
    with tenancy.tenant_session(org_id) as session:
        return spaces.missing_batches(session, space, get_settings().embed_batch_chunks)


def start(org_id: uuid.UUID, provider: str, model: str, dimension: int | None = None) -> Build:
    """Start a shadow build of `provider/model` (or resume the same one): record the space,
    then enqueue the batches still missing a vector in it."""
    with tenancy.tenant_session(org_id) as session:
        space, created = spaces.start_shadow(session, provider, model, dimension)
        estimate = dict(spaces.progress(session, space)["estimate"])
    tasks = enqueue(org_id, space.id, _work(org_id, space))
    log(
        "INFO",
        "re-embed started" if created else "re-embed resumed",
        event="reembed_started",
        org_id=org_id,
        space_id=space.id,
        provider=provider,
        model=model,
        tasks=tasks,
    )
    return Build(space, created, tasks, estimate)


def resume(org_id: uuid.UUID) -> Build:
    """Re-enqueue what the org's shadow build still lacks (after a crash, a purge of the
    queue, or failed batches)."""
    with tenancy.tenant_session(org_id) as session:
        shadow = [s for s in spaces.live(session) if s.state == "shadow"]
        if shadow:
            spaces.clear_failures(session, shadow[0].id)
    if not shadow:
        raise EmbeddingSpaceError("no shadow build to resume")
    return Build(shadow[0], False, enqueue(org_id, shadow[0].id, _work(org_id, shadow[0])))


def status(org_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every space of the org with its progress (an org without spaces: [])."""
    with tenancy.tenant_session(org_id) as session:
        rows = spaces.listing(session)
        return [
            spaces.progress(
                session, spaces.Space(r.id, r.provider, r.model, r.dimension, r.state, r.storage)
            )
            for r in rows
        ]


def _switched(org_id: uuid.UUID, switch: spaces.Switch, event: str) -> spaces.Switch:
    if switch.missing:
        # Forced: fill the gap of the space now searched, in the background.
        enqueue(org_id, switch.active.id, _work(org_id, switch.active))
    log(
        "INFO",
        event,
        event=event.replace(" ", "_"),
        org_id=org_id,
        active=switch.active.id,
        retired=switch.retired.id,
        missing=switch.missing,
    )
    return switch


def cutover(org_id: uuid.UUID, *, force: bool = False) -> spaces.Switch:
    """Search the shadow space from now on (one transaction); see `spaces.cutover`."""
    with tenancy.tenant_session(org_id) as session:
        switch = spaces.cutover(session, force=force)
    return _switched(org_id, switch, "embedding cutover")


def rollback(org_id: uuid.UUID, *, force: bool = False) -> spaces.Switch:
    """Search the previously active space again (one transaction); see `spaces.rollback`."""
    with tenancy.tenant_session(org_id) as session:
        switch = spaces.rollback(session, force=force)
    return _switched(org_id, switch, "embedding rollback")


# --------------------------------------------------------------------------- admin HTTP


class ReembedRequest(BaseModel):
    """Body of `POST /embeddings/`: the model of the shadow space to build."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=40)
    model: str = Field(min_length=1, max_length=200)
    dimension: int | None = Field(default=None, ge=1, le=spaces.HNSW_MAX_DIM)


class SwitchRequest(BaseModel):
    """Body of `POST /embeddings/cutover` and `/rollback` (optional)."""

    model_config = ConfigDict(extra="forbid")

    force: bool = False


@dataclass
class Planned:
    """An admin call's reply, and the batches to enqueue once its transaction committed."""

    body: dict[str, Any]
    org_id: uuid.UUID
    space_id: uuid.UUID
    work: list[tuple[uuid.UUID, int]]

    def enqueue(self) -> None:
        if self.work:
            enqueue(self.org_id, self.space_id, self.work)


def _missing(session: Session, space: spaces.Space) -> list[tuple[uuid.UUID, int]]:
    return spaces.missing_batches(session, space, get_settings().embed_batch_chunks)


def describe(session: Session) -> dict[str, Any]:
    """Every space of the session's org with its progress."""
    rows = spaces.listing(session)
    return {
        "spaces": [
            spaces.progress(
                session, spaces.Space(r.id, r.provider, r.model, r.dimension, r.state, r.storage)
            )
            for r in rows
        ]
    }


def begin(session: Session, body: ReembedRequest) -> Planned:
    """Start (or resume) a shadow build in the caller's transaction. A provider this
    deployment cannot run (not configured, a test double) is the caller's error (422)."""
    try:
        space, created = spaces.start_shadow(session, body.provider, body.model, body.dimension)
    except ConfigurationError as exc:
        raise ValidationError(f"{body.provider}/{body.model}: {exc.message}") from exc
    if not created:
        spaces.clear_failures(session, space.id)
    work = _missing(session, space)
    reply = {"space": spaces.progress(session, space), "created": created, "tasks": len(work)}
    return Planned(reply, tenancy.current_org(session), space.id, work)


def switch_in(session: Session, *, back: bool, force: bool) -> Planned:
    """Cut over (or roll back) in the caller's transaction; when forced, the batches the new
    active space lacks are enqueued after commit."""
    done = (spaces.rollback if back else spaces.cutover)(session, force=force)
    work = _missing(session, done.active) if done.missing else []
    reply = {
        "active": spaces.progress(session, done.active),
        "retired": spaces.progress(session, done.retired),
        "missing": done.missing,
        "tasks": len(work),
    }
    return Planned(reply, tenancy.current_org(session), done.active.id, work)
