"""Tenancy: every tenant query runs in a transaction bound to one org.

Two layers: these helpers always filter on `org_id` (and refuse models without it), and
Postgres row-level security (`app.org_id`, set by `tenant_session`) backs them up.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ragline.core.errors import TenancyError
from ragline.db import wire
from ragline.db.engine import get_engine

M = TypeVar("M")
_ORG_KEY = "ragline.org_id"
_USER_KEY = "ragline.user_id"
_PRINCIPALS_KEY = "ragline.principals"
#: `app.principals` of a caller who sees every document of the org (a server key, a stage).
ALL_PRINCIPALS = "*"
#: What a principal string may look like (`user:<uuid>`, `group:<name>`): never a comma (the
#: separator of `app.principals`) and never `*`.
_PRINCIPAL = re.compile(r"(user|group):[A-Za-z0-9._:@/+-]{1,128}")


def principals_setting(principals: Collection[str] | None) -> str:
    """The `app.principals` value: `*` for None (sees the whole org), else the principals
    joined by commas (an empty set sees only documents without an ACL)."""
    if principals is None:
        return ALL_PRINCIPALS
    bad = [p for p in principals if not _PRINCIPAL.fullmatch(p)]
    if bad:
        raise TenancyError(f"malformed principals: {bad[:3]}")
    return ",".join(sorted(principals))


_BIND = "select set_config('app.org_id', %s, true), set_config('app.principals', %s, true)"


def bind_org(
    session: Session,
    org_id: uuid.UUID,
    *,
    principals: Collection[str] | None = None,
    user_id: uuid.UUID | None = None,
) -> None:
    """Set `app.org_id` and `app.principals` for the current transaction, in one statement
    (the first of a tenant transaction). `principals` None: every document of the org (server
    keys, pipeline stages); a set: documents without an ACL or sharing a principal with it.

    On pg8000 the statement is deferred (`db.wire.defer`): it travels with the transaction's
    first statement, in the same round trip, and its failure fails that statement."""
    if not isinstance(org_id, uuid.UUID):
        raise TenancyError("org_id must be a UUID")
    wire.defer_or_execute(
        session.connection(), _BIND, (str(org_id), principals_setting(principals))
    )
    session.info[_ORG_KEY] = org_id
    session.info[_USER_KEY] = user_id
    session.info[_PRINCIPALS_KEY] = None if principals is None else frozenset(principals)


@contextmanager
def tenant_session(
    org_id: uuid.UUID,
    engine: Engine | None = None,
    *,
    principals: Collection[str] | None = None,
    user_id: uuid.UUID | None = None,
) -> Iterator[Session]:
    """One transaction bound to `org_id` (and, for an end user, their principals): commits
    on success, rolls back on error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session, session.begin():
        bind_org(session, org_id, principals=principals, user_id=user_id)
        yield session


def current_user(session: Session) -> uuid.UUID | None:
    """The end user this tenant session acts for (None: a server key or internal work)."""
    current_org(session)
    user = session.info.get(_USER_KEY)
    assert user is None or isinstance(user, uuid.UUID)
    return user


def current_principals(session: Session) -> frozenset[str] | None:
    """The principals this tenant session reads with: None when it sees every document of
    the org (a server key, a pipeline stage), else the set `app.principals` holds."""
    current_org(session)
    principals = session.info.get(_PRINCIPALS_KEY)
    assert principals is None or isinstance(principals, frozenset)
    return principals


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
