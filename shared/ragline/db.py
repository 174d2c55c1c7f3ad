"""Engines and sessions: one engine per process, chosen by configuration, reused across calls.

Order: DATABASE_URL, then Cloud SQL (connector + IAM), then AWS RDS IAM, then the embedded server.
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
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ragline.config import Settings, get_settings
from ragline.errors import ConfigurationError

Creator = Callable[[], Any]
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


class RdsTokenCache:
    """RDS IAM auth tokens live 15 minutes; reuse one until 5 minutes before it expires."""

    ttl_s = 600.0

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self._settings = settings
        self._client = client
        self._token: str | None = None
        self._at = 0.0

    def token(self) -> str:
        if self._token is None or time.monotonic() - self._at > self.ttl_s:
            if self._client is None:
                import boto3

                self._client = boto3.client("rds", region_name=self._settings.aws_region)
            self._token = self._client.generate_db_auth_token(
                DBHostname=self._settings.db_host,
                Port=self._settings.db_port,
                DBUsername=self._settings.db_user,
                Region=self._settings.aws_region,
            )
            self._at = time.monotonic()
        assert self._token is not None
        return self._token


def rds_creator(settings: Settings, tokens: RdsTokenCache | None = None) -> Creator:
    """A DBAPI connection factory for AWS RDS with a fresh IAM token over SSL."""
    if not (settings.db_host and settings.db_user and settings.aws_region):
        raise ConfigurationError("DB_AUTH=rds-iam needs DB_HOST, DB_USER and AWS_REGION")
    cache = tokens or RdsTokenCache(settings)

    def create() -> Any:
        import ssl

        import pg8000.dbapi

        return pg8000.dbapi.connect(
            user=settings.db_user,
            password=cache.token(),
            host=settings.db_host,
            port=settings.db_port,
            database=settings.db_name,
            ssl_context=ssl.create_default_context() if settings.db_ssl else None,
        )

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

    return engine


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
