"""The AWS queue backend: one SQS FIFO queue per stage, the task name as deduplication id."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ragline.cloud.aws import clients
from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError, TransientError


def _client(settings: Settings) -> Any:
    return clients.client("sqs", settings.aws_region, read_timeout=10)


def reset_clients() -> None:
    clients.reset()


def deduplication_id(task_name: str) -> str:
    """The task name itself, or its SHA-256 when longer than SQS's 128 characters (a cut
    prefix could make two different tasks collide)."""
    if len(task_name) <= 128:
        return task_name
    return hashlib.sha256(task_name.encode()).hexdigest()


def send(stage: str, payload: dict[str, Any], task_name: str, settings: Settings) -> None:
    """Send one stage task; SQS drops a repeat of the same task name within 5 minutes."""
    url = settings.sqs_queue_urls.get(stage)
    if not url:
        raise ConfigurationError(f"SQS_QUEUE_URLS has no queue for stage {stage!r}")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _client(settings).send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"stage": stage, "payload": payload}),
            MessageGroupId=str(payload.get("document_id", stage)),
            MessageDeduplicationId=deduplication_id(task_name),
        )
    except (BotoCoreError, ClientError) as exc:
        raise TransientError(f"SQS send failed: {type(exc).__name__}") from exc
