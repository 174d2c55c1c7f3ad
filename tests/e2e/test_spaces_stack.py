"""Issue 17 on the real local stack: a shadow build (MiniLM → hashing 256 d, the test double
enabled by ENVIRONMENT=test) runs through the Cloud Tasks emulator and the embed function while
that function is SIGKILLed mid-build and documents are ingested; then cutover and rollback
while searches run in a loop over HTTP: no error, no empty result, and the build ends with
every chunk of the org holding exactly one vector in the new space."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ragline.core.config import get_settings
from ragline.db import engine as db
from ragline.dev import chaos, devstack
from ragline.ingest import reembed

from ..integration.helpers import make_tenant
from .conftest import call, wait_ready
from .test_pipeline_stack import ingest, topic_docs

pytestmark = pytest.mark.e2e


@pytest.fixture()
def on_stack(stack: devstack.Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process enqueues like the functions do: into the stack's emulator."""
    port = int(stack.emulator.rsplit(":", 1)[1])
    env = devstack.function_env(stack, get_settings(), port)
    for name in ("QUEUE_BACKEND", "CLOUD_TASKS_EMULATOR_HOST", "FUNCTION_URLS", "TASK_AUTH"):
        monkeypatch.setenv(name, env[name])
    for name in ("TASK_SECRET", "GCP_PROJECT", "GCP_REGION", "QUEUE_PREFIX"):
        monkeypatch.setenv(name, env[name])
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def vectors(org_id: uuid.UUID, space_id: uuid.UUID) -> tuple[int, int, int]:
    """(chunks of the org, vectors in the space, distinct chunks among them), as the owner."""
    with db.owner_session() as s:
        row = s.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM chunk WHERE org_id = :org), count(v.chunk_id), "
                "count(DISTINCT v.chunk_id) FROM chunk_vector_256 v WHERE v.space_id = :space"
            ),
            {"org": org_id, "space": space_id},
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


class SearchLoop(threading.Thread):
    """Searches over HTTP until stopped, keeping every failure and every empty answer."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.stop = threading.Event()
        self.bad: list[str] = []
        self.answered = 0

    def run(self) -> None:
        queries = ("how does a for loop work", "exceptions and try statements")
        while not self.stop.is_set():
            for query, mode in zip(queries, ("vector", "hybrid"), strict=True):
                try:
                    status, body, _ = call(
                        self.url,
                        method="POST",
                        body={"query": query, "mode": mode},
                        headers=self.headers,
                    )
                except OSError as exc:
                    self.bad.append(f"{type(exc).__name__}: {exc}")
                    continue
                if status != 200:
                    self.bad.append(f"{status}: {body}")
                elif not body.get("results"):
                    self.bad.append(f"empty: {mode} {query}")
                else:
                    self.answered += 1


def wait_built(org_id: uuid.UUID, space_id: uuid.UUID, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        (shadow,) = [p for p in reembed.status(org_id) if p["space_id"] == str(space_id)]
        if not shadow["missing"] or time.monotonic() > deadline:
            return shadow
        time.sleep(0.3)


def test_shadow_build_survives_a_killed_worker_then_cutover_and_rollback_under_search(
    stack: devstack.Stack, on_stack: None
) -> None:
    tenant = make_tenant(f"e2e-spaces-{uuid.uuid4().hex[:6]}")
    first = [ingest(stack, tenant, t, x)["document_id"] for t, x in topic_docs(4, offset=20)]
    assert all(d["status"] == "ready" for d in wait_ready(stack, tenant.key, first).values())
    loop = SearchLoop(stack.functions["search"], tenant.headers)
    loop.start()
    try:
        assert len(first) == 4
        build = reembed.start(tenant.org_id, "hashing", "hashing-v1", 256)
        assert build.created and build.tasks >= 4
        # Ingest during the build: these documents are embedded in both spaces.
        late = [ingest(stack, tenant, t, x)["document_id"] for t, x in topic_docs(2, offset=24)]
        deadline = time.monotonic() + 30
        while vectors(tenant.org_id, build.space.id)[1] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        chunks, done, _ = vectors(tenant.org_id, build.space.id)
        assert 0 < done < chunks, "the worker must die mid-build"
        chaos.kill_function(stack, "embed", 2.0)
        assert all(d["status"] == "ready" for d in wait_ready(stack, tenant.key, late).values())
        shadow = wait_built(tenant.org_id, build.space.id, timeout=40)
        assert shadow["missing"] == 0 and shadow["failed_batches"] == 0, shadow
        chunks, stored, distinct = vectors(tenant.org_id, build.space.id)
        assert stored == distinct == chunks  # every chunk once, none duplicated

        for _ in range(2):
            time.sleep(0.5)
            assert reembed.cutover(tenant.org_id).missing == 0
            time.sleep(0.5)
            assert reembed.rollback(tenant.org_id).missing == 0
            # The rolled-back space is the retired one; cut over to it again next round.
            with db.owner_session() as s:
                s.execute(
                    sa.text(
                        "UPDATE embedding_space SET state = 'shadow', retired_at = NULL "
                        "WHERE id = :id"
                    ),
                    {"id": build.space.id},
                )
        time.sleep(0.5)
    finally:
        loop.stop.set()
        loop.join(timeout=60)
    assert loop.bad == []
    assert loop.answered > 10
