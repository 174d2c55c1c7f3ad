"""The local stack: embedded Postgres, the Cloud Tasks emulator, the Cloud Storage emulator
(fake-gcs-server, `storage_emulator`) and one functions-framework process per function, wired
like production (real Cloud Tasks and Cloud Storage clients, real HTTP). When an `on_upload`
function exists, `events` stands in for Eventarc: it delivers the upload bucket's object
events to it as CloudEvents.

State lives in `$RAGLINE_HOME/dev.json` so `ragline dev stop` can stop a detached stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ragline.core.config import Settings, get_settings
from ragline.core.errors import ConfigurationError
from ragline.dev import storage_emulator
from ragline.dev.checkout import repo_root
from ragline.ingest.queues import STAGES, queue_name

#: The emulator retries instantly (no backoff): allow enough attempts to ride out a restart.
LOCAL_MAX_ATTEMPTS = 30
#: Local reconcile: a document with no progress for this long gets its work re-enqueued
#: (production: RECONCILE_STALL_S, 600 s), checked every RECONCILE_EVERY_S by a ticker that
#: stands in for Cloud Scheduler.
LOCAL_RECONCILE_STALL_S = 20
#: ... and one that made no progress for this long fails even while others progress.
LOCAL_RECONCILE_FAIL_AFTER_S = 600
RECONCILE_EVERY_S = 5


#: Functions that serve queues or schedules, not users (RAGLINE_BACKGROUND_NICE applies).
BACKGROUND_FUNCTIONS = frozenset({*STAGES, "reconcile", "retention"})


@dataclass
class Stack:
    functions: dict[str, str]
    api_key: str
    database_url: str
    emulator: str
    pids: dict[str, int] = field(default_factory=dict)
    started_db: bool = False
    task_secret: str = ""
    #: The Cloud Storage emulator's base URL and the upload bucket in it.
    storage: str = ""
    upload_bucket: str = ""


def function_names() -> list[str]:
    return sorted(p.parent.name for p in (repo_root() / "functions").glob("*/main.py"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _emulator_bin() -> str:
    for candidate in (
        os.environ.get("TASKS_EMULATOR_BIN"),
        str(repo_root() / ".venv-tasks" / "bin" / "gcloud-tasks-emulator"),
        shutil.which("gcloud-tasks-emulator"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise ConfigurationError(
        "gcloud-tasks-emulator not found: run `make setup` (it installs it in .venv-tasks)"
    )


def _emulator_python() -> str:
    """The interpreter of the emulator's installation (its script's `#!` line, absolute as
    pip writes it, or `/usr/bin/env python3`)."""
    script = Path(_emulator_bin())
    first = script.read_bytes()[:512].split(b"\n", 1)[0].decode(errors="replace")
    words = first[2:].split() if first.startswith("#!") else []
    if len(words) > 1 and Path(words[0]).name == "env":
        found = shutil.which(words[1])
        words = [found] if found else []
    if not words or not Path(words[0]).exists():
        raise ConfigurationError(f"cannot tell the Python interpreter of {script}")
    return words[0]


def wait_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} (see its log)")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{name} did not listen on port {port} within {timeout:.0f}s")


def state_file(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).ragline_home / "dev.json"


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab")
    return subprocess.Popen(
        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=repo_root(), start_new_session=True
    )


def function_env(stack: Stack, settings: Settings, emulator_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(
        {
            "DATABASE_URL": stack.database_url,
            "QUEUE_BACKEND": "cloudtasks",
            "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{emulator_port}",
            "GCP_PROJECT": settings.gcp_project,
            "GCP_REGION": settings.gcp_region,
            "QUEUE_PREFIX": settings.queue_prefix,
            "FUNCTION_URLS": json.dumps({s: stack.functions[s] for s in STAGES}),
            "TASK_AUTH": "secret",
            "TASK_SECRET": stack.task_secret,
            "TASK_MAX_ATTEMPTS": str(LOCAL_MAX_ATTEMPTS),
            # The emulator has no backoff: a failing stage re-enqueues itself later instead.
            "TASK_LOCAL_BACKOFF": "1",
            # A worker killed (or a database lost) while holding a fair-share slot frees it
            # after this long; stages are idempotent, so an early expiry costs only fairness.
            "STAGE_LEASE_S": os.environ.get("STAGE_LEASE_S", "30"),
            "RECONCILE_STALL_S": os.environ.get("RECONCILE_STALL_S", str(LOCAL_RECONCILE_STALL_S)),
            "RECONCILE_FAIL_AFTER_S": os.environ.get(
                "RECONCILE_FAIL_AFTER_S", str(LOCAL_RECONCILE_FAIL_AFTER_S)
            ),
            "RAGLINE_HOME": str(settings.ragline_home.resolve()),
            # The built MiniLM variants live in the checkout (make setup), not in RAGLINE_HOME.
            "MINILM_MODEL_DIR": os.environ.get(
                "MINILM_MODEL_DIR", str(repo_root() / ".ragline" / "models")
            ),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(console_env(stack))
    if stack.storage:
        home = settings.ragline_home.resolve()
        env.update(
            {
                "STORAGE_EMULATOR_HOST": stack.storage,
                "UPLOAD_BUCKET": stack.upload_bucket,
                # The same V4 signing code as in Google Cloud, with a throwaway key.
                "STORAGE_SIGNING_KEY_FILE": str(storage_emulator.signing_key(home)),
            }
        )
    return env


def console_url(stack: Stack) -> str | None:
    """The console's URL on this stack (issue 19), or None without a console function."""
    return stack.functions.get("console")


