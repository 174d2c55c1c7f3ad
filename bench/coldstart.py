"""Cold start of every function as packaged by `ragline package`: process start → first
response, and the import time of its `main.py`, against a bare functions-framework
hello-world measured in the same run.

The first request is one the function answers without a database, so the number is the
process + import + first-request cost, not a connection: `GET /` for `health` (liveness) and a
`PUT /` for every other function (refused with 405 by the method check, which runs before
authentication). Each target is started `--starts` times (median reported); import time is
`import main` in a fresh interpreter, `--imports` times, plus the heaviest top-level imports
from one `python -X importtime` run.

Every target runs in a virtualenv installed from its package's own `requirements.txt` (what
Cloud Functions installs: no dev tools, no `rich`), one per distinct requirements file, the
hello-world in the one without the embedder's packages; `--venv current` runs them all in
this interpreter instead (faster, but it carries the dev extras).

    .venv/bin/python bench/coldstart.py [--starts 5] [--imports 5] [--only search,health]
        [--venv package|current] [--venv-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import exit_on_sigterm, record

HELLO = '''"""A bare functions-framework function: the baseline."""

import functions_framework


@functions_framework.http
def hello(request):
    return "ok"
'''
#: Environment of the measured processes: nothing may reach a database or a cloud.
ISOLATED = {
    "DATABASE_URL": "postgresql+pg8000://nobody@127.0.0.1:9/none",
    "QUEUE_BACKEND": "inline",
    "EMBEDDING_PROVIDER": "hashing",
    "ENVIRONMENT": "local",
    "TASK_AUTH": "secret",
    "PYTHONUNBUFFERED": "1",
}


def say(message: str) -> None:
    print(f"[coldstart] {message}", file=sys.stderr, flush=True)


def probe(name: str) -> tuple[str, int]:
    """The request each function answers without a database, and its expected status."""
    return ("GET", 200) if name == "health" else ("PUT", 405)


def package_pythons(folders: list[Path], venv_dir: Path) -> dict[Path, Path]:
    """Each folder's interpreter: a virtualenv with its `requirements.txt` installed, one per
    distinct requirements (+ constraints) file, reused from `venv_dir` when complete."""
    pythons: dict[Path, Path] = {}
    for folder in folders:
        files = [folder / "requirements.txt", folder / "constraints.txt"]
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in files if f.exists()))
        venv = venv_dir / digest.hexdigest()[:16]
        if not (venv / ".installed").exists():
            say(f"installing {folder.name}'s requirements.txt into {venv}")
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "pip"), "install", "-q", "-r", "requirements.txt"]
            subprocess.run(pip, cwd=folder, check=True)
            (venv / ".installed").touch()
        pythons[folder] = venv / "bin" / "python"
    return pythons


def first_response(
    target: str,
    source: Path,
    env: dict[str, str],
    method: str,
    python: Path,
    timeout: float = 60,
) -> tuple[float, int]:
    """Seconds from Popen to the first HTTP response, and its status."""
    from ragline.dev import devstack

    port = devstack.free_port()
    ff = python.parent / "functions-framework"
    cmd = [str(ff), f"--target={target}", f"--source={source}", "--host=127.0.0.1"]
    cmd.append(f"--port={port}")
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env={**env, "PYTHONPATH": str(source.parent)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=source.parent,
        start_new_session=True,
    )
    try:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{target} exited with {proc.returncode}")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                conn.request(method, "/", body=b"" if method == "PUT" else None)
                status = conn.getresponse().status
                return time.perf_counter() - started, status
            except OSError:
                time.sleep(0.005)
            finally:
                conn.close()
        raise TimeoutError(f"{target} did not answer within {timeout:.0f}s")
    finally:
        devstack.kill(proc.pid)


def import_seconds(source: Path, env: dict[str, str], python: Path) -> float:
    """`import main` of `source` in a fresh interpreter (interpreter start excluded)."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); "
        "import main; print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [str(python), "-c", code, str(source.parent)],
        env={**env, "PYTHONPATH": str(source.parent)},
        capture_output=True,
        text=True,
        check=True,
        cwd=source.parent,
    )
    return float(out.stdout.strip().splitlines()[-1])


