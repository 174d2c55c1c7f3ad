"""AWS Lambda entry point of the pipeline stages, fed by SQS FIFO event source mappings.

Each SQS message body is `{"stage", "payload"}` (what `ragline.cloud.aws.sqs.send`
writes). The event source mapping must enable `ReportBatchItemFailures`: records left out
of `batchItemFailures` are deleted from the queue, the ones listed are delivered again after
the visibility timeout.

- outcome ok (done, nothing to do, or failed for good and recorded) → acknowledged;
- transient failure or unexpected error → reported, so SQS redelivers it (attempt = receive
  count - 1; the last attempt records the failure on the document and acknowledges);
- malformed body → logged and acknowledged: it would never succeed;
- after a failure, later records of the same message group (document) in the batch are
  reported without running, so a FIFO group keeps its order (Powertools'
  `skip_group_on_error`); other documents in the batch carry on.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pydantic

from ragline.core.config import get_settings
from ragline.core.errors import ConfigurationError, MalformedBodyError
from ragline.core.logs import log
from ragline.ingest import pipeline
from ragline.ingest.queues import STAGES

BatchResponse = dict[str, list[dict[str, str]]]


def decode(record: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    """Stage, payload and attempt (0-based) of one SQS record; `MalformedBodyError` if unusable."""
    try:
        body = json.loads(record["body"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBodyError("message body is not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedBodyError("message body is not a JSON object")
    stage, payload = body.get("stage"), body.get("payload")
    if stage not in STAGES:
        raise MalformedBodyError("message body has no known stage")
    if not isinstance(payload, dict):
        raise MalformedBodyError("message body has no payload object")
    try:
        pipeline.TaskPayload.model_validate(payload)
    except pydantic.ValidationError as exc:
        raise MalformedBodyError("message payload failed validation") from exc
    try:
        attempt = int(record["attributes"]["ApproximateReceiveCount"]) - 1
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBodyError("record has no ApproximateReceiveCount") from exc
    return str(stage), payload, max(attempt, 0)


def _process(record: dict[str, Any], max_attempts: int, request_id: str | None) -> bool:
    """Run one record; True = acknowledge it."""
    started = time.monotonic()
    message_id = record.get("messageId")
    try:
        stage, payload, attempt = decode(record)
    except MalformedBodyError as exc:
        log(
            "ERROR",
            "malformed SQS message acknowledged",
            event="malformed_task",
            request_id=request_id,
            message_id=message_id,
            queue=record.get("eventSourceARN"),
            error=exc.message,
        )
        return True
    fields: dict[str, Any] = {
        "request_id": request_id,
        "function": stage,
        "message_id": message_id,
        "org_id": payload.get("org_id"),
        "document_id": payload.get("document_id"),
        "attempt": attempt,
    }
    try:
        outcome = pipeline.run_stage(stage, payload, attempt=attempt, max_attempts=max_attempts)
    except Exception as exc:  # e.g. the database is down while recording a failure: retry
        log("ERROR", f"task {stage} error", error=type(exc).__name__, **fields)
        return False
    log(
        "INFO" if outcome.ok else "WARNING",
        f"task {stage} {'done' if outcome.ok else 'will be retried'}",
        detail=outcome.detail[:500],
        latency=f"{time.monotonic() - started:.6f}s",
        **fields,
    )
    return outcome.ok


def handler(event: dict[str, Any], context: Any = None) -> BatchResponse:
    """Process an SQS batch; return the message ids SQS must deliver again."""
    records = event.get("Records")
    if not isinstance(records, list):
        raise ConfigurationError(
            "ragline.api.aws_lambda.handler serves SQS event source mappings only"
        )
    max_attempts = get_settings().task_max_attempts
    request_id = getattr(context, "aws_request_id", None)
    failures: list[dict[str, str]] = []
    failed_groups: set[str] = set()
    for record in records:
        attributes = record.get("attributes")
        group = attributes.get("MessageGroupId") if isinstance(attributes, dict) else None
        if group is not None and group in failed_groups:
            failures.append({"itemIdentifier": str(record.get("messageId"))})
            log(
                "INFO",
                "task deferred after an earlier failure in its message group",
                event="task_deferred",
                request_id=request_id,
                message_id=record.get("messageId"),
            )
            continue
        if not _process(record, max_attempts, request_id):
            failures.append({"itemIdentifier": str(record.get("messageId"))})
            if group is not None:
                failed_groups.add(group)
    return {"batchItemFailures": failures}
