"""The AWS flow of issue 13 under moto: an object put into S3 notifies SQS; the messages fed
to `ragline.api.events.s3_handler` (what a Lambda on that queue runs) become a ready document
read from S3; the delete notification removes it; redelivered messages change nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ragline.api import events
from ragline.db import tenancy
from ragline.db.models import Document
from tests.moto_s3 import BUCKET, REGION, mocked_s3, notified_queue

from .helpers import Tenant
from .test_files import pdf_with_facts


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch, offline_pipeline: Callable[..., None]) -> Iterator[Any]:
    offline_pipeline(aws_region=REGION, upload_bucket=BUCKET)
    with mocked_s3(monkeypatch) as client:
        yield client


def lambda_batch(sqs: Any, url: str) -> dict[str, Any]:
    """The SQS messages waiting, as a Lambda event source mapping hands them over."""
    records = []
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        records.append({"messageId": message["MessageId"], "body": message["Body"]})
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return {"Records": records}


def live(tenant: Tenant) -> list[Document]:
    with tenancy.tenant_session(tenant.org_id) as s:
        return list(s.scalars(sa.select(Document).where(Document.deleted_at.is_(None))))


def test_s3_put_and_delete_through_sqs(aws: Any, tenant: Tenant) -> None:
    sqs, url = notified_queue(aws)
    key = f"orgs/{tenant.org_id}/{uuid.uuid4()}/manual.pdf"
    aws.put_object(Bucket=BUCKET, Key=key, Body=pdf_with_facts(2), ContentType="application/pdf")
    batch = lambda_batch(sqs, url)
    assert len(batch["Records"]) == 2  # s3:TestEvent (skipped), then the put
    for _ in range(2):  # SQS delivers at least once
        assert events.s3_handler(batch) == {"batchItemFailures": []}
    (doc,) = live(tenant)
    assert (doc.status, doc.source_format, doc.source_uri) == (
        "ready",
        "pdf",
        f"s3://{BUCKET}/{key}",
    )
    aws.delete_object(Bucket=BUCKET, Key=key)
    deleted = lambda_batch(sqs, url)
    assert events.s3_handler(deleted) == {"batchItemFailures": []}
    assert events.s3_handler(batch) == {"batchItemFailures": []}  # a late replay
    assert live(tenant) == []


def test_malformed_and_foreign_messages_are_acknowledged(aws: Any, tenant: Tenant) -> None:
    sqs, url = notified_queue(aws)
    aws.put_object(Bucket=BUCKET, Key="elsewhere/file.pdf", Body=pdf_with_facts(1))
    batch = lambda_batch(sqs, url)
    batch["Records"].append({"messageId": "junk", "body": "not json"})
    assert events.s3_handler(batch) == {"batchItemFailures": []}
    assert live(tenant) == []
