"""Session-wide test database: a throwaway embedded PostgreSQL (or DATABASE_URL when set).

The server is started once per test session in a short temp dir and stopped in teardown;
SIGTERM exits normally so the teardown still runs (no orphaned servers).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ragline.core.config import get_settings
from ragline.db import engine as db
from ragline.dev import embedded

_OUTER_DATABASE_URL = os.environ.pop("DATABASE_URL", None)
# Test doubles (the hashing embedder, fault injection) are refused outside ENVIRONMENT=test.
os.environ["ENVIRONMENT"] = "test"


def _sigterm(signum: int, _frame: object) -> None:
    sys.exit(128 + signum)


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """An owner URL on the `postgres` database of the test server."""
    signal.signal(signal.SIGTERM, _sigterm)
    if _OUTER_DATABASE_URL:
        yield str(make_url(_OUTER_DATABASE_URL).set(database="postgres"))
        return
    tmp = Path(tempfile.mkdtemp(prefix="rlt-", dir="/tmp"))
    server = embedded.start(tmp / "pg")
    try:
        yield server.url("postgres")
    finally:
        db.reset_engines()
        embedded.stop(tmp / "pg")
        shutil.rmtree(tmp, ignore_errors=True)


def create_database(admin_url: str, name: str) -> str:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return str(make_url(admin_url).set(database=name))


def drop_database(admin_url: str, name: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(admin_url: str) -> Iterator[str]:
    """A migrated database for the whole session; exported as DATABASE_URL."""
    from ragline.dev import migrate

    url = create_database(admin_url, f"ragline_test_{uuid.uuid4().hex[:8]}")
    home = tempfile.mkdtemp(prefix="rlh-", dir="/tmp")
    os.environ.update({"DATABASE_URL": url, "RAGLINE_HOME": home, "ENVIRONMENT": "test"})
    get_settings.cache_clear()
    db.reset_engines()
    migrate.upgrade("head")
    yield url
    db.reset_engines()
    os.environ.pop("DATABASE_URL", None)
    get_settings.cache_clear()


@pytest.fixture()
def fresh_database(admin_url: str) -> Iterator[str]:
    """An empty database of its own, dropped afterwards."""
    name = f"ragline_fresh_{uuid.uuid4().hex[:8]}"
    url = create_database(admin_url, name)
    yield url
    drop_database(admin_url, name)


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No database configuration from the environment (for Settings built in a test)."""
    for name in ("DATABASE_URL", "CLOUD_SQL_INSTANCE", "DB_AUTH", "DB_IAM_USER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set environment settings for one test (`configure(queue_backend="inline")`)."""

    def apply(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key.upper(), value)
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: `unit` (pure: no database, no processes), `db` (the
    test Postgres), `e2e` (the local stack). `make test-fast` runs the unit tests alone."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "unit" in parts:
            item.add_marker(pytest.mark.unit)
        elif "integration" in parts:
            item.add_marker(pytest.mark.db)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
