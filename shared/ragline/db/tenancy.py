"""Tenancy: every tenant query runs in a transaction bound to one org.

Two layers: these helpers always filter on `org_id` (and refuse models without it), and
Postgres row-level security (`app.org_id`, set by `tenant_session`) backs them up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ragline.core.errors import TenancyError
from ragline.db.engine import get_engine

M = TypeVar("M")
_ORG_KEY = "ragline.org_id"


def bind_org(session: Session, org_id: uuid.UUID) -> None:
    """Set `app.org_id` for the current transaction (first statement of a tenant transaction)."""
    if not isinstance(org_id, uuid.UUID):
        raise TenancyError("org_id must be a UUID")
    session.execute(sa.text("select set_config('app.org_id', :org, true)"), {"org": str(org_id)})
    session.info[_ORG_KEY] = org_id


@contextmanager
def tenant_session(org_id: uuid.UUID, engine: Engine | None = None) -> Iterator[Session]:
    """One transaction bound to `org_id`: commits on success, rolls back on error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session, session.begin():
        bind_org(session, org_id)
        yield session


def current_org(session: Session) -> uuid.UUID:
    """The org this session is bound to; raises if it is not a tenant session."""
    org = session.info.get(_ORG_KEY)
    if org is None:
        raise TenancyError("not a tenant session: use tenant_session(org_id)")
    assert isinstance(org, uuid.UUID)
    return org


def _org_column(model: Any) -> Any:
    column = getattr(model, "org_id", None)
    if column is None:
        raise TenancyError(f"{getattr(model, '__name__', model)} has no org_id: not a tenant model")
    return column


def scoped_select(session: Session, model: type[M], *where: Any) -> sa.Select[M]:
    """`select(model)` restricted to the session's org."""
    return sa.select(model).where(_org_column(model) == current_org(session), *where)


def get(session: Session, model: type[M], id_: Any, *, for_update: bool = False) -> M | None:
    """The row with primary key `id_` if it belongs to the session's org, else None."""
    stmt = scoped_select(session, model, model.id == id_)  # type: ignore[attr-defined]
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def list_(
    session: Session,
    model: type[M],
    *where: Any,
    order_by: Sequence[Any] = (),
    limit: int | None = None,
    offset: int = 0,
) -> list[M]:
    stmt = scoped_select(session, model, *where).order_by(*order_by).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def count(session: Session, model: type[M], *where: Any) -> int:
    stmt = (
        sa.select(sa.func.count())
        .select_from(model)
        .where(_org_column(model) == current_org(session), *where)
    )
    return int(session.scalar(stmt) or 0)


def add(session: Session, obj: M) -> M:
    """Add a tenant row, stamping (or checking) its `org_id` against the session's org."""
    org = current_org(session)
    _org_column(type(obj))
    existing = getattr(obj, "org_id", None)
    if existing is None:
        obj.org_id = org  # type: ignore[attr-defined]
    elif existing != org:
        raise TenancyError("refusing to write a row of another org")
    session.add(obj)
    return obj


def scoped_update(session: Session, model: type[M], *where: Any) -> sa.Update:
    """`update(model)` restricted to the session's org."""
    return sa.update(model).where(_org_column(model) == current_org(session), *where)


def scoped_delete(session: Session, model: type[M], *where: Any) -> sa.Delete:
    """`delete(model)` restricted to the session's org."""
    return sa.delete(model).where(_org_column(model) == current_org(session), *where)
