"""S3: read one version of an object, and the S3 event notifications an SQS queue delivers
(issue 13), as plain values that `ingest.objects.ObjectEvent(**n.event_fields())` takes
(`cloud` sits below `ingest`, so it cannot build the event itself).

- `ObjectCreated:*` → `finalized`; `ObjectRemoved:*` (`Delete`, `DeleteMarkerCreated`) →
  `deleted`; other event names (restore, replication, tagging, ACL, lifecycle transitions)
  and the `s3:TestEvent` S3 sends when a notification is configured are skipped.
- Keys arrive URL-encoded (`a+b%2C.pdf` is `a b,.pdf`).
- The `sequencer` (hex, ordered per key; duplicates of one event carry the same one) becomes
  the integer generation: sequencers of different lengths compare after right-padding the
  shorter with zeros (AWS), so each is right-padded to `SEQUENCER_HEX_DIGITS` and read as a
  number. These numbers are ~128-bit: wider than a Postgres bigint. An event without a
  sequencer (moto's, never S3's for these events) falls back to `eventTime` in microseconds.
- S3 events carry no Content-Type; `size` only on creation; `versionId` only in versioned
  buckets. Body shapes accepted: the S3 notification itself, or wrapped in an SNS envelope.

boto3 is imported on first use; never packaged for Google Cloud.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from ragline.cloud.aws import clients
from ragline.core.config import Settings, get_settings
from ragline.core.errors import (
    MalformedEventError,
    ObjectGoneError,
    StorageError,
    TransientError,
)

#: Sequencers are right-padded to this many hex digits before they are read as a number.
SEQUENCER_HEX_DIGITS = 32

_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "NotFound", "404"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)


class ObjectEventFields(TypedDict):
    """Exactly the fields of `ragline.ingest.objects.ObjectEvent`."""

    kind: Literal["finalized", "deleted"]
    bucket: str
    name: str
    generation: int
    content_type: str | None
    size: int | None
    event_id: str | None


@dataclass(frozen=True)
class S3Notification:
    """One object record of an S3 event notification."""

    kind: Literal["finalized", "deleted"]
    event_name: str
    bucket: str
    key: str
    generation: int
    sequencer: str | None
    size: int | None
    etag: str | None
    version_id: str | None

    @property
    def event_id(self) -> str:
        """Stable across duplicate deliveries of the same S3 event."""
        raw = "\0".join((self.bucket, self.key, str(self.generation), self.kind))
        return "s3-" + hashlib.sha256(raw.encode()).hexdigest()[:32]

    def event_fields(self) -> ObjectEventFields:
        return {
            "kind": self.kind,
            "bucket": self.bucket,
            "name": self.key,
            "generation": self.generation,
            "content_type": None,
            "size": self.size,
            "event_id": self.event_id,
        }


def sequencer_generation(sequencer: str) -> int:
    """The sequencer as a number that orders like AWS says sequencers order."""
    if not sequencer or len(sequencer) > SEQUENCER_HEX_DIGITS:
        raise MalformedEventError("S3 event: sequencer is empty or too long")
    if not all(c in "0123456789abcdefABCDEF" for c in sequencer):
        raise MalformedEventError("S3 event: sequencer is not hexadecimal")
    return int(sequencer.ljust(SEQUENCER_HEX_DIGITS, "0"), 16)


def _event_time_generation(value: Any) -> int:
    from datetime import UTC, datetime, timedelta

    if not isinstance(value, str):
        raise MalformedEventError("S3 event: record has neither a sequencer nor an eventTime")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedEventError("S3 event: eventTime is not an ISO 8601 time") from exc
    if when.tzinfo is None:
        raise MalformedEventError("S3 event: eventTime has no time zone")
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _kind(event_name: str) -> Literal["finalized", "deleted"] | None:
    if event_name.startswith("ObjectCreated:"):
        return "finalized"
    if event_name.startswith("ObjectRemoved:"):
        return "deleted"
    return None


def _record(record: Any) -> S3Notification | None:
    if not isinstance(record, Mapping):
        raise MalformedEventError("S3 event: a record is not an object")
    event_name = record.get("eventName")
    if not isinstance(event_name, str):
        raise MalformedEventError("S3 event: record has no eventName")
    kind = _kind(event_name)
    if kind is None:
        return None
    s3 = record.get("s3")
    bucket = s3.get("bucket") if isinstance(s3, Mapping) else None
    obj = s3.get("object") if isinstance(s3, Mapping) else None
    if not isinstance(bucket, Mapping) or not isinstance(obj, Mapping):
        raise MalformedEventError("S3 event: record has no s3.bucket / s3.object")
    name, key, sequencer = bucket.get("name"), obj.get("key"), obj.get("sequencer")
    if not isinstance(name, str) or not name or not isinstance(key, str) or not key:
        raise MalformedEventError("S3 event: record has no bucket name or object key")
    if sequencer is not None and not isinstance(sequencer, str):
        raise MalformedEventError("S3 event: sequencer is not a string")
    if sequencer:
        generation = sequencer_generation(sequencer)
    else:
        generation = _event_time_generation(record.get("eventTime"))
    size = obj.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise MalformedEventError("S3 event: size is not a byte count")
    etag, version_id = obj.get("eTag"), obj.get("versionId")
    return S3Notification(
        kind=kind,
        event_name=event_name,
        bucket=name,
        key=urllib.parse.unquote_plus(key),
        generation=generation,
        sequencer=sequencer.upper() if sequencer else None,
        size=size,
        etag=etag if isinstance(etag, str) and etag else None,
        version_id=version_id if isinstance(version_id, str) and version_id != "null" else None,
    )


def _decode(body: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise MalformedEventError("S3 event: message body is not JSON") from exc
    if not isinstance(value, Mapping):
        raise MalformedEventError("S3 event: message body is not a JSON object")
    return value


def parse_notification(body: str | bytes | Mapping[str, Any]) -> list[S3Notification]:
    """The object records of one S3 event notification (an SQS message body), in order;
    [] for the test event and for event names that are not object creations or removals."""
    message = _decode(body)
    if message.get("Type") == "Notification" and isinstance(message.get("Message"), str):
        message = _decode(message["Message"])  # delivered through SNS
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list):
        raise MalformedEventError("S3 event: message has no Records list")
    return [n for n in map(_record, records) if n is not None]


def parse_sqs_message(message: Mapping[str, Any]) -> list[S3Notification]:
    """`parse_notification` of an SQS message: a Lambda event record (`body`) or what
    boto3's `receive_message` returns (`Body`)."""
    body = message.get("body", message.get("Body"))
    if not isinstance(body, str):
        raise MalformedEventError("SQS message has no body")
    return parse_notification(body)