_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def heaviest_imports(
    source: Path, env: dict[str, str], python: Path, top: int = 6
) -> list[list[Any]]:
    """The direct imports of `main` by cumulative import time (ms), from one
    `python -X importtime` run (children are printed before their parent, one level deeper)."""
    out = subprocess.run(
        [str(python), "-X", "importtime", "-c", "import main"],
        env={**env, "PYTHONPATH": str(source.parent)},
        capture_output=True,
        text=True,
        check=True,
        cwd=source.parent,
    )
    children: list[tuple[str, int]] = []
    for line in out.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        depth, name, cumulative = len(match.group(3)), match.group(4), int(match.group(2))
        if depth <= 1:  # a top-level import closes: were the collected lines main's?
            if name == "main":
                ranked = sorted(children, key=lambda kv: -kv[1])[:top]
                return [[n, round(us / 1000, 1)] for n, us in ranked]
            children = []
        elif depth == 3:
            children.append((name, cumulative))
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5, help="process starts per function")
    parser.add_argument("--imports", type=int, default=5, help="import timings per function")
    parser.add_argument("--only", default="", help="comma-separated function names")
    parser.add_argument(
        "--venv",
        choices=("package", "current"),
        default="package",
        help="package: a virtualenv from each package's requirements.txt; current: this one",
    )
    parser.add_argument(
        "--venv-dir", type=Path, help="keep (and reuse) the package virtualenvs here"
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    exit_on_sigterm()

    from ragline.dev import devstack
    from ragline.dev.checkout import repo_root

    names = [n for n in devstack.function_names() if not args.only or n in args.only.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="rlbc-", dir="/tmp"))
    hello = scratch / "hello" / "main.py"
    hello.parent.mkdir()
    hello.write_text(HELLO)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DB_"))}
    env.update(ISOLATED)
    env["RAGLINE_HOME"] = str(scratch / "home")
    targets: list[tuple[str, str, Path]] = [("hello-world", "hello", hello)]
    # What is deployed: the `ragline package` folders (vendored ragline without dev/testing/AWS).
    from ragline.dev import packaging

    built = packaging.build_packages(repo_root(), scratch / "packages", names)
    targets += [(folder.name, folder.name, folder / "main.py") for folder in built]
    current = Path(sys.executable)
    pythons = {folder: current for folder in built}
    if args.venv == "package":
        pythons = package_pythons(built, args.venv_dir or scratch / "venvs")
    # The hello-world runs where the functions without the embedder's packages run.
    plain = [f for f in built if f.name not in packaging.EMBEDDING_FUNCTIONS] or built
    python_of = {source: pythons[source.parent] for _, _, source in targets[1:]}
    python_of[hello] = pythons[plain[0]] if built else current
    firsts: dict[str, list[float]] = {label: [] for label, _, _ in targets}
    statuses: dict[str, set[int]] = {label: set() for label, _, _ in targets}
    imports: dict[str, list[float]] = {label: [] for label, _, _ in targets}
    rows: dict[str, Any] = {}
    try:
        # Rounds over all targets, so a burst of load on the machine hits every target alike.
        for round_ in range(max(args.starts, args.imports)):
            say(f"round {round_ + 1}/{max(args.starts, args.imports)}")
            for label, target, source in targets:
                if round_ < args.starts:
                    method = "GET" if label == "hello-world" else probe(target)[0]
                    seconds, status = first_response(target, source, env, method, python_of[source])
                    firsts[label].append(seconds)
                    statuses[label].add(status)
                if round_ < args.imports:
                    imports[label].append(import_seconds(source, env, python_of[source]))
        for label, target, source in targets:
            method, expected = ("GET", 200) if label == "hello-world" else probe(target)
            rows[label] = {
                "request": f"{method} /",
                "status": sorted(statuses[label]),
                "expected_status": expected,
                "first_response_s": round(statistics.median(firsts[label]), 3),
                "first_response_all_s": [round(x, 3) for x in firsts[label]],
                "import_s": round(statistics.median(imports[label]), 3),
                "heaviest_imports_ms": heaviest_imports(source, env, python_of[source]),
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    base = rows["hello-world"]
    for label, row in rows.items():
        if label != "hello-world":
            row["first_response_ratio_vs_hello"] = round(
                row["first_response_s"] / base["first_response_s"], 2
            )
            row["import_ratio_vs_hello"] = round(row["import_s"] / base["import_s"], 2)
    result = {
        "functions": rows,
        "starts": args.starts,
        "imports": args.imports,
        "cpus": os.cpu_count(),
        "venv": args.venv,
        "how": {
            "first_response_s": "median seconds from Popen(functions-framework --target …) "
            "to the first HTTP response (GET / for health and hello-world, PUT / → 405 for "
            "the others: no database, no API key)",
            "import_s": "median seconds of `import main` in a fresh interpreter",
            "ratios": "function / hello-world, same run",
            "venv": "package: each target in a virtualenv installed from its package's "
            "requirements.txt (hello-world: the one without the embedder); current: the "
            "interpreter running the bench",
        },
    }
    if args.no_record:
        import json

        print(json.dumps(result, indent=2))
    else:
        record("coldstart", result)


if __name__ == "__main__":
    main()
