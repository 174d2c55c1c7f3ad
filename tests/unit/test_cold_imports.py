"""A cold start loads functions-framework and the light `ragline.api` wrappers only: the
database, validation, logging and model libraries load with the first request that needs them
(issue 12: cold start; `bench/coldstart.py` measures the time)."""

from __future__ import annotations

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
