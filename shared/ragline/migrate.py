"""Run Alembic migrations programmatically (alembic is imported only here, never in functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from ragline.db import get_engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def _config(engine: Engine | None = None) -> Any:
    from alembic.config import Config

    ini = REPO_ROOT / "alembic.ini"
    if not ini.exists():
        raise FileNotFoundError(f"alembic.ini not found at {ini}: run migrations from a checkout")
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def _run(fn: Any, engine: Engine | None, *args: Any) -> None:
    cfg = _config(engine)
    eng = engine or get_engine(app_role=False)
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        fn(cfg, *args)


def upgrade(revision: str = "head", engine: Engine | None = None) -> None:
    """Upgrade the database to `revision` as the owner role."""
    from alembic import command

    _run(command.upgrade, engine, revision)


def downgrade(revision: str, engine: Engine | None = None) -> None:
    from alembic import command

    _run(command.downgrade, engine, revision)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with (engine or get_engine(app_role=False)).connect() as conn:
        rev: str | None = MigrationContext.configure(conn).get_current_revision()
        return rev


def drift(engine: Engine | None = None) -> list[Any]:
    """Differences between the models and the database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ragline.models import Base

    with (engine or get_engine(app_role=False)).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))
