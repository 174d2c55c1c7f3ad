"""Idempotency keys (Stripe / AWS Powertools semantics), stored per org in Postgres.

claim → run the handler → complete (or release on failure). A repeat of a completed request
is replayed; the same key with another payload is refused; a repeat while the first is in
progress gets a conflict with Retry-After; a lock left by a crashed invocation expires and the
next attempt proceeds. Records expire after `idempotency_ttl_s`.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ragline.core.errors import (
    IdempotencyInProgressError,
    IdempotencyMismatchError,
    MalformedHeaderError,
    ValidationError,
)
from ragline.db import tenancy
from ragline.db.models import IdempotencyKey, IdempotencyStatus

MAX_KEY_LENGTH = 255
#: Response headers worth replaying (never auth or per-request ones).
REPLAYED_HEADERS = ("Location", "Content-Type")


@dataclass(frozen=True)
class Replay:
    status: int
    body: Any
    headers: dict[str, str]


def validate_key(key: str) -> str:
    """A key is 1-255 printable characters without commas: servers join repeated headers
    with ", ", so a comma means the header was sent twice (refused, never stored joined)."""
    key = key.strip()
    if "," in key:
        raise MalformedHeaderError("the Idempotency-Key header must appear once")
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters")
    return key


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    """Hash of method, path, query string and the canonical body (JSON re-serialised with
    sorted keys; a body that is not JSON, or too deep to re-serialise, is hashed as sent)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError, RecursionError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper(), path, query):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(canonical)
    return digest.hexdigest()


def claim(
    session: Session, function: str, key: str, req_hash: str, *, lock_s: float, ttl_s: float
) -> Replay | None:
    """Claim `key` for this request. None = proceed; a Replay = answer with the stored reply.

    Raises IdempotencyMismatchError (same key, other payload) or IdempotencyInProgressError."""
    org = tenancy.current_org(session)
    now = sa.func.clock_timestamp()
    inserted = session.execute(
        insert(IdempotencyKey)
        .values(
            org_id=org,
            function=function,
            key=key,
            request_hash=req_hash,
            status=IdempotencyStatus.IN_PROGRESS,
            locked_until=now + sa.func.make_interval(0, 0, 0, 0, 0, 0, lock_s),
            expires_at=now + sa.func.make_interval(0, 0, 0, 0, 0, 0, ttl_s),
        )
        .on_conflict_do_nothing(index_elements=["org_id", "function", "key"])
        .returning(IdempotencyKey.id)
    ).scalar_one_or_none()
    if inserted is not None:
        return None
    row = session.scalars(
        tenancy.scoped_select(
            session, IdempotencyKey, IdempotencyKey.function == function, IdempotencyKey.key == key
        ).with_for_update()
    ).one()
    current: datetime = session.scalar(sa.select(sa.func.clock_timestamp()))  # type: ignore[assignment]
    if row.expires_at <= current:
        _take_over(row, req_hash, current, lock_s, ttl_s)
        return None
    if row.request_hash != req_hash:
        raise IdempotencyMismatchError(
            "this Idempotency-Key was used with a different request; use a new key"
        )
    if row.status == IdempotencyStatus.COMPLETED:
        assert row.response_status is not None
        return Replay(row.response_status, row.response_body, dict(row.response_headers or {}))
    if row.locked_until > current:
        wait = math.ceil((row.locked_until - current).total_seconds())
        raise IdempotencyInProgressError(
            "a request with this Idempotency-Key is still in progress",
            details={"retry_after": wait},
        )
    # The previous attempt crashed and its lock expired: this attempt proceeds.
    _take_over(row, req_hash, current, lock_s, None)
    return None


def _take_over(
    row: IdempotencyKey, req_hash: str, now: datetime, lock_s: float, ttl_s: float | None
) -> None:
    from datetime import timedelta

    row.request_hash = req_hash
    row.status = IdempotencyStatus.IN_PROGRESS
    row.response_status = None
    row.response_body = None
    row.response_headers = None
    row.locked_until = now + timedelta(seconds=lock_s)
    if ttl_s is not None:
        row.expires_at = now + timedelta(seconds=ttl_s)


def complete(
    session: Session, function: str, key: str, status: int, body: Any, headers: dict[str, str]
) -> None:
    """Store the reply of a finished request for replay."""
    kept = {k: v for k, v in headers.items() if k in REPLAYED_HEADERS}
    session.execute(
        tenancy.scoped_update(
            session, IdempotencyKey, IdempotencyKey.function == function, IdempotencyKey.key == key
        ).values(
            status=IdempotencyStatus.COMPLETED,
            response_status=status,
            response_body=body,
            response_headers=kept,
        )
    )


def release(session: Session, function: str, key: str) -> None:
    """Forget an in-progress claim whose request failed, so a retry runs again."""
    session.execute(
        tenancy.scoped_delete(
            session,
            IdempotencyKey,
            IdempotencyKey.function == function,
            IdempotencyKey.key == key,
            IdempotencyKey.status == IdempotencyStatus.IN_PROGRESS,
        )
    )


def new_key() -> str:
    return uuid.uuid4().hex
