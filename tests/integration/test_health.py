"""The `health` function: liveness without dependencies, readiness with bounded checks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ragline.cloud.gcp.cloud_tasks import TASK_SECRET_HEADER
from ragline.core.config import get_settings
from ragline.db import engine as db
from ragline.dev.devstack import free_port
from ragline.ingest import queues
from ragline.ops import health

from .helpers import client

CHECKS = {"database", "vector", "migrations", "queue", "embeddings"}


@pytest.fixture(autouse=True)
def _internal_caller(configure: Callable[..., None]) -> None:
    configure(task_auth="secret", task_secret="health-s3cret")


def operator() -> dict[str, str]:
    """The internal caller's credential (TASK_AUTH=secret): `/ready` details are for it."""
    secret = get_settings().task_secret
    assert secret is not None, "tests run with a task secret"
    return {TASK_SECRET_HEADER: secret.get_secret_value()}


class HangingServer:
    """Accepts TCP connections and never answers: a database that hangs."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)

    @property
    def url(self) -> str:
        return f"postgresql+pg8000://u:p@127.0.0.1:{self.port}/ragline"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self.accepted:
            conn.close()
        self._sock.close()


@pytest.fixture(autouse=True)
def no_stuck_probes() -> Iterator[None]:
    """Probe threads left hanging by a test end before the next one starts."""
    yield
    assert health.wait_idle(10), "a health probe thread is still running"


@pytest.fixture()
def database_at(configure: Callable[..., None]) -> Iterator[Callable[[str], None]]:
    """Point DATABASE_URL elsewhere for one test (engines rebuilt before and after)."""

    def apply(url: str) -> None:
        configure(database_url=url)
        db.reset_engines()

    yield apply
    db.reset_engines()


@pytest.fixture()
def hanging() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


@pytest.fixture()
def offline(configure: Callable[..., None]) -> None:
    configure(queue_backend="inline", embedding_provider="minilm")


def test_liveness_calls_no_dependency(
    database_at: Callable[[str], None], hanging: HangingServer
) -> None:
    database_at(hanging.url)
    resp = client("health").get("/")
    assert resp.status_code == 200 and resp.json == {"status": "ok"}
    assert resp.headers["X-Request-Id"]
    time.sleep(0.2)
    assert hanging.accepted == []


@pytest.mark.usefixtures("offline")
def test_ready_on_the_test_database() -> None:
    resp = client("health").get("/ready", headers=operator())
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "ok" and set(resp.json["checks"]) == CHECKS
    checks = resp.json["checks"]
    assert all(c["ok"] for c in checks.values())
    assert all(isinstance(c["ms"], float) and c["detail"] for c in checks.values())
    assert checks["migrations"]["detail"] == f"at head {health.expected_head()}"
    assert checks["vector"]["detail"].startswith("pgvector 0.")
    assert "not loaded" in checks["embeddings"]["detail"]


@pytest.mark.usefixtures("offline")
def test_ready_is_503_fast_when_the_socket_is_gone(
    database_at: Callable[[str], None], tmp_path: Path
) -> None:
    database_at(f"postgresql+pg8000://u@/ragline?unix_sock={tmp_path}/none/.s.PGSQL.5432")
    resp = client("health").get("/ready", headers=operator())
    assert resp.status_code == 503 and resp.json["status"] == "unavailable"
    checks = resp.json["checks"]
    assert not checks["database"]["ok"] and not checks["migrations"]["ok"]
    assert checks["queue"]["ok"] and checks["embeddings"]["ok"]
    assert "u@" not in resp.get_data(as_text=True)  # class names only on a public endpoint


@pytest.mark.usefixtures("offline")
def test_ready_is_503_fast_when_the_database_hangs(
    database_at: Callable[[str], None], hanging: HangingServer
) -> None:
    database_at(hanging.url)
    fn = client("health")
    resp = fn.get("/ready", headers=operator())
    assert resp.status_code == 503
    assert resp.json["checks"]["database"]["detail"].startswith("no answer within")
    assert hanging.accepted  # it really connected, and got stuck
    # The stuck probe is not started again: the next call fails at once.
    again = fn.get("/ready", headers=operator())
    assert again.status_code == 503
    assert "still running" in again.json["checks"]["database"]["detail"]


@pytest.mark.usefixtures("offline")
def test_ready_is_503_when_migrations_are_behind() -> None:
    engine = db.get_engine(app_role=False)
    with engine.begin() as conn:
        head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'old'"))
    try:
        resp = client("health").get("/ready", headers=operator())
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert resp.status_code == 503
    checks = resp.json["checks"]
    assert checks["database"]["ok"] and not checks["migrations"]["ok"]
    assert checks["migrations"]["detail"] == f"database at old, code expects {head}"


def test_head_revision_is_known_without_alembic() -> None:
    from ragline.dev import migrate
    from ragline.dev.checkout import repo_root

    versions = repo_root() / "migrations" / "versions"
    assert migrate.head_from_files(versions) == migrate.head_revision()
    assert migrate.head_revision() == health.HEAD_REVISION, "bump health.HEAD_REVISION"
    assert health.expected_head() == health.HEAD_REVISION


def test_ready_reports_a_misconfigured_embedder(configure: Callable[..., None]) -> None:
    configure(queue_backend="inline", embedding_provider="openai", openai_api_key="")
    resp = client("health").get("/ready", headers=operator())
    assert resp.status_code == 503
    assert resp.json["checks"]["embeddings"] == {
        "ok": False,
        "detail": "openai: OPENAI_API_KEY unset",
        "ms": resp.json["checks"]["embeddings"]["ms"],
    }
    assert resp.json["checks"]["database"]["ok"]


def test_ready_reports_an_unreachable_queue(configure: Callable[..., None]) -> None:
    configure(
        queue_backend="cloudtasks",
        cloud_tasks_emulator_host=f"127.0.0.1:{free_port()}",
        embedding_provider="hashing",
    )
    try:
        resp = client("health").get("/ready", headers=operator())
    finally:
        queues.reset_clients()
    assert resp.status_code == 503 and not resp.json["checks"]["queue"]["ok"]
    assert resp.json["checks"]["embeddings"]["ok"]  # hashing is fine under test


def test_unknown_routes_and_methods_are_json_errors() -> None:
    fn = client("health")
    missing = fn.get("/nope")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    post = fn.post("/ready")
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"
    assert post.json["error"]["request_id"] == post.headers["X-Request-Id"]
