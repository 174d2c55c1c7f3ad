"""S3 + SQS under moto for the tests of issue 13's AWS flow: a mocked account, and a bucket
whose object events notify an SQS queue (as Terraform/CloudFormation would configure it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ragline.cloud.aws import s3

REGION = "us-east-1"
BUCKET = "ragline-uploads"


@contextmanager
def mocked_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto account with fake credentials; yields an S3 client."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    s3.reset_clients()
    with mock_aws():
        yield boto3.client("s3", region_name=REGION)
    s3.reset_clients()
    boto3.DEFAULT_SESSION = None


def notified_queue(client: Any) -> tuple[Any, str]:
    """Create BUCKET with ObjectCreated/ObjectRemoved notifications to a new SQS queue;
    returns the SQS client and the queue URL."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="ragline-upload-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    return sqs, url
