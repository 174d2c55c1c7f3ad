"""The Cloud Storage adapter against the real local emulator (fake-gcs-server): exact
generations, gone objects, deletes, listings and V4 signed PUT URLs."""

from __future__ import annotations

import urllib.parse
import uuid
from pathlib import Path

import httpx
import pytest

from ragline.cloud.gcp import storage
from ragline.core.config import Settings
from ragline.core.errors import ObjectGoneError, TransientError
from ragline.dev.storage_emulator import SIGNER_EMAIL

from .conftest import UPLOAD_BUCKET


def _name(filename: str = "notes.txt") -> str:
    return f"orgs/{uuid.uuid4()}/{uuid.uuid4()}/{filename}"


def test_read_exact_generation_and_gone_after_overwrite(gcs: Settings) -> None:
    name = _name()
    first = storage.upload_object(UPLOAD_BUCKET, name, b"first", "text/plain")
    assert storage.read_object(UPLOAD_BUCKET, name, first) == b"first"
    second = storage.upload_object(UPLOAD_BUCKET, name, b"second", "text/plain")
    assert second > first
    assert storage.read_object(UPLOAD_BUCKET, name, second) == b"second"
    with pytest.raises(ObjectGoneError) as gone:
        storage.read_object(UPLOAD_BUCKET, name, first)
    assert gone.value.code == "object_gone"


def test_delete_is_repeatable_and_leaves_nothing_to_read(gcs: Settings) -> None:
    name = _name()
    generation = storage.upload_object(UPLOAD_BUCKET, name, b"x", "text/plain")
    assert storage.delete_object(UPLOAD_BUCKET, name, generation) is True
    assert storage.delete_object(UPLOAD_BUCKET, name) is False
    with pytest.raises(ObjectGoneError):
        storage.read_object(UPLOAD_BUCKET, name, generation)


def test_upload_from_a_file_and_list_with_generations(gcs: Settings, tmp_path: Path) -> None:
    org = uuid.uuid4()
    path = tmp_path / "big.pdf"
    path.write_bytes(b"%PDF-1.7\n" + b"0" * (3 * 1024 * 1024))  # over one resumable chunk
    name = f"orgs/{org}/{uuid.uuid4()}/big.pdf"
    generation = storage.upload_object(UPLOAD_BUCKET, name, path, "application/pdf")
    listed = storage.list_objects(UPLOAD_BUCKET, f"orgs/{org}/")
    assert [(o.name, o.generation, o.size, o.content_type) for o in listed] == [
        (name, generation, path.stat().st_size, "application/pdf")
    ]
    assert listed[0].updated is not None and listed[0].crc32c


def test_signed_put_url_round_trip(gcs: Settings) -> None:
    name = _name("Résumé #2.pdf")
    url = storage.signed_put_url(
        UPLOAD_BUCKET,
        name,
        "application/pdf",
        600,
        headers={"x-goog-content-length-range": "0,100"},
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Credential"][0].startswith(SIGNER_EMAIL + "/")
    assert query["X-Goog-Expires"] == ["600"]
    assert query["X-Goog-SignedHeaders"] == ["content-type;host;x-goog-content-length-range"]
    response = httpx.put(
        url,
        content=b"%PDF-1.4 small",
        headers={"Content-Type": "application/pdf", "x-goog-content-length-range": "0,100"},
    )
    assert response.status_code == 200, response.text
    [stored] = storage.list_objects(UPLOAD_BUCKET, name)
    assert (stored.name, stored.content_type, stored.size) == (name, "application/pdf", 14)
    assert storage.read_object(UPLOAD_BUCKET, name, stored.generation) == b"%PDF-1.4 small"


def test_unreachable_storage_is_transient(gcs: Settings) -> None:
    from ragline.dev.devstack import free_port

    down = gcs.model_copy(
        update={"storage_emulator_host": f"http://127.0.0.1:{free_port()}", "storage_timeout_s": 1}
    )
    storage.reset_clients()
    with pytest.raises(TransientError):
        storage.read_object(UPLOAD_BUCKET, _name(), 1, settings=down)
    storage.reset_clients()
