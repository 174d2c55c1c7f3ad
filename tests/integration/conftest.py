from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from ragline.db import engine as db

from .helpers import Tenant, make_tenant


@pytest.fixture(autouse=True)
def clean_tables(database_url: str) -> Iterator[None]:
    """Each test starts with empty tables (orgs cascade to every tenant table)."""
    yield
    with db.get_engine(app_role=False).begin() as conn:
        conn.execute(sa.text("TRUNCATE org CASCADE"))


@pytest.fixture()
def tenant() -> Tenant:
    """An org ("acme") with a read+write API key and generous rate limits."""
    return make_tenant("acme")


@pytest.fixture()
def offline_pipeline(configure: Callable[..., None]) -> Callable[..., None]:
    """Stages run inline with the hashing embedder and no LLM: the pipeline without processes
    or models. Returns `configure` for further settings."""
    configure(queue_backend="inline", embedding_provider="hashing", llm_provider="none")
    return configure
