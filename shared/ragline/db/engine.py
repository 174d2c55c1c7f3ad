"""Engines and sessions: one engine per process, chosen by configuration, reused across calls.

Order: DATABASE_URL, then Cloud SQL (connector + IAM), then AWS RDS IAM, then a host with a
password, then the embedded server. On AWS, DB_SECRET_ID (Secrets Manager) can supply the
user, host, port, database and password that DB_* variables leave unset.
Runtime connections switch to the application role (`SET ROLE`) so row-level security applies;
the owner engine (migrations, admin CLI) does not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ragline.core.config import Settings, get_settings
from ragline.core.errors import ConfigurationError

Creator = Callable[[], Any]
Connect = Callable[..., Any]
_engines: dict[tuple[str, bool], Engine] = {}
_lock = threading.Lock()


#: Where the `embedded` mode (no database configured) gets its URL. Installed by the developer
#: tools (`ragline.dev.embedded.install()`: the CLI, the local stack), never in a deployed
#: function, which must be configured.
_embedded_url: Callable[[Settings], str] | None = None


def use_embedded_server(provider: Callable[[Settings], str] | None) -> None:
    """Install (or remove, with None) the provider of the embedded server's URL."""
    global _embedded_url
    _embedded_url = provider


def embedded_url(settings: Settings) -> str:
    if _embedded_url is None:
        raise ConfigurationError(
            "no database configured: set DATABASE_URL, CLOUD_SQL_INSTANCE or DB_AUTH "
            "(the embedded server is started by the `ragline` CLI and `ragline dev`)"
        )
    return _embedded_url(settings)


#: Session defaults of every connection, set once when the pool opens it. The vector-search
#: settings live here so a search needs no SET round trip of its own (issue 14):
#: iterative HNSW scans with a generous ef_search, custom plans only (a cached generic plan
#: must never choose between the exact and the HNSW branch), and no parallel workers (a
#: gated, never-run exact branch still launched them, ~10 ms per search).
SESSION_SETTINGS: dict[str, str] = {
    "hnsw.iterative_scan": "relaxed_order",
    "hnsw.ef_search": "400",
    "hnsw.max_scan_tuples": "200000",
    "plan_cache_mode": "force_custom_plan",
    "max_parallel_workers_per_gather": "0",
}


def build_engine(
    settings: Settings, *, app_role: bool = True, creator: Creator | None = None
) -> Engine:
    """Build an engine for the configured database (does not connect)."""
    pool: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_pre_ping": True,
        "pool_recycle": settings.db_pool_recycle_s,
    }
    mode = settings.database_mode
    if creator is not None:
        engine = sa.create_engine("postgresql+pg8000://", creator=creator, **pool)
    elif mode == "url":
        assert settings.database_url is not None
        engine = sa.create_engine(settings.database_url, **pool)
    elif mode == "cloudsql":
        from ragline.cloud.gcp.cloudsql import cloud_sql_creator

        engine = sa.create_engine(
            "postgresql+pg8000://", creator=cloud_sql_creator(settings), **pool
        )
    elif mode == "rds":
        from ragline.cloud.aws.rds import rds_creator

        engine = sa.create_engine("postgresql+pg8000://", creator=rds_creator(settings), **pool)
    elif mode == "password":
        from ragline.cloud.aws.rds import password_creator

        engine = sa.create_engine(
            "postgresql+pg8000://", creator=password_creator(settings), **pool
        )
    else:
        engine = sa.create_engine(embedded_url(settings), **pool)

    role = settings.db_app_role if app_role else ""
    timeout_ms = settings.db_statement_timeout_ms

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"SET statement_timeout = {int(timeout_ms)}")
        for name, value in SESSION_SETTINGS.items():
            cur.execute("SELECT set_config(%s, %s, false)", (name, value))
        if role:
            cur.execute(f'SET ROLE "{role}"')
        cur.close()
        dbapi_conn.commit()

    sa.event.listen(engine, "handle_error", invalidate_unless_server_error)
    return engine


def server_reported(exc: BaseException) -> bool:
    """True when the server itself answered with an error (a SQLSTATE), which leaves the
    connection's protocol state in step: pg8000 puts the error fields in `args[0]`, psycopg
    has `sqlstate`."""
    first = exc.args[0] if exc.args else None
    if isinstance(first, dict) and "C" in first:
        return True
    return bool(getattr(exc, "sqlstate", None))


def invalidate_unless_server_error(ctx: sa.engine.ExceptionContext) -> None:
    """`handle_error` hook: a connection on which a statement failed for any reason other than
    an error the server reported (a parameter the driver could not convert half-way through
    sending, a broken socket, an interrupt) may be out of step with the server, and its next
    statement could read this one's result. Invalidate it: it is closed, never pooled again.
    (Issue 11, defect 1: a crafted cursor made pg8000 fail mid-message.)"""
    if ctx.is_pre_ping or ctx.is_disconnect:
        return
    if not server_reported(ctx.original_exception):
        ctx.is_disconnect = True
        ctx.invalidate_pool_on_disconnect = False


def is_unavailable(exc: BaseException) -> bool:
    """True for every way "the database cannot be reached right now" surfaces: refused or
    dropped connections (pg8000 raises InterfaceError for those, not OperationalError), an
    exhausted pool, a connection invalidated mid-statement."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, (sa_exc.OperationalError, sa_exc.InterfaceError)
        )
    return isinstance(exc, (sa_exc.TimeoutError, ConnectionError))


def get_engine(*, app_role: bool = True) -> Engine:
    """The process-wide engine (runtime role by default; `app_role=False` for the owner)."""
    settings = get_settings()
    key = (settings.database_mode, app_role)
    with _lock:
        if key not in _engines:
            _engines[key] = build_engine(settings, app_role=app_role)
        return _engines[key]


def reset_engines() -> None:
    """Dispose every cached engine (tests, and after configuration changes)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def owner_session() -> Iterator[Session]:
    """A transaction as the owner role, bypassing RLS: admin CLI and migrations only."""
    with Session(get_engine(app_role=False)) as session, session.begin():
        yield session