def _client(settings: Settings) -> Any:
    return clients.client("s3", settings.aws_region, read_timeout=settings.storage_timeout_s)


def reset_clients() -> None:
    """Forget clients (tests: a client binds to moto when created)."""
    clients.reset()


def read_object(
    bucket: str,
    key: str,
    version_id: str | None = None,
    *,
    etag: str | None = None,
    settings: Settings | None = None,
) -> bytes:
    """The bytes of `key` (that `version_id` in a versioned bucket; only while its ETag is
    still `etag`, when given, which pins the version in an unversioned bucket).

    `ObjectGoneError` when that object or version is gone (or was overwritten, with `etag`),
    `TransientError` for throttling, 5xx and network failures, `StorageError` otherwise."""
    from botocore.exceptions import BotoCoreError, ClientError

    s = settings or get_settings()
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id and version_id != "null":
        params["VersionId"] = version_id
    if etag:
        params["IfMatch"] = etag
    where = f"s3://{bucket}/{key}" + (f"?versionId={version_id}" if version_id else "")
    try:
        response = _client(s).get_object(**params)
        return bytes(response["Body"].read())
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _GONE_CODES or status == 404 or (etag and status == 412):
            raise ObjectGoneError(f"read {where}: gone ({code or status})") from exc
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            raise TransientError(f"read {where}: S3 unavailable ({code or status})") from exc
        raise StorageError(f"read {where}: S3 refused ({code or status})") from exc
    except BotoCoreError as exc:
        raise TransientError(f"read {where}: S3 unreachable ({type(exc).__name__})") from exc
