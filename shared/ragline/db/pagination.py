"""Keyset pagination over `(created_at, id)`, newest first: the one cursor format of the API.

A cursor is `<created_at ISO 8601 with offset>|<uuid>`. It is parsed and range-checked here,
before any SQL: a value the driver cannot send (a year-1 timestamp at +14:00 overflows when
converted to UTC) must be a 422, never a half-sent statement.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ragline.core.errors import ValidationError
from ragline.db import tenancy

M = TypeVar("M")

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_CURSOR_LENGTH = 200


def encode(created_at: datetime, id_: uuid.UUID) -> str:
    return f"{created_at.isoformat()}|{id_}"


def decode(raw: str) -> tuple[datetime, uuid.UUID]:
    """`(created_at in UTC, id)` of a cursor; ValidationError("invalid cursor") otherwise."""
    if len(raw) > MAX_CURSOR_LENGTH:
        raise ValidationError("invalid cursor")
    at_text, sep, id_text = raw.partition("|")
    if not sep or not _UUID_RE.fullmatch(id_text.lower()):
        raise ValidationError("invalid cursor")
    try:
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        at = at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValidationError("invalid cursor") from exc
    if not 1970 <= at.year <= 9998:
        # Every row was created after 1970; out-of-range values are only ever crafted.
        raise ValidationError("invalid cursor")
    return at, uuid.UUID(id_text)


def newest_first(
    session: Session, model: type[M], where: list[Any], cursor: str | None, limit: int
) -> tuple[list[M], str | None]:
    """One page of `model` rows of the session's org matching `where`, newest first by
    `(created_at, id)`, after `cursor`; with the cursor of the next page, if any."""
    rows = tenancy.list_(
        session,
        model,
        *where,
        *before(model.created_at, model.id, cursor),  # type: ignore[attr-defined]
        order_by=[model.created_at.desc(), model.id.desc()],  # type: ignore[attr-defined]
        limit=limit + 1,
    )
    return page(rows, limit)


def before(created_at: Any, id_: Any, raw: str | None) -> list[Any]:
    """WHERE clauses for the page after `raw` (none for the first page)."""
    if not raw:
        return []
    at, after_id = decode(raw)
    return [sa.tuple_(created_at, id_) < sa.tuple_(sa.literal(at), sa.literal(after_id))]


def page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """Cut `limit + 1` fetched rows to `limit`, with the cursor of the next page if any."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode(rows[-1].created_at, rows[-1].id) if more and rows else None)
