"""A cold start loads functions-framework and the light `ragline.api` wrappers only: the
database, validation, settings and model libraries load with the first request that needs
them, and the request a cold start is measured with (`bench/coldstart.py`: a refused method,
or health's liveness) needs none of them (issue 12: cold start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
HEAVY = (
    "sqlalchemy",
    "pg8000",
    "pgvector",
    "pydantic",
    "pydantic_settings",
    "structlog",
    "numpy",
    "onnxruntime",
    "google.cloud.tasks_v2",
    "google.cloud.sql.connector",
    "google.cloud.storage",
    "boto3",
    "httpx",
)


@pytest.mark.parametrize("name", sorted(p.parent.name for p in FUNCTIONS.glob("*/main.py")))
def test_importing_a_function_loads_no_heavy_library(name: str) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import main; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(FUNCTIONS / name)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "[]", out.stdout


#: Never imported by a function, not even by a library it uses: structlog's console renderer
#: imports it when it is installed (dev environments), at a 25 ms cost.
NEVER = ("rich",)
#: What the first request of `bench/coldstart.py` sends, and its answer (see its `probe`).
PROBE = {"health": ("GET", 200)}
ISOLATED = {
    "DATABASE_URL": "postgresql+pg8000://nobody@127.0.0.1:9/none",
    "QUEUE_BACKEND": "inline",
    "ENVIRONMENT": "test",
    "TASK_AUTH": "secret",
}


def _run(code: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **ISOLATED},
        timeout=300,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("name", sorted(p.parent.name for p in FUNCTIONS.glob("*/main.py")))
def test_the_first_response_loads_nothing_heavy(name: str) -> None:
    """The cold-start probe is answered (and logged) without settings, a logging framework,
    the database layer or rich: its cost over a hello-world is the import alone."""
    method, status = PROBE.get(name, ("PUT", 405))
    code = (
        "import sys, json, functions_framework; sys.path.insert(0, sys.argv[1]); "
        "app = functions_framework.create_app(target=sys.argv[2], source=sys.argv[1] + "
        "'/main.py'); resp = app.test_client().open('/', method=sys.argv[3], data=b''); "
        f"print(json.dumps([resp.status_code, sorted(m for m in {HEAVY + NEVER!r} "
        "if m in sys.modules)]))"
    )
    answer = _run(code, str(FUNCTIONS / name), name, method)
    assert json.loads(answer) == [status, []], answer


WARM_UP = """
import json, os, sys, threading
sys.path.insert(0, sys.argv[1])
import functions_framework
from ragline.api import tasks

tasks.WARM_UP_IDLE_S = float(sys.argv[2])
client = functions_framework.create_app(target="chunk", source=sys.argv[1] + "/main.py")
client = client.test_client()
pid = os.fork()
if pid:
    os.waitpid(pid, 0)
    sys.exit(0)
seen = ["ragline.ingest.pipeline" in sys.modules]  # right after the fork
client.put("/")  # refused at the door
warm_up = [t for t in threading.enumerate() if t.name == "chunk-warm-up"]
seen.append("ragline.ingest.pipeline" in sys.modules and warm_up[0].is_alive())
client.post("/", json={})  # a task (here refused by the caller check)
warm_up[0].join(240)
seen.append(not warm_up[0].is_alive() and "ragline.ingest.pipeline" in sys.modules)
print(json.dumps(seen), flush=True)
os._exit(0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="gunicorn forks its worker")
def test_a_stage_worker_warms_up_with_its_first_task_not_before() -> None:
    """Forking loads nothing; a refused request starts nothing; the first POST starts the
    warm-up (imports, connection, model) alongside the caller check."""
    assert json.loads(_run(WARM_UP, str(FUNCTIONS / "chunk"), "3600")) == [False, False, True]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="gunicorn forks its worker")
def test_an_idle_stage_worker_warms_up_without_a_task() -> None:
    """With CPU between requests (the local stack), a worker that got no task warms anyway."""
    start = WARM_UP.index("seen = ")
    code = WARM_UP[:start] + (
        "warm_up = [t for t in threading.enumerate() if t.name == 'chunk-warm-up']\n"
        "warm_up[0].join(240)\n"
        "print(json.dumps([not warm_up[0].is_alive(), 'ragline.ingest.pipeline' in sys.modules]),"
        " flush=True)\n"
        "os._exit(0)\n"
    )
    assert json.loads(_run(code, str(FUNCTIONS / "chunk"), "0")) == [True, True]
