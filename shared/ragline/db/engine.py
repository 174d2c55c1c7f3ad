"""Engines and sessions: one engine per process, chosen by configuration, reused across calls.

Order: DATABASE_URL, then Cloud SQL (connector + IAM), then AWS RDS IAM, then a host with a
password, then the embedded server. On AWS, DB_SECRET_ID (Secrets Manager) can supply the
user, host, port, database and password that DB_* variables leave unset.
Runtime connections switch to the application role (`SET ROLE`) so row-level security applies;
the owner engine (migrations, admin CLI) does not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ragline.core.config import Settings, get_settings
from ragline.core.errors import ConfigurationError
from ragline.db import wire

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
    "hnsw.ef_search": "200",
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
        "pool_recycle": settings.db_pool_recycle_s,
    }
    mode = settings.database_mode
    if creator is not None:
        engine = sa.create_engine("postgresql+pg8000://", creator=creator, **pool)
    elif mode == "url":
        assert settings.database_url is not None
        url = sa.engine.make_url(settings.database_url)
        # Another driver than pg8000 keeps SQLAlchemy's ping on every checkout.
        engine = sa.create_engine(url, pool_pre_ping=url.get_driver_name() != "pg8000", **pool)
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

    if engine.dialect.driver == "pg8000":
        wire.install(engine)
        _ping_after_idle(engine, settings.db_ping_after_idle_s)

    role = settings.db_app_role if app_role else ""
    timeout_ms = settings.db_statement_timeout_ms

    # The session settings in one simple query (one round trip on a new connection): the
    # names and values are this module's constants, the role a configured identifier.
    setup = [f"SET statement_timeout = {int(timeout_ms)}"]
    setup += [
        f"SELECT set_config('{name}', '{value}', false)" for name, value in SESSION_SETTINGS.items()
    ]
    if role:
        setup.append(f'SET ROLE "{role.replace(chr(34), chr(34) * 2)}"')
    setup_sql = "; ".join(setup)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(setup_sql)
        cur.close()
        dbapi_conn.commit()

    sa.event.listen(engine, "handle_error", invalidate_unless_server_error)
    return engine


def _ping_after_idle(engine: Engine, idle_s: float) -> None:
    """Ping a pooled connection before use only when it sat idle longer than `idle_s`: a
    connection the database (or a proxy) may have dropped meanwhile is replaced before a
    request sees it, and a busy pool pays no round trip (SQLAlchemy's `pool_pre_ping` cost
    one per transaction; issue 14). A connection that broke while in steady use fails its
    statement, which invalidates the pool (`handle_error`): the next checkout reconnects."""

    @sa.event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= idle_s:
            return
        try:
            dbapi_conn.execute_simple("select 1")
        except Exception as exc:  # any failure: this connection is not usable
            raise sa_exc.DisconnectionError(f"stale pooled connection: {exc}") from exc


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
