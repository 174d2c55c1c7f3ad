from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ragline.cloud.gcp import storage
from ragline.core.config import Settings, get_settings
from ragline.db import engine as db
from ragline.dev import devstack, storage_emulator

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


#: The test emulator's bucket.
UPLOAD_BUCKET = "ragline-test-uploads"


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[tuple[str, Path]]:
    """fake-gcs-server for the session (the local stack's Cloud Storage): its URL and a
    throwaway signing key, as the local stack uses them."""
    tmp = Path(tempfile.mkdtemp(prefix="rlg-", dir="/tmp"))
    port = devstack.free_port()
    proc = storage_emulator.start(port, tmp / "gcs", tmp / "gcs.log")
    url = f"http://127.0.0.1:{port}"
    try:
        storage_emulator.wait_ready(url, proc)
        storage_emulator.ensure_bucket(url, UPLOAD_BUCKET)
        yield url, storage_emulator.signing_key(tmp)
    finally:
        devstack.kill(proc.pid)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture()
def gcs(gcs_emulator: tuple[str, Path], configure: Callable[..., None]) -> Iterator[Settings]:
    """Settings pointing at the emulator (bucket, signing key); clients rebuilt around it."""
    url, key = gcs_emulator
    configure(
        storage_emulator_host=url, upload_bucket=UPLOAD_BUCKET, storage_signing_key_file=str(key)
    )
    storage.reset_clients()
    yield get_settings()
    storage.reset_clients()
