"""Every revision upgrades and downgrades; the models match the head revision."""

from __future__ import annotations

import sqlalchemy as sa

from ragline.dev import migrate


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_on_empty_database(fresh_database: str) -> None:
    engine = sa.create_engine(fresh_database)
    try:
        migrate.upgrade("head", engine=engine)
        assert _tables(engine) >= {"org", "document", "chunk", "run", "api_key"}
        assert migrate.current_revision(engine) == migrate.head_revision()
        migrate.downgrade("base", engine=engine)
        assert _tables(engine) == set()
        migrate.upgrade("head", engine=engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            exts = dict(conn.execute(sa.text("select extname, extversion from pg_extension")).all())
        assert "vector" in exts and "pg_trgm" in exts
    finally:
        engine.dispose()


def test_models_match_head_revision(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        assert migrate.drift(engine) == []
    finally:
        engine.dispose()


def test_every_tenant_table_forces_rls(database_url: str) -> None:
    from ragline.db.models import TENANT_TABLES

    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select relname, relrowsecurity, relforcerowsecurity from pg_class "
                "where relname = any(:t)"
            ),
            {"t": list(TENANT_TABLES)},
        ).all()
    engine.dispose()
    assert {r[0] for r in rows} == set(TENANT_TABLES)
    assert all(r[1] and r[2] for r in rows)
