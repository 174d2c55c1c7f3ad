"""Host connections for AWS: RDS IAM tokens (signed locally, cached 10 minutes) or a password,
with host, user, database and password falling back to a Secrets Manager secret
(`DB_SECRET_ID`) and a retry with a fresh secret when the password was rotated."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError

Creator = Callable[[], Any]
Connect = Callable[..., Any]


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
        from ragline.cloud.aws.secrets import get_json_secret

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
        from ragline.cloud.aws.secrets import invalidate

        invalidate(settings.db_secret_id, settings.aws_region)
        return once()

    return create
