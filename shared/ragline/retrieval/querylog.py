"""The search query log (issue 17): recent query texts per org, for `ragline embeddings
compare` without a questions file. Bounded by construction: a ring of QUERY_LOG_SIZE slots
per org, each logged search overwriting a random slot in one upsert (no read, no count);
sampled by QUERY_LOG_RATE; retention purges entries older than `query_log_days`."""

from __future__ import annotations

import random

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ragline.core.config import Settings, get_settings
from ragline.db import tenancy, wire
from ragline.db.models import QueryLog

#: Longest query text kept (a search query is at most this long anyway).
MAX_CHARS = 2000

#: One statement: the upsert, and an asynchronous commit for this transaction (it turns the
#: search's read-only transaction into a write; a query lost in a crash costs nothing, a WAL
#: flush at every search would cost each one). Nobody reads its result: it is deferred
#: (`db.wire.defer`) and travels with the transaction's COMMIT, no round trip of its own.
_UPSERT = (
    "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "INSERT INTO query_log (org_id, slot, query) SELECT %s, %s, %s FROM async "
    "ON CONFLICT (org_id, slot) DO UPDATE SET query = EXCLUDED.query, created_at = now()"
)


def record(session: Session, query: str, settings: Settings | None = None) -> bool:
    """Log `query` for the session's org (sampled); returns whether it was written."""
    settings = settings if settings is not None else get_settings()
    size, rate = settings.query_log_size, settings.query_log_rate
    text = query.strip()[:MAX_CHARS]
    if not size or not text or rate <= 0 or (rate < 1 and random.random() >= rate):
        return False
    slot = random.randrange(size)  # spreading writes, not a secret
    org = tenancy.current_org(session)
    wire.defer_or_execute(session.connection(), _UPSERT, (org, slot, text))
    return True


def recent(session: Session, limit: int = 200) -> list[str]:
    """The org's logged queries, newest first, each text once."""
    rows = session.execute(
        tenancy.scoped_select(session, QueryLog)
        .with_only_columns(QueryLog.query, sa.func.max(QueryLog.created_at).label("at"))
        .group_by(QueryLog.query)
        .order_by(sa.text("at DESC"))
        .limit(limit)
    ).all()
    return [r.query for r in rows]
