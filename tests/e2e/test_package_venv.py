"""A packaged function carries only what runs, and runs from its own requirements.txt.

`ragline package` output for `search`, installed into a fresh virtualenv (no ragline, no dev
extras), served by functions-framework, answers a real search on the test database."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ragline.db import tenancy
from ragline.dev import packaging
from ragline.dev.checkout import repo_root
from ragline.ingest import documents, ingestion

from ..integration.helpers import make_tenant

pytestmark = pytest.mark.e2e


def test_a_packaged_function_carries_no_dev_test_or_aws_code(tmp_path: Path) -> None:
    (folder,) = packaging.build_packages(repo_root(), tmp_path / "out", ["search"])
    package = folder / "ragline"
    for absent in ("dev", "testing", "cloud/aws", "api/aws_lambda.py"):
        assert not (package / absent).exists(), absent
    for present in ("api", "core", "db", "ingest", "retrieval", "cloud/gcp", "guardrails"):
        assert (package / present).is_dir(), present
    requirements = (folder / "requirements.txt").read_text()
    for name in ("typer", "alembic", "pgserver", "pytest", "boto3"):
        assert name not in requirements, name
    assert requirements.startswith("-c constraints.txt")
    sizes = sum(f.stat().st_size for f in package.rglob("*.py"))
    assert sizes < 600_000, sizes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_packaged_search_imports_and_answers_in_a_fresh_virtualenv(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder,) = packaging.build_packages(repo_root(), tmp_path / "out", ["search"])
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-r", "requirements.txt"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    python = str(venv / "bin" / "python")
    probe = subprocess.run(
        [python, "-c", "import ragline.dev"], cwd=folder, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "No module named 'ragline.dev'" in probe.stderr

    tenant = make_tenant("packaged")
    monkeypatch.setenv("EMBEDDING_PROVIDER", "minilm")
    from ragline.core.config import get_settings

    get_settings.cache_clear()
    with tenancy.tenant_session(tenant.org_id) as session:
        made = documents.create(
            session,
            documents.NewDocument(
                title="Lighthouses", text="A lighthouse guides ships at night with a beam."
            ),
        )
    ingestion.start_pipeline(tenant.org_id, made)

    port = _free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "EMBEDDING_PROVIDER": "minilm",
        "MINILM_TOKENIZER_PATH": str(folder / packaging.TOKENIZER_FILENAME),
        "QUEUE_BACKEND": "inline",
    }
    server = subprocess.Popen(
        [str(venv / "bin" / "functions-framework"), "--target=search", f"--port={port}"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                time.sleep(0.2)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/",
            data=json.dumps({"query": "what guides ships at night?", "mode": "vector"}).encode(),
            headers={**tenant.headers, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            body = json.loads(resp.read())
        assert body["results"] and body["results"][0]["title"] == "Lighthouses"
    finally:
        server.terminate()
        server.wait(10)