def console_env(stack: Stack) -> dict[str, str]:
    """The console's API URLs, and CORS for its origin on the API functions (issue 19)."""
    from ragline.api.console import API_FUNCTIONS

    url = console_url(stack)
    if url is None:
        return {}
    origin = url.rstrip("/")
    return {
        "CONSOLE_API_URLS": json.dumps(
            {n: stack.functions[n] for n in API_FUNCTIONS if n in stack.functions}
        ),
        # The page may be opened as localhost too: a browser sends that as another origin.
        "CORS_ORIGINS": json.dumps([origin, origin.replace("127.0.0.1", "localhost")]),
    }


def start_emulator(port: int, logs: Path) -> subprocess.Popen[bytes]:
    """The Cloud Tasks emulator on `port`, one queue per stage (its queues live in memory)."""
    settings = get_settings()
    queue_args: list[str] = []
    for stage in STAGES:
        path = f"projects/{settings.gcp_project}/locations/{settings.gcp_region}/queues/"
        queue_args += ["-d", path + queue_name(stage, settings)]
    # Our launcher (tasks_emulator.py), run by the emulator's own interpreter: the emulator
    # with Cloud Tasks' concurrent dispatch instead of one delivery at a time.
    return _spawn(
        [
            _emulator_python(),
            str(Path(__file__).with_name("tasks_emulator.py")),
            "--concurrency",
            str(settings.task_local_dispatches),
            "start",
            f"--port={port}",
            "-q",
            f"--max-retries={LOCAL_MAX_ATTEMPTS}",
            *queue_args,
        ],
        dict(os.environ),
        logs / "tasks-emulator.log",
    )


