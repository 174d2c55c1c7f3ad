"""The local stack's event deliverer (ragline.dev.events) on the real emulator: what it sees
in the bucket becomes binary-mode CloudEvents that functions-framework parses and
`ragline.api.objects.object_event` turns into ObjectEvents; failures are retried; a restart
delivers what was missed; RAGLINE_DUPLICATE_EVENTS delivers twice."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from ragline.cloud.gcp import storage
from ragline.cloud.gcp.cloud_tasks import TASK_SECRET_HEADER
from ragline.core.config import Settings
from ragline.dev import events, storage_emulator
from ragline.dev.devstack import free_port
from ragline.ingest.objects import ObjectEvent

ON_UPLOAD = """
import functions_framework
from ragline.api.objects import object_event

SEEN = []


@functions_framework.cloud_event
def on_upload(cloud_event):
    SEEN.append((object_event(cloud_event), dict(cloud_event.get_attributes())))
"""


@dataclass
class Receiver:
    """A real functions-framework CloudEvent function (test client), failing on demand."""

    client: Any
    module: Any
    fail_next: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)

    def post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        self.headers.append(headers)
        if self.fail_next:
            self.fail_next -= 1
            return 503
        return int(self.client.post("/", headers=headers, data=body).status_code)

    @property
    def seen(self) -> list[ObjectEvent]:
        return [event for event, _ in self.module.SEEN]


@pytest.fixture()
def receiver(tmp_path: Path) -> Receiver:
    source = tmp_path / "main.py"
    source.write_text(ON_UPLOAD)
    app = functions_framework.create_app(target="on_upload", source=str(source))
    return Receiver(app.test_client(), sys.modules["main"])


@pytest.fixture()
def bucket(gcs: Settings, gcs_emulator: tuple[str, Path]) -> Iterator[str]:
    """A bucket of the test's own: the deliverer sees nothing of other tests."""
    name = f"events-{uuid.uuid4().hex[:12]}"
    storage_emulator.ensure_bucket(gcs_emulator[0], name)
    yield name


def _deliverer(bucket: str, receiver: Receiver, state: Path, **options: Any) -> events.Deliverer:
    return events.Deliverer(
        url="http://on-upload.invalid/",
        bucket=bucket,
        state_path=state,
        secret="task-secret",
        post=receiver.post,
        min_backoff_s=0.01,
        say=lambda _line: None,
        **options,
    )


def test_uploads_overwrites_and_deletes_become_object_events(
    bucket: str, receiver: Receiver, tmp_path: Path
) -> None:
    deliverer = _deliverer(bucket, receiver, tmp_path / "events.json")
    name = f"orgs/{uuid.uuid4()}/{uuid.uuid4()}/Résumé 2026.pdf"
    first = storage.upload_object(bucket, name, b"%PDF-1 one", "application/pdf")
    assert deliverer.poll() == 1 and deliverer.deliver_due() == 1
    second = storage.upload_object(bucket, name, b"%PDF-1 second", "application/pdf")
    assert deliverer.poll() == 2 and deliverer.deliver_due() == 2
    storage.delete_object(bucket, name)
    assert deliverer.poll() == 1 and deliverer.deliver_due() == 1
    assert deliverer.poll() == 0
    pdf, size = "application/pdf", len(b"%PDF-1 second")
    assert receiver.seen == [
        ObjectEvent("finalized", bucket, name, first, pdf, 10, receiver.seen[0].event_id),
        ObjectEvent("finalized", bucket, name, second, pdf, size, receiver.seen[1].event_id),
        ObjectEvent("deleted", bucket, name, first, pdf, 10, receiver.seen[2].event_id),
        ObjectEvent("deleted", bucket, name, second, pdf, size, receiver.seen[3].event_id),
    ]
    assert len({e.event_id for e in receiver.seen}) == 4
    _, attributes = receiver.module.SEEN[0]
    assert attributes["type"] == "google.cloud.storage.object.v1.finalized"
    assert attributes["source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket}"
    assert attributes["subject"].startswith("objects/orgs/")
    assert "%20" in attributes["subject"] and "%C3%A9" in attributes["subject"]
    assert all(h[TASK_SECRET_HEADER] == "task-secret" for h in receiver.headers)


def test_failed_deliveries_are_retried_with_backoff(
    bucket: str, receiver: Receiver, tmp_path: Path
) -> None:
    deliverer = _deliverer(bucket, receiver, tmp_path / "events.json")
    storage.upload_object(bucket, "orgs/a/b/c.txt", b"x", "text/plain")
    receiver.fail_next = 2
    deliverer.poll()
    assert deliverer.deliver_due() == 0
    assert deliverer.deliver_due(now=0.0) == 0  # not due yet: nothing posted
    assert len(receiver.headers) == 1
    deadline = time.monotonic() + 5
    while not receiver.seen and time.monotonic() < deadline:
        deliverer.deliver_due()
        time.sleep(0.01)
    assert len(receiver.headers) == 3 and len(receiver.seen) == 1
    assert deliverer.queue == []


def test_a_restarted_deliverer_sends_what_it_missed_and_nothing_twice(
    bucket: str, receiver: Receiver, tmp_path: Path
) -> None:
    state = tmp_path / "events.json"
    first = _deliverer(bucket, receiver, state)
    storage.upload_object(bucket, "orgs/a/b/one.txt", b"1", "text/plain")
    first.poll()
    receiver.fail_next = 1
    first.deliver_due()  # fails: still queued when the process "dies"
    storage.upload_object(bucket, "orgs/a/b/two.txt", b"2", "text/plain")
    second = _deliverer(bucket, receiver, state)
    assert second.poll() == 1
    assert second.deliver_due() == 2
    assert [e.name for e in receiver.seen] == ["orgs/a/b/one.txt", "orgs/a/b/two.txt"]
    assert _deliverer(bucket, receiver, state).poll() == 0


def test_duplicate_mode_delivers_each_event_twice(
    bucket: str, receiver: Receiver, tmp_path: Path
) -> None:
    deliverer = _deliverer(bucket, receiver, tmp_path / "events.json", duplicate=True)
    storage.upload_object(bucket, "orgs/a/b/c.txt", b"x", "text/plain")
    deliverer.poll()
    assert deliverer.deliver_due() == 2
    assert receiver.seen[0] == receiver.seen[1]


def test_urllib_post_reports_statuses(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/ok", method="POST").respond_with_response(
        Response(status=204)
    )
    httpserver.expect_oneshot_request("/bad", method="POST").respond_with_data("no", status=500)
    assert events.urllib_post(httpserver.url_for("/ok"), {"ce-id": "1"}, b"{}") == 204
    assert events.urllib_post(httpserver.url_for("/bad"), {}, b"{}") == 500
    assert events.urllib_post(f"http://127.0.0.1:{free_port()}/", {}, b"{}") == 0
