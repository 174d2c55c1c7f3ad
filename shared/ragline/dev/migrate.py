"""Run Alembic migrations programmatically (alembic is imported only here, never in functions)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from ragline.core.errors import ConfigurationError
from ragline.db.engine import get_engine
from ragline.dev.checkout import repo_root


def _config(engine: Engine | None = None) -> Any:
    from alembic.config import Config

    ini = repo_root() / "alembic.ini"
    if not ini.exists():
        raise FileNotFoundError(f"alembic.ini not found at {ini}: run migrations from a checkout")
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(repo_root() / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def _run(fn: Any, engine: Engine | None, *args: Any) -> None:
    cfg = _config(engine)
    eng = engine or get_engine(app_role=False)
    # Not `begin()`: alembic runs one transaction per revision itself, and a revision may
    # leave it for an autocommit block (CREATE INDEX CONCURRENTLY, migration 0012).
    with eng.connect() as conn:
        cfg.attributes["connection"] = conn
        fn(cfg, *args)
        conn.commit()


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

    from ragline.db.models import Base

    with (engine or get_engine(app_role=False)).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


def head_from_files(versions_dir: Path) -> str:
    """The single head revision of the migration files in `versions_dir` (regex, no alembic)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions_dir.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        found = _REVISION.search(text)
        if found is None:
            continue
        revisions.add(found.group(1))
        down = _DOWN_REVISION.search(text)
        if down is not None:
            parents.update(_QUOTED.findall(down.group(1)))
    heads = sorted(revisions - parents)
    if len(heads) != 1:
        raise ConfigurationError(f"expected one migration head in {versions_dir}, found {heads}")
    return heads[0]
