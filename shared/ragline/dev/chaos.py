"""Faults on the local stack, for bench/faults.py and the end-to-end tests (issue 16): kill a
function for a while, stop and restart the database, restart the Cloud Tasks emulator."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ragline.core.config import get_settings
from ragline.dev import devstack, embedded


@dataclass(frozen=True)
class StoppedDatabase:
    pgdata: Path
    socket_dir: Path
    port: int


def kill_function(stack: devstack.Stack, name: str, down_s: float) -> None:
    """SIGKILL a function's process group (a crash), keep it down `down_s`, start it again."""
    with contextlib.suppress(OSError):
        os.killpg(stack.pids[name], signal.SIGKILL)
    time.sleep(down_s)
    devstack.restart_function(stack, name)


def stop_database(stack: devstack.Stack) -> StoppedDatabase:
    """Stop the stack's embedded Postgres (fast shutdown), remembering its socket; the data
    directory is asked of the server itself, so a stack on a test session's server works too."""
    import sqlalchemy as sa

    from ragline.db import engine as db

    with db.owner_session() as session:
        pgdata = Path(str(session.scalar(sa.text("SHOW data_directory"))))
    db.reset_engines()
    server = embedded.status(pgdata)
    if server is None:
        raise RuntimeError("the stack's embedded database is not running")
    embedded.stop(pgdata)
    return StoppedDatabase(server.pgdata, server.socket_dir, server.port)


def start_database(stopped: StoppedDatabase) -> None:
    """Start it again on the same socket and port, so every function's URL still works."""
    cmd = [
        str(embedded.bin_path("pg_ctl")),
        "-D",
        str(stopped.pgdata),
        "-w",
        "-o",
        '-h ""',
        "-o",
        f"-k {stopped.socket_dir}",
        "-o",
        f"-p {stopped.port}",
        "-l",
        str(stopped.pgdata / "restart.log"),
        "start",
    ]
    if os.geteuid() == 0:  # pgserver runs postgres as its own user when we are root
        import shlex

        cmd = ["su", "-s", "/bin/sh", "pgserver", "-c", shlex.join(cmd)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def restart_emulator(stack: devstack.Stack, down_s: float = 0.0) -> None:
    """Kill the Cloud Tasks emulator (its queued tasks are lost: they live in its memory) and
    start a fresh one on the same port."""
    devstack.kill(stack.pids["tasks-emulator"], timeout=5)
    time.sleep(down_s)
    settings = get_settings()
    port = int(stack.emulator.rsplit(":", 1)[1])
    proc = devstack.start_emulator(port, settings.ragline_home / "logs")
    devstack.wait_port(port, proc, "tasks-emulator", 30)
    stack.pids["tasks-emulator"] = proc.pid
    devstack.state_file(settings).write_text(json.dumps(asdict(stack), indent=2))
