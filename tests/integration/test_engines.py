"""Each database mode builds a working engine (Cloud SQL and RDS without network)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pg8000.dbapi
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ragline.cloud.aws import rds
from ragline.cloud.gcp import cloudsql
from ragline.core.config import Settings
from ragline.db import engine as db


def _real_connection(database_url: str) -> Any:
    url = make_url(database_url)
    return pg8000.dbapi.connect(
        user=url.username, database=url.database, unix_sock=url.query["unix_sock"]
    )


class FakeConnector:
    """Stands in for google.cloud.sql.connector.Connector (a remote service)."""

    def __init__(self, database_url: str) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._url = database_url

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return _real_connection(self._url)


def test_url_mode_engine_switches_to_app_role(database_url: str) -> None:
    engine = db.build_engine(Settings(_env_file=None, database_url=database_url))  # type: ignore[call-arg]
    with engine.connect() as conn:
        assert conn.execute(sa.text("select current_user")).scalar() == "ragline_app"
        assert conn.execute(sa.text("show statement_timeout")).scalar() == "30s"
    owner = db.build_engine(
        Settings(_env_file=None, database_url=database_url),
        app_role=False,  # type: ignore[call-arg]
    )
    with owner.connect() as conn:
        assert conn.execute(sa.text("select current_user")).scalar() == "postgres"
    engine.dispose()
    owner.dispose()


@pytest.mark.usefixtures("clean_env")
def test_cloud_sql_mode_uses_connector_with_iam(database_url: str) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        cloud_sql_instance="proj:us-central1:ragline",
        db_iam_user="ingest@proj.iam",
        db_name="ragline",
    )
    fake = FakeConnector(database_url)
    engine = db.build_engine(settings, creator=cloudsql.cloud_sql_creator(settings, fake))
    with engine.connect() as conn:
        assert conn.execute(sa.text("select current_user")).scalar() == "ragline_app"
    engine.dispose()
    args, kwargs = fake.calls[0]
    assert args == ("proj:us-central1:ragline", "pg8000")
    assert kwargs == {"user": "ingest@proj.iam", "db": "ragline", "enable_iam_auth": True}


@pytest.mark.usefixtures("clean_env")
def test_cloud_sql_requires_iam_user() -> None:
    from ragline.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="DB_IAM_USER"):
        cloudsql.cloud_sql_creator(Settings(_env_file=None, cloud_sql_instance="p:r:i"))  # type: ignore[call-arg]


@pytest.mark.usefixtures("clean_env")
def test_rds_token_is_signed_locally_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        db_auth="rds-iam",
        db_host="db.example.internal",
        db_user="ragline_runtime",
        aws_region="eu-west-1",
    )
    cache = rds.RdsTokenCache(settings)
    token = cache.token()
    parsed = urlparse("https://" + token)
    query = parse_qs(parsed.query)
    assert parsed.hostname == "db.example.internal"
    assert query["Action"] == ["connect"] and query["DBUser"] == ["ragline_runtime"]
    assert "eu-west-1" in query["X-Amz-Credential"][0]
    assert cache.token() == token  # reused until near expiry
    cache.ttl_s = -1
    assert cache.token() is not None


@pytest.mark.usefixtures("clean_env")
def test_rds_creator_connects_with_token_over_ssl(monkeypatch: pytest.MonkeyPatch) -> None:
    """The creator dials the configured host with the token (refused here: no network)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        db_auth="rds-iam",
        db_host="127.0.0.1",
        db_port=9,  # discard port: nothing listens
        db_user="ragline_runtime",
        aws_region="eu-west-1",
    )
    engine = db.build_engine(settings)
    assert engine.url.drivername == "postgresql+pg8000"
    with pytest.raises(sa.exc.DBAPIError, match=r"127\.0\.0\.1"):
        engine.connect()
    engine.dispose()
