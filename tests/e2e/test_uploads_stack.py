"""File uploads on the real local stack: `ragline upload` asks the `uploads` function for
signed URLs and PUTs the demo samples into the Cloud Storage emulator; with an `on_upload`
function in the checkout, the samples become searchable documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragline.cloud.gcp import storage
from ragline.core.config import get_settings
from ragline.dev import cli, devstack, samples

from .conftest import call

pytestmark = pytest.mark.e2e

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def _objects(stack: devstack.Stack) -> dict[str, str]:
    """File name → object name of everything in the stack's upload bucket."""
    settings = get_settings().model_copy(update={"storage_emulator_host": stack.storage})
    listed = storage.list_objects(stack.upload_bucket, "orgs/", settings=settings)
    return {o.name.rsplit("/", 1)[1]: o.name for o in listed}


def test_cli_uploads_into_the_stack_bucket_and_deletes(
    stack: devstack.Stack, tmp_path: Path
) -> None:
    written = samples.write_samples(tmp_path / "samples")
    (tmp_path / "samples" / "photo.png").write_bytes(b"\x89PNG")
    runner = CliRunner()
    result = runner.invoke(cli.app, ["upload", str(tmp_path / "samples"), "--no-wait"])
    assert result.exit_code == 0, result.output
    assert "3/3 uploaded" in result.output
    objects = _objects(stack)
    assert {p.name for p in written} <= set(objects)
    gone = objects[samples.HTML_NAME]
    result = runner.invoke(cli.app, ["upload", "--delete", gone])
    assert result.exit_code == 0 and f"deleted {gone}" in result.output
    assert samples.HTML_NAME not in _objects(stack)


def test_uploads_function_refuses_what_extraction_cannot_read(stack: devstack.Stack) -> None:
    status, body, _ = call(
        stack.functions["uploads"],
        method="POST",
        body={"filename": "photo.png", "content_type": "image/png", "size": 10},
        headers={"Authorization": f"Bearer {stack.api_key}"},
    )
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")


def test_uploaded_samples_become_searchable(stack: devstack.Stack, tmp_path: Path) -> None:
    samples.write_samples(tmp_path / "samples")
    result = CliRunner().invoke(cli.app, ["upload", str(tmp_path / "samples"), "--timeout", "300"])
    assert result.exit_code == 0, result.output
    for fact in samples.FACTS:
        status, body, _ = call(
            stack.functions["search"],
            method="POST",
            body={"query": fact.question, "top_k": 3},
            headers={"Authorization": f"Bearer {stack.api_key}"},
        )
        assert status == 200, body
        texts = " ".join(hit["text"] for hit in body["results"])
        assert fact.answer in texts, (fact.question, texts[:300])
        if fact.page is not None:  # the PDF: the hit holding the answer names its page
            (hit,) = [h for h in body["results"] if fact.answer in h["text"]][:1]
            assert hit["page"] == fact.page, hit
