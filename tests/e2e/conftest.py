"""The real local stack: functions-framework processes, the Cloud Tasks emulator, Postgres."""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ragline.core.config import get_settings
from ragline.db import engine as db
from ragline.dev import devstack


@pytest.fixture(scope="session")
def stack(database_url: str) -> Iterator[devstack.Stack]:
    home = tempfile.mkdtemp(prefix="rle-", dir="/tmp")
    os.environ["RAGLINE_HOME"] = home
    get_settings.cache_clear()
    started = devstack.start(progress=lambda _msg: None)
    try:
        yield started
    finally:
        devstack.stop(started)
        db.reset_engines()


def call(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One HTTP request; returns (status, decoded JSON body, headers) for any status."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read()
            return resp.status, (json.loads(text) if text else {}), dict(resp.headers)
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, (json.loads(text) if text else {}), dict(err.headers)


def wait_ready(
    stack: devstack.Stack, key: str, doc_ids: list[str], timeout: float = 180
) -> dict[str, dict[str, Any]]:
    """Poll the documents function until every document is ready or failed."""
    deadline = time.monotonic() + timeout
    docs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for doc_id in doc_ids:
            _, docs[doc_id], _ = call(
                stack.functions["documents"] + doc_id, headers={"Authorization": f"Bearer {key}"}
            )
        if all(d.get("status") in ("ready", "failed") for d in docs.values()):
            return docs
        time.sleep(0.3)
    raise TimeoutError(
        f"documents not ready in {timeout}s: {[d.get('status') for d in docs.values()]}"
    )
