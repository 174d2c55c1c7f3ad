"""S3 under moto: objects put, overwritten and deleted send their notifications to an SQS
queue, which are received and parsed into ObjectEvents; `read_object` pins a version by
version id (versioned bucket) or by ETag (unversioned)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ragline.cloud.aws import s3
from ragline.core.config import Settings
from ragline.core.errors import ObjectGoneError
from ragline.ingest.objects import ObjectEvent
from tests.moto_s3 import BUCKET, REGION, mocked_s3, notified_queue

KEY = (
    "orgs/8f8e1a52-3c5e-4a36-9f0a-2a6f2c7f4b11/0d1c9e2a-6b8e-4f4e-9a7c-5e2b7d3c1f00/"
    "My report, v2.pdf"
)
SETTINGS = Settings(_env_file=None, aws_region=REGION)


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mocked_s3(monkeypatch) as client:
        yield client


def _receive(sqs: Any, url: str) -> list[ObjectEvent]:
    events: list[ObjectEvent] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return events
        for message in messages:
            events += [ObjectEvent(**n.event_fields()) for n in s3.parse_sqs_message(message)]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_notifications_through_sqs_become_object_events(aws: Any) -> None:
    sqs, url = notified_queue(aws)
    aws.put_object(Bucket=BUCKET, Key=KEY, Body=b"%PDF-1 first", ContentType="application/pdf")
    aws.put_object(Bucket=BUCKET, Key=KEY, Body=b"%PDF-1 second", ContentType="application/pdf")
    aws.delete_object(Bucket=BUCKET, Key=KEY)
    events = _receive(sqs, url)  # the s3:TestEvent of the configuration is skipped
    assert [(e.kind, e.bucket, e.name) for e in events] == [
        ("finalized", BUCKET, KEY),
        ("finalized", BUCKET, KEY),
        ("deleted", BUCKET, KEY),
    ]
    assert [e.size for e in events[:2]] == [12, 13]
    # moto sends no sequencer: generations come from eventTime (never decreasing).
    assert events[0].generation <= events[1].generation <= events[2].generation
    assert all(e.event_id and e.event_id.startswith("s3-") for e in events)


def test_read_object_pins_the_etag_in_an_unversioned_bucket(aws: Any) -> None:
    aws.create_bucket(Bucket=BUCKET)
    first = aws.put_object(Bucket=BUCKET, Key=KEY, Body=b"first")["ETag"]
    assert s3.read_object(BUCKET, KEY, etag=first, settings=SETTINGS) == b"first"
    second = aws.put_object(Bucket=BUCKET, Key=KEY, Body=b"second")["ETag"]
    with pytest.raises(ObjectGoneError):
        s3.read_object(BUCKET, KEY, etag=first, settings=SETTINGS)  # overwritten
    assert s3.read_object(BUCKET, KEY, etag=second, settings=SETTINGS) == b"second"
    aws.delete_object(Bucket=BUCKET, Key=KEY)
    with pytest.raises(ObjectGoneError):
        s3.read_object(BUCKET, KEY, settings=SETTINGS)


def test_read_object_by_version_id(aws: Any) -> None:
    aws.create_bucket(Bucket=BUCKET)
    aws.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    old = aws.put_object(Bucket=BUCKET, Key=KEY, Body=b"old")["VersionId"]
    aws.put_object(Bucket=BUCKET, Key=KEY, Body=b"new")
    assert s3.read_object(BUCKET, KEY, old, settings=SETTINGS) == b"old"
    aws.delete_object(Bucket=BUCKET, Key=KEY, VersionId=old)
    with pytest.raises(ObjectGoneError):
        s3.read_object(BUCKET, KEY, old, settings=SETTINGS)
