"""Shared bench plumbing: a scratch embedded database and result recording."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@contextmanager
def scratch_database(shared_buffers: str | None = None) -> Iterator[str]:
    """A fresh embedded server + migrated database for one bench run (stopped afterwards).
    `shared_buffers` (e.g. "6GB"): the server's buffer cache, instead of the embedded
    default of 128 MB, which a table of a million chunks (~4 GB with its indexes) overflows
    where a production database (Cloud SQL: about a third of the instance's memory) would not."""
    from ragline.core.config import get_settings
    from ragline.db import engine as db
    from ragline.dev import embedded, migrate

    home = Path(tempfile.mkdtemp(prefix="rlb-", dir="/tmp"))
    server = embedded.start(home / "pg")
    if shared_buffers is not None:
        import pg8000.native

        sock = str(server.socket)
        conn = pg8000.native.Connection(embedded.OWNER, unix_sock=sock, database="postgres")
        conn.run(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        conn.close()
        server = embedded.restart(home / "pg")
    try:
        embedded.ensure_database(server, "bench")
        url = server.url("bench")
        os.environ.update({"DATABASE_URL": url, "RAGLINE_HOME": str(home)})
        get_settings.cache_clear()
        db.reset_engines()
        migrate.upgrade("head")
        yield url
    finally:
        db.reset_engines()
        embedded.stop(home / "pg")
        shutil.rmtree(home, ignore_errors=True)


def exit_on_sigterm() -> None:
    """SIGTERM exits normally, so `finally` blocks stop the servers a bench started."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 2) if values else float("nan"),
        "p95_ms": round(percentile(values, 0.95), 2),
    }


def record(name: str, result: dict[str, Any]) -> None:
    """Print the result as one JSON object and append it to bench/results/<name>.jsonl."""
    result = {
        "bench": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # run_all.py sets BENCH_PASS (default / quick); a script run by hand is "manual".
        "pass": os.environ.get("BENCH_PASS", "manual"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        **result,
    }
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / f"{name}.jsonl").open("a") as fh:
        fh.write(json.dumps(result) + "\n")
    print(json.dumps(result, indent=2))
