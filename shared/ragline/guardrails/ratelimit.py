"""Token-bucket rate limits in Postgres: one atomic upsert per check.

Buckets are per org + caller (the API key, or the user it acts for or who signed in) + bucket
name; capacity N per minute refills continuously.
Defaults: `agent` (answer) 5/min, `crud` 60/min; an org overrides them in its settings:
`{"rate_limits": {"agent": 20, "crud": 600}}`.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ragline.db import tenancy
from ragline.db.models import Org

DEFAULT_LIMITS: dict[str, int] = {"agent": 5, "crud": 60}
WINDOW_S = 60.0

# Tokens a bucket holds now: its stored tokens plus the refill since it was last touched.
_REFILLED = (
    "LEAST(CAST(:cap AS float8), {t}.tokens + CAST(:rate AS float8)"
    " * GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - {t}.updated_at)))"
)
_TAKE = sa.text(
    f"""
    INSERT INTO rate_limit_bucket AS b (org_id, caller_id, bucket, tokens, updated_at)
    VALUES (:org, :key, :bucket, CAST(:cap AS float8) - 1, clock_timestamp())
    ON CONFLICT (org_id, caller_id, bucket) DO UPDATE SET
        tokens = {_REFILLED.format(t="b")} - 1,
        updated_at = clock_timestamp()
    WHERE {_REFILLED.format(t="b")} >= 1
    RETURNING tokens
    """
)
_PEEK = sa.text(
    f"""
    SELECT {_REFILLED.format(t="rate_limit_bucket")}
    FROM rate_limit_bucket
    WHERE org_id = :org AND caller_id = :key AND bucket = :bucket
    """
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until one token is available (0 when allowed)

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


def limit_for(session: Session, bucket: str) -> int:
    """The org's limit for `bucket` (its settings override the defaults)."""
    settings: dict[str, Any] | None = session.scalar(
        sa.select(Org.settings).where(Org.id == tenancy.current_org(session))
    )
    override = ((settings or {}).get("rate_limits") or {}).get(bucket)
    if isinstance(override, int) and override > 0:
        return override
    return DEFAULT_LIMITS.get(bucket, DEFAULT_LIMITS["crud"])


def take(session: Session, caller_id: uuid.UUID, bucket: str) -> Decision:
    """Take one token from the bucket if there is one (atomic under concurrency)."""
    cap = limit_for(session, bucket)
    rate = cap / WINDOW_S
    params = {
        "org": tenancy.current_org(session),
        "key": caller_id,
        "bucket": bucket,
        "cap": float(cap),
        "rate": rate,
    }
    left = session.execute(_TAKE, params).scalar_one_or_none()
    if left is not None:
        tokens = float(left)
        return Decision(True, cap, int(tokens), math.ceil((cap - tokens) / rate), 0)
    tokens = float(session.execute(_PEEK, params).scalar_one())
    return Decision(
        False,
        cap,
        0,
        math.ceil((cap - tokens) / rate),
        max(1, math.ceil((1 - tokens) / rate)),
    )
