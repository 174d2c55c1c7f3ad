"""The local Cloud Tasks emulator with concurrent dispatch (`ragline/dev/tasks_emulator.py`):
the real emulator and the real client, delivering to a small HTTP server that records what
arrives."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ragline.cloud.gcp import cloud_tasks
from ragline.core.config import get_settings
from ragline.dev import devstack
from ragline.ingest.queues import queue_name


class Target:
    """Answers every task after `delay_s`; 500 for bodies with `"fail": true`."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.seen: Counter[str] = Counter()
        self.times: dict[str, float] = {}
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with target.lock:
                    target.in_flight += 1
                    target.most_in_flight = max(target.most_in_flight, target.in_flight)
                    target.seen[body["id"]] += 1
                    target.times.setdefault(body["id"], time.monotonic())
                time.sleep(target.delay_s)
                with target.lock:
                    target.in_flight -= 1
                self.send_response(500 if body.get("fail") else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


@pytest.fixture()
def emulator(tmp_path: Path, configure: Callable[..., None]) -> Iterator[Callable[[float], Target]]:
    started: list[Any] = []

    def start(delay_s: float) -> Target:
        target = Target(delay_s)
        port = devstack.free_port()
        configure(
            task_local_dispatches="2",
            cloud_tasks_emulator_host=f"localhost:{port}",
            function_urls=json.dumps({"embed": target.url}),
        )
        proc = devstack.start_emulator(port, tmp_path)
        started.append((proc, target))
        devstack.wait_port(port, proc, "tasks emulator", 30)
        return target

    yield start
    for proc, target in started:
        proc.terminate()
        proc.wait(10)
        target.server.shutdown()
    cloud_tasks._clients.clear()


def _enqueue(task_id: str, delay_s: float = 0, **extra: Any) -> None:
    settings = get_settings()
    cloud_tasks.create_task(
        "embed",
        queue_name("embed", settings),
        {"id": task_id, **extra},
        f"t-{task_id}",
        settings,
        delay_s=delay_s,
    )


def _wait(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_tasks_of_one_queue_are_delivered_two_at_a_time_and_each_once(
    emulator: Callable[[float], Target],
) -> None:
    target = emulator(0.3)
    ids = [f"a{i}" for i in range(6)]
    started = time.monotonic()
    for task_id in ids:
        _enqueue(task_id)
    _wait(lambda: sum(target.seen.values()) == len(ids) and target.in_flight == 0)
    elapsed = time.monotonic() - started
    assert target.seen == Counter(ids)
    assert target.most_in_flight == 2  # the setting, never more
    assert elapsed < 6 * 0.3  # not one at a time
    time.sleep(0.5)
    assert sum(target.seen.values()) == len(ids)  # nothing delivered again


def test_failed_tasks_are_retried_and_scheduled_ones_wait(
    emulator: Callable[[float], Target],
) -> None:
    target = emulator(0.0)
    enqueued = time.monotonic()
    _enqueue("later", delay_s=1.5)
    _enqueue("fails", fail=True)
    _enqueue("ok")
    _wait(lambda: target.seen["fails"] >= 3 and target.seen["ok"] == 1)
    _wait(lambda: target.seen["later"] == 1)
    assert target.times["later"] - enqueued >= 1.4
    assert target.seen["ok"] == 1 and target.seen["later"] == 1


@pytest.mark.parametrize(
    ("shebang", "expected"),
    [
        ("#!{python}\n", "{python}"),
        ("#!/usr/bin/env python3\n", "which:python3"),
        ("#!/no/such/python\n", None),
        ("import sys\n", None),
    ],
)
def test_the_emulator_runs_under_its_own_installations_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shebang: str, expected: str | None
) -> None:
    import shutil
    import sys

    from ragline.core.errors import ConfigurationError

    script = tmp_path / "gcloud-tasks-emulator"
    script.write_text(shebang.format(python=sys.executable) + "print('emulator')\n")
    monkeypatch.setenv("TASKS_EMULATOR_BIN", str(script))
    if expected is None:
        with pytest.raises(ConfigurationError):
            devstack._emulator_python()
        return
    want = shutil.which("python3") if expected == "which:python3" else sys.executable
    assert devstack._emulator_python() == want
