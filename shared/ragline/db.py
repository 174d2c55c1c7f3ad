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
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ragline.config import Settings, get_settings
from ragline.errors import ConfigurationError

Creator = Callable[[], Any]
Connect = Callable[..., Any]
_engines: dict[tuple[str, bool], Engine] = {}
_lock = threading.Lock()


def embedded_url(settings: Settings) -> str:
    """Start (or reuse) the embedded server and return the owner URL of the app database."""
    from ragline import embedded

    server = embedded.start(settings.ragline_home / "pgdata")
    embedded.ensure_database(server, settings.db_name)
    return server.url(settings.db_name)


def cloud_sql_creator(settings: Settings, connector: Any = None) -> Creator:
    """A DBAPI connection factory through the Cloud SQL Python Connector with IAM auth."""
    if not settings.db_iam_user:
        raise ConfigurationError("CLOUD_SQL_INSTANCE needs DB_IAM_USER (the IAM database user)")
    holder: dict[str, Any] = {"connector": connector}

    def create() -> Any:
        if holder["connector"] is None:
            # Lazy: the connector costs ~1.2 s to import and calls google.auth.default().
            from google.cloud.sql.connector import Connector

            holder["connector"] = Connector(refresh_strategy="lazy")
        return holder["connector"].connect(
            settings.cloud_sql_instance,
            "pg8000",
            user=settings.db_iam_user,
            db=settings.db_name,
            enable_iam_auth=True,
        )

    return create


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom a host connection goes (`password` is None for IAM tokens)."""

    host: str
    port: int
    user: str
    database: str
    password: str | None


def resolve_endpoint(settings: Settings) -> Endpoint:
    """DB_HOST/DB_PORT/DB_USER/DB_NAME/DB_PASSWORD, each falling back to the DB_SECRET_ID
    secret's `host`/`port`/`username`/`dbname`/`password` when not set (secret cached 10 min)."""
    secret: dict[str, Any] = {}
    if settings.db_secret_id:
        from ragline.aws_secrets import get_json_secret

        secret = get_json_secret(settings.db_secret_id, settings.aws_region)
    explicit = settings.model_fields_set  # fields set by the environment or the caller
    host = settings.db_host or secret.get("host")
    user = settings.db_user or secret.get("username")
    if not host or not user:
        raise ConfigurationError("the database needs DB_HOST and DB_USER (or both in DB_SECRET_ID)")
    port = settings.db_port
    if "db_port" not in explicit and secret.get("port"):
        port = int(secret["port"])
    database = settings.db_name
    if "db_name" not in explicit and secret.get("dbname"):
        database = str(secret["dbname"])
    password = settings.db_password.get_secret_value() if settings.db_password else None
    if password is None and secret.get("password") is not None:
        password = str(secret["password"])
    return Endpoint(str(host), port, str(user), database, password)


def _ssl_context(settings: Settings) -> Any:
    import ssl

    return ssl.create_default_context() if settings.db_ssl else None


def _pg8000_connect(**kwargs: Any) -> Any:
    import pg8000.dbapi

    return pg8000.dbapi.connect(**kwargs)


class RdsTokenCache:
    """RDS IAM auth tokens live 15 minutes; reuse one until 5 minutes before it expires."""

    ttl_s = 600.0

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self._settings = settings
        self._client = client
        self._token: str | None = None
        self._for: tuple[str | None, int, str | None] | None = None
        self._at = 0.0

    def token(self, endpoint: Endpoint | None = None) -> str:
        """A token for `endpoint` (default: DB_HOST, DB_PORT, DB_USER), signed locally."""
        s = self._settings
        target = (
            (endpoint.host, endpoint.port, endpoint.user)
            if endpoint
            else (s.db_host, s.db_port, s.db_user)
        )
        if self._token is None or self._for != target or time.monotonic() - self._at > self.ttl_s:
            if self._client is None:
                import boto3

                self._client = boto3.client("rds", region_name=s.aws_region)
            self._token = self._client.generate_db_auth_token(
                DBHostname=target[0], Port=target[1], DBUsername=target[2], Region=s.aws_region
            )
            self._for = target
            self._at = time.monotonic()
        assert self._token is not None
        return self._token


def rds_creator(
    settings: Settings, tokens: RdsTokenCache | None = None, connect: Connect | None = None
) -> Creator:
    """A DBAPI connection factory for AWS RDS with a fresh IAM token over SSL.

    `connect` (default `pg8000.dbapi.connect`) receives the connection keyword arguments."""
    if not settings.aws_region or not (
        settings.db_secret_id or (settings.db_host and settings.db_user)
    ):
        raise ConfigurationError(
            "DB_AUTH=rds-iam needs DB_HOST, DB_USER and AWS_REGION (or DB_SECRET_ID for host/user)"
        )
    cache = tokens or RdsTokenCache(settings)
    dial = connect or _pg8000_connect

    def create() -> Any:
        endpoint = resolve_endpoint(settings)
        return dial(
            user=endpoint.user,
            password=cache.token(endpoint),
            host=endpoint.host,
            port=endpoint.port,
            database=endpoint.database,
            ssl_context=_ssl_context(settings),
        )

    return create


def _password_rejected(exc: Exception) -> bool:
    """Postgres `invalid_password` (28P01) as pg8000 reports it."""
    first = exc.args[0] if exc.args else None
    return isinstance(first, dict) and first.get("C") == "28P01"


def password_creator(settings: Settings, connect: Connect | None = None) -> Creator:
    """A DBAPI connection factory for a host with a password (DB_PASSWORD or DB_SECRET_ID).

    A password refused by the server drops the cached secret and retries once: the secret
    may have been rotated since it was read."""
    if not (settings.db_secret_id or settings.db_host):
        raise ConfigurationError("DB_AUTH=password needs DB_HOST or DB_SECRET_ID")
    dial = connect or _pg8000_connect

    def once() -> Any:
        endpoint = resolve_endpoint(settings)
        if endpoint.password is None:
            raise ConfigurationError(
                "DB_AUTH=password needs DB_PASSWORD or a password in the secret"
            )
        return dial(
            user=endpoint.user,
            password=endpoint.password,
            host=endpoint.host,
            port=endpoint.port,
            database=endpoint.database,
            ssl_context=_ssl_context(settings),
        )

    def create() -> Any:
        try:
            return once()
        except Exception as exc:
            if not (settings.db_secret_id and _password_rejected(exc)):
                raise
        from ragline.aws_secrets import invalidate

        invalidate(settings.db_secret_id, settings.aws_region)
        return once()

    return create


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
        engine = sa.create_engine(
            "postgresql+pg8000://", creator=cloud_sql_creator(settings), **pool
        )
    elif mode == "rds":
        engine = sa.create_engine("postgresql+pg8000://", creator=rds_creator(settings), **pool)
    elif mode == "password":
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
