"""Per-org fair share of pipeline stages, and the org-level limits that go with it.

A stage task of an org runs only while it holds one of that org's `stage_concurrency` slots
(default ORG_STAGE_CONCURRENCY); a task that finds them all taken is deferred (enqueued again
a few seconds later, and acknowledged), so one org's bulk upload cannot occupy every worker
of a stage while other orgs' tasks wait behind it. Slots are rows of `stage_lease`, claimed
with one INSERT … ON CONFLICT, released at the end, and expired after STAGE_LEASE_S if the
worker died holding one.

An org overrides the defaults in its settings:
`{"limits": {"stage_concurrency": 8, "max_chunks_per_document": 50000}}`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ragline.core.config import get_settings
from ragline.db import tenancy, wire
from ragline.db.models import Org

_CLAIM = sa.text(
    """
    INSERT INTO stage_lease (org_id, stage, slot, holder, expires_at)
    SELECT :org, :stage, s, :holder, clock_timestamp() + make_interval(secs => :ttl)
    FROM generate_series(0, :slots - 1) AS s
    WHERE NOT EXISTS (
        SELECT 1 FROM stage_lease l
        WHERE l.org_id = :org AND l.stage = :stage AND l.slot = s
          AND l.expires_at > clock_timestamp())
    ORDER BY s
    LIMIT 1
    ON CONFLICT (org_id, stage, slot) DO UPDATE
        SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE stage_lease.expires_at <= clock_timestamp()
    RETURNING slot
    """
)


#: Upper bounds of the per-org overrides: a typo must not make one org's share unbounded.
LIMIT_MAX: dict[str, int] = {
    "stage_concurrency": 256,
    "reembed_concurrency": 256,
    "max_chunks_per_document": 1_000_000,
    "max_document_bytes": 64 * 1024 * 1024,
}


def org_limit(session: Session, name: str, default: int) -> int:
    """The org's `limits.<name>` setting when it is a positive integer (clamped to
    LIMIT_MAX), else `default`; a malformed `limits` value is ignored, never fatal."""
    settings: Any = session.scalar(
        sa.select(Org.settings).where(Org.id == tenancy.current_org(session))
    )
    limits = settings.get("limits") if isinstance(settings, dict) else None
    value = limits.get(name) if isinstance(limits, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return min(value, LIMIT_MAX.get(name, value))
    return default


def try_claim(
    org_id: uuid.UUID,
    stage: str,
    holder: str,
    *,
    limit: str = "stage_concurrency",
    default: int | None = None,
) -> int | None:
    """Claim a free slot of the org for `stage`; None when all are held. The org has
    `limits.<limit>` slots (default `default`, else ORG_STAGE_CONCURRENCY)."""
    settings = get_settings()
    with tenancy.tenant_session(org_id) as session:
        # Leases are ephemeral (they expire): two fsyncs per stage task were 20 ms of its
        # overhead on a busy 2-core machine (issue 16).
        wire.async_commit(session.connection())
        fallback = default if default is not None else settings.org_stage_concurrency
        slots = org_limit(session, limit, fallback)
        params = {
            "org": org_id,
            "stage": stage,
            "holder": holder,
            "ttl": float(settings.stage_lease_s),
            "slots": slots,
        }
        slot: int | None = session.execute(_CLAIM, params).scalar_one_or_none()
        return slot


def release(org_id: uuid.UUID, stage: str, slot: int, holder: str) -> None:
    with tenancy.tenant_session(org_id) as session:
        wire.async_commit(session.connection())
        session.execute(
            sa.text(
                "DELETE FROM stage_lease WHERE org_id = :org AND stage = :stage "
                "AND slot = :slot AND holder = :holder"
            ),
            {"org": org_id, "stage": stage, "slot": slot, "holder": holder},
        )


@contextmanager
def slot(
    org_id: uuid.UUID, stage: str, *, limit: str = "stage_concurrency", default: int | None = None
) -> Iterator[bool]:
    """`with slot(org, "embed") as granted:` — run the work only when `granted`; the slot is
    released on the way out, whatever happens inside."""
    holder = uuid.uuid4().hex
    claimed = try_claim(org_id, stage, holder, limit=limit, default=default)
    try:
        yield claimed is not None
    finally:
        if claimed is not None:
            release(org_id, stage, claimed, holder)