def start_function(
    name: str, port: int, env: dict[str, str], logs: Path
) -> subprocess.Popen[bytes]:
    ff = Path(sys.executable).parent / "functions-framework"
    cmd = [
        str(ff) if ff.exists() else "functions-framework",
        f"--target={name}",
        f"--source={repo_root() / 'functions' / name / 'main.py'}",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    nice = env.get("RAGLINE_BACKGROUND_NICE", "")
    if nice and name in BACKGROUND_FUNCTIONS:
        # One machine stands in for separate instances: background work yields the CPU to
        # the interactive functions, as it never competes with them in Google Cloud.
        cmd = ["nice", "-n", str(int(nice)), *cmd]
    return _spawn(cmd, env, logs / f"{name}.log")


def start(progress: Callable[[str], None] = print) -> Stack:
    """Start everything; returns once every process listens. Caller must `stop()` it."""
    from ragline.db import engine as db
    from ragline.dev import embedded, migrate, seed

    settings = get_settings()
    home = settings.ragline_home
    logs = home / "logs"
    if state_file(settings).exists():
        existing = json.loads(state_file(settings).read_text())
        if any(_alive(pid) for pid in existing.get("pids", {}).values()):
            raise RuntimeError("a dev stack is already running: `ragline dev stop` first")
    started_db = False
    if settings.database_mode == "embedded":
        pgdata = home / "pgdata"
        started_db = embedded.status(pgdata) is None
        progress(f"database: embedded PostgreSQL in {pgdata}")
        server = embedded.start(pgdata)
        embedded.ensure_database(server, settings.db_name)
        database_url = server.url(settings.db_name)
    elif settings.database_url:
        database_url = settings.database_url
        progress("database: DATABASE_URL")
    else:
        raise ConfigurationError("the local stack needs the embedded database or DATABASE_URL")
    os.environ["DATABASE_URL"] = database_url
    get_settings.cache_clear()
    db.reset_engines()
    progress("migrations: upgrading to head")
    migrate.upgrade("head")
    with db.owner_session() as session:
        api_key = seed.seed(session).api_key
    db.reset_engines()

    names = function_names()
    ports = {n: free_port() for n in names}
    emulator_port = free_port()
    storage_port = free_port()
    stack = Stack(
        functions={n: f"http://127.0.0.1:{p}/" for n, p in ports.items()},
        api_key=api_key,
        database_url=database_url,
        emulator=f"127.0.0.1:{emulator_port}",
        started_db=started_db,
        task_secret=secrets.token_urlsafe(24),
        storage=f"http://127.0.0.1:{storage_port}",
        upload_bucket=settings.upload_bucket or storage_emulator.LOCAL_BUCKET,
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        progress(f"Cloud Tasks emulator on :{emulator_port} ({len(STAGES)} queues)")
        procs["tasks-emulator"] = start_emulator(emulator_port, logs)
        procs["storage-emulator"] = storage_emulator.start(
            storage_port, home / "gcs", logs / "storage-emulator.log"
        )
        env = function_env(stack, settings, emulator_port)
        for name in names:
            procs[name] = start_function(name, ports[name], env, logs)
        wait_port(emulator_port, procs["tasks-emulator"], "tasks-emulator", 30)
        storage_emulator.wait_ready(stack.storage, procs["storage-emulator"])
        storage_emulator.ensure_bucket(stack.storage, stack.upload_bucket, settings.gcp_project)
        progress(f"Cloud Storage emulator on :{storage_port} (bucket {stack.upload_bucket})")
        for name in names:
            wait_port(ports[name], procs[name], name, 60)
            progress(f"function {name:<10} {stack.functions[name]}")
        if "reconcile" in names:
            procs["scheduler"] = _spawn(
                [
                    sys.executable,
                    "-m",
                    "ragline.dev.ticker",
                    stack.functions["reconcile"],
                    os.environ.get("RECONCILE_EVERY_S", str(RECONCILE_EVERY_S)),
                ],
                env,
                logs / "scheduler.log",
            )
            progress(f"scheduler: reconcile every {RECONCILE_EVERY_S}s")
        if "on_upload" in names:
            procs["events"] = _spawn(
                [
                    sys.executable,
                    "-m",
                    "ragline.dev.events",
                    stack.functions["on_upload"],
                    stack.upload_bucket,
                ],
                env,
                logs / "events.log",
            )
            twice = " (each twice)" if env.get("RAGLINE_DUPLICATE_EVENTS") == "1" else ""
            progress(f"events: gs://{stack.upload_bucket} -> on_upload{twice}")
    except BaseException:
        stack.pids = {n: p.pid for n, p in procs.items()}
        stop(stack)
        raise
    stack.pids = {n: p.pid for n, p in procs.items()}
    state_file(settings).write_text(json.dumps(asdict(stack), indent=2))
    return stack


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def kill(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM a process group, then SIGKILL what is left after `timeout`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (OSError, ChildProcessError):
            pass


def kill_all(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM every process group at once, then wait (and SIGKILL) within one deadline."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        kill(pid, timeout=max(0.1, deadline - time.monotonic()))


def stop(stack: Stack | None = None) -> bool:
    """Stop a stack (or the one recorded in dev.json). Returns False when none was running."""
    from ragline.dev import embedded

    settings = get_settings()
    path = state_file(settings)
    if stack is None:
        if not path.exists():
            return False
        stack = Stack(**json.loads(path.read_text()))
    kill_all(list(stack.pids.values()))
    if stack.started_db:
        embedded.stop(settings.ragline_home / "pgdata")
    path.unlink(missing_ok=True)
    return True


def load() -> Stack | None:
    path = state_file()
    return Stack(**json.loads(path.read_text())) if path.exists() else None


#: What a CLI process needs to enqueue into a running stack like its functions do.
QUEUE_ENV = (
    "QUEUE_BACKEND",
    "CLOUD_TASKS_EMULATOR_HOST",
    "GCP_PROJECT",
    "GCP_REGION",
    "QUEUE_PREFIX",
    "FUNCTION_URLS",
    "TASK_AUTH",
    "TASK_SECRET",
)


def use_stack_queues() -> str:
    """For CLI commands that enqueue pipeline work (`embeddings reembed`, a forced cutover,
    `reconcile`): into the running local stack's Cloud Tasks emulator, so its functions do the
    work; with no stack running, or QUEUE_BACKEND set explicitly, the configured backend
    (inline runs the stages in this process). Returns where the tasks go."""
    import ragline.ingest.pipeline  # noqa: F401  (installs the inline stage runner)
    from ragline.ingest import queues

    stack = None if "QUEUE_BACKEND" in os.environ else load()
    if stack is None:
        return f"queue backend {get_settings().queue_backend}"
    env = function_env(stack, get_settings(), int(stack.emulator.rsplit(":", 1)[1]))
    os.environ.update({key: env[key] for key in QUEUE_ENV})
    get_settings.cache_clear()
    queues.reset_clients()
    return f"the local stack's Cloud Tasks emulator ({stack.emulator})"


def get_json(url: str, key: str, timeout: float = 30) -> dict[str, object]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


def restart_function(
    stack: Stack, name: str, *, extra_env: dict[str, str] | None = None, hard: bool = False
) -> None:
    """Stop one function (SIGKILL when `hard`, as a crash would) and start it again on its port."""
    settings = get_settings()
    pid = stack.pids[name]
    if hard:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    kill(pid)
    port = int(stack.functions[name].rstrip("/").rsplit(":", 1)[1])
    emulator_port = int(stack.emulator.rsplit(":", 1)[1])
    env = function_env(stack, settings, emulator_port) | (extra_env or {})
    proc = start_function(name, port, env, settings.ragline_home / "logs")
    wait_port(port, proc, name, 60)
    stack.pids[name] = proc.pid
    state_file(settings).write_text(json.dumps(asdict(stack), indent=2))
