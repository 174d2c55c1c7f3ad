"""Alembic environment: the owner engine from ragline's settings (or one passed in)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ragline.db.engine import get_engine
from ragline.db.models import Base

target_metadata = Base.metadata


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # The generated tsvector column and expression indexes compare fine; nothing to skip yet.
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with get_engine(app_role=False).connect() as conn:
        _run(conn)
        conn.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `ragline migrate`")
run_migrations_online()
