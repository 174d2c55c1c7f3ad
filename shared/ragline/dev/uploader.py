"""`ragline upload`: files to the local stack the way a client uploads them — ask the
`uploads` function for a signed URL, PUT the file to Cloud Storage (the emulator), then poll
the `documents` function until the object's document is ready or failed.

A document belongs to an upload when its `source_uri` is `gs://<bucket>/<object>`, or its
`metadata` names the `upload_id` or the `object` (what `on_upload` records).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ragline.dev.devstack import Stack

#: File suffix → the content type an upload declares (what `ingest.extract` reads).
CONTENT_TYPES = {
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".htm": "text/html",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
}
CHUNK_BYTES = 256 * 1024
FINAL_STATUSES = ("ready", "failed")


def content_type_for(path: Path) -> str | None:
    return CONTENT_TYPES.get(path.suffix.lower())


def collect(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files to upload, files skipped): folders are walked recursively without hidden files
    or folders; a file of a type extraction cannot read is skipped."""
    chosen: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found = [path]
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
        for file in found:
            (chosen if content_type_for(file) else skipped).append(file)
    return list(dict.fromkeys(chosen)), skipped


@dataclass
class Upload:
    path: Path
    content_type: str
    size: int
    upload_id: str = ""
    object: str = ""
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    document: dict[str, Any] = field(default_factory=dict)


def http_client() -> Any:
    """An httpx client for the local functions and the emulator (no proxies from the env)."""
    import httpx

    return httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0), trust_env=False)


def request_url(client: Any, stack: Stack, key: str, upload: Upload) -> None:
    """Ask the `uploads` function for a signed URL (sets `upload_id` and `object`)."""
    body = {"filename": upload.path.name, "content_type": upload.content_type, "size": upload.size}
    response = client.post(
        stack.functions["uploads"], json=body, headers={"Authorization": f"Bearer {key}"}
    )
    answer = response.json()
    if response.status_code != 201:
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        raise RuntimeError(f"uploads answered {response.status_code}: {error.get('message')}")
    upload.upload_id, upload.object = answer["upload_id"], answer["object"]
    upload.url, upload.headers = answer["url"], answer["headers"]


def put_file(client: Any, upload: Upload, on_bytes: Callable[[int], None]) -> None:
    """PUT the file to its signed URL, streamed, reporting each block sent."""

    def blocks() -> Iterator[bytes]:
        with upload.path.open("rb") as fh:
            while block := fh.read(CHUNK_BYTES):
                on_bytes(len(block))
                yield block

    response = client.put(
        upload.url, content=blocks(), headers={**upload.headers, "Content-Length": str(upload.size)}
    )
    if response.status_code >= 300:
        raise RuntimeError(f"Cloud Storage answered {response.status_code} to the PUT")


def owns(doc: dict[str, Any], upload: Upload, bucket: str) -> bool:
    """Whether `doc` is the document made from `upload` (see the module docstring)."""
    metadata = doc.get("metadata") or {}
    return (
        doc.get("source_uri") == f"gs://{bucket}/{upload.object}"
        or metadata.get("upload_id") == upload.upload_id
        or metadata.get("object") == upload.object
    )


def wait_documents(
    client: Any,
    stack: Stack,
    key: str,
    uploads: list[Upload],
    timeout: float,
    on_progress: Callable[[int], None],
    poll_s: float = 1.0,
) -> None:
    """Poll the documents list until each upload's document is ready or failed (sets
    `document`); raises TimeoutError naming the uploads still waiting."""
    waiting = [u for u in uploads if u.object and not u.error]
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {key}"}
    while True:
        cursor: str | None = None
        for _ in range(10):  # newest first: fresh uploads are on the first pages
            params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
            page = client.get(stack.functions["documents"], params=params, headers=headers).json()
            for doc in page.get("documents", []):
                for upload in waiting:
                    if owns(doc, upload, stack.upload_bucket):
                        upload.document = doc
            cursor = page.get("next_cursor")
            if not cursor:
                break
        done = [u for u in waiting if u.document.get("status") in FINAL_STATUSES]
        on_progress(len(done))
        if len(done) == len(waiting):
            return
        if time.monotonic() > deadline:
            names = ", ".join(u.path.name for u in waiting if u not in done)
            raise TimeoutError(f"not ready after {timeout:.0f}s: {names}")
        time.sleep(poll_s)


@contextmanager
def org_key(stack: Stack, org: str | None) -> Iterator[str]:
    """An API key for `org`: the stack's demo key for the demo org, else a read/write key
    made for this command (expiring within the hour) and revoked afterwards."""
    from ragline.dev import seed

    if org is None or org == seed.DEMO_ORG:
        yield stack.api_key
        return
    from ragline.db import orgs, tenancy
    from ragline.db.engine import owner_session
    from ragline.guardrails import apikeys

    with owner_session() as session:
        org_id = orgs.org_id_by_slug(session, org)
        if org_id is None:
            raise LookupError(f"no org {org!r}")
        tenancy.bind_org(session, org_id)
        expires = datetime.now(UTC) + timedelta(hours=1)
        row, raw = apikeys.create_key(
            session, "ragline-upload", ["read", "write"], expires_at=expires
        )
        key_id: uuid.UUID = row.id
    try:
        yield raw
    finally:
        with owner_session() as session:
            tenancy.bind_org(session, org_id)
            apikeys.revoke_key(session, key_id)


def delete(stack: Stack, target: str) -> bool:
    """Delete an uploaded object (`orgs/…` in the stack's bucket, or `gs://bucket/orgs/…`);
    its `deleted` event then reaches `on_upload`. False when there was nothing to delete."""
    from ragline.cloud.gcp import storage
    from ragline.core.config import get_settings

    bucket, name = stack.upload_bucket, target
    if target.startswith("gs://"):
        bucket, _, name = target.removeprefix("gs://").partition("/")
    if not name.startswith("orgs/"):
        raise ValueError(f"not an uploaded object: {target!r} (orgs/<org>/<upload>/<file>)")
    settings = get_settings().model_copy(update={"storage_emulator_host": stack.storage})
    return storage.delete_object(bucket, name, settings=settings)
