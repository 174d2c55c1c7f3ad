from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ragline.db import engine as db


@pytest.fixture(autouse=True)
def clean_tables(database_url: str) -> Iterator[None]:
    """Each test starts with empty tables (orgs cascade to every tenant table)."""
    yield
    with db.get_engine(app_role=False).begin() as conn:
        conn.execute(sa.text("TRUNCATE org CASCADE"))
