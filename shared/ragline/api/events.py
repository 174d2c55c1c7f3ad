"""Object events of the ingestion bucket: the Cloud Storage CloudEvents that Eventarc (or the
local stack's deliverer) sends to `on_upload`, and the S3 notifications that SQS hands to a
Lambda on AWS. Both become `ObjectEvent`s applied by `ragline.ingest.uploads.handle_event`.

- an event that can never be applied (malformed, an object outside `orgs/<org_id>/`, an
  unknown org) is logged and acknowledged: a retry would not change it;
- anything else that fails (the database away) raises, so the platform delivers it again;
  applying an event twice, or late, changes nothing.

Who may call: in GCP `on_upload` is private (internal ingress; only the Eventarc trigger's
service account may invoke it, see terraform/events.tf); with TASK_AUTH=secret (the local
stack, tests) the caller must carry the task secret header, like a queue's task.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ragline.api.body import install_body_limit
from ragline.api.replies import reply_for_error, respond
from ragline.core import errors

if TYPE_CHECKING:
    from ragline.api.objects import CloudEventLike


def _verify_caller() -> None:
    """TASK_AUTH=secret: the task secret header, else 401 (a JSON error, like every refusal)."""
    import flask

    from ragline.api.tasks import has_task_secret
    from ragline.core.config import get_settings

    settings = get_settings()
    if settings.task_auth == "secret" and not has_task_secret(flask.request, settings):
        request_id = uuid.uuid4().hex
        refusal = errors.UnauthenticatedError("this endpoint accepts only its event source")
        flask.abort(respond(reply_for_error(refusal, request_id, "on_upload"), request_id))


def storage_event(cloud_event: CloudEventLike, function: str = "on_upload") -> str:
    """Apply one Cloud Storage CloudEvent; returns what was done (logged)."""
    from ragline.api.objects import object_event
    from ragline.core.errors import MalformedEventError
    from ragline.core.logs import bind_context, log

    attributes = cloud_event.get_attributes()
    bind_context(request_id=str(attributes.get("id") or "")[:200], function=function)
    _verify_caller()
    try:
        event = object_event(cloud_event)
    except MalformedEventError as exc:
        log(
            "WARNING",
            "malformed storage event acknowledged",
            event="malformed_event",
            type=str(attributes.get("type"))[:200],
            error=exc.message,
        )
        return f"refused: {exc.message}"
    from ragline.ingest import uploads

    return uploads.handle_event(event)  # logs what it did (`upload_event`)


def install() -> None:
    """Body limits and JSON errors for the CloudEvent function being loaded (its `main.py`
    calls this at import, like `endpoint` does for HTTP functions)."""
    install_body_limit()


def s3_handler(event: dict[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
    """AWS Lambda entry point of S3 event notifications delivered through SQS: each record's
    notifications are applied in order; a record that failed is reported for redelivery
    (`ReportBatchItemFailures`), a malformed one is logged and acknowledged."""
    from ragline.cloud.aws import s3
    from ragline.core.errors import MalformedEventError
    from ragline.core.logs import log
    from ragline.ingest import uploads
    from ragline.ingest.objects import ObjectEvent

    failures: list[dict[str, str]] = []
    for record in event.get("Records") or []:
        message_id = str(record.get("messageId"))
        try:
            notifications = s3.parse_sqs_message(record)
        except MalformedEventError as exc:
            log("WARNING", "malformed S3 notification acknowledged", error=exc.message)
            continue
        try:
            for note in notifications:
                uploads.handle_event(ObjectEvent(**note.event_fields(), scheme="s3"))
        except Exception as exc:  # the database away: SQS delivers the record again
            log("WARNING", "S3 notification failed", message_id=message_id, error=repr(exc))
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
