"""Cloud Storage CloudEvents (Eventarc, or the local stack's deliverer) → `ObjectEvent`.

Eventarc sends `google.cloud.storage.object.v1.finalized` / `.deleted` with the object's
JSON resource as data: `bucket`, `name`, `generation` (a decimal string), `contentType`,
`size` (a decimal string). An event that does not have that shape is `MalformedEventError`:
it can never succeed, so the caller logs and acknowledges it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ragline.core.errors import MalformedEventError

if TYPE_CHECKING:
    from ragline.ingest.objects import ObjectEvent

#: CloudEvent type → ObjectEvent kind.
EVENT_TYPES: dict[str, Literal["finalized", "deleted"]] = {
    "google.cloud.storage.object.v1.finalized": "finalized",
    "google.cloud.storage.object.v1.deleted": "deleted",
}
#: Cloud Storage's longest object name, in UTF-8 bytes.
MAX_NAME_BYTES = 1024


class CloudEventLike(Protocol):
    """What functions-framework passes a CloudEvent function (`cloudevents` CloudEvent)."""

    def get_attributes(self) -> Mapping[str, Any]: ...

    def get_data(self) -> Any: ...


def _decimal(data: Mapping[str, Any], field: str, *, required: bool) -> int | None:
    value = data.get(field)
    if value is None and not required:
        return None
    # JSON numbers are accepted too; booleans are not numbers here.
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)
    else:
        raise MalformedEventError(f"storage event: {field} is not a decimal number")
    if number < 0 or number >= 2**63 or (field == "generation" and number == 0):
        raise MalformedEventError(f"storage event: {field} is out of range")
    return number


def _text(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedEventError(f"storage event: {field} is missing")
    return value


def _data(event: CloudEventLike) -> Mapping[str, Any]:
    data = event.get_data()
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise MalformedEventError("storage event: data is not JSON") from exc
    if not isinstance(data, Mapping):
        raise MalformedEventError("storage event: data is not a JSON object")
    return data


def object_event(cloud_event: CloudEventLike) -> ObjectEvent:
    """The `ObjectEvent` of an Eventarc Cloud Storage CloudEvent (MalformedEventError if the
    event is of another type or its data lacks bucket, name or generation)."""
    from ragline.ingest.objects import ObjectEvent

    attributes = cloud_event.get_attributes()
    kind = EVENT_TYPES.get(str(attributes.get("type")))
    if kind is None:
        raise MalformedEventError(
            f"not a Cloud Storage object event: type {str(attributes.get('type'))[:100]!r}"
        )
    data = _data(cloud_event)
    name = _text(data, "name")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES or "\x00" in name:
        raise MalformedEventError("storage event: object name is not a valid object name")
    content_type = data.get("contentType")
    event_id = attributes.get("id")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        # Never dropped: a metadata entry lost here could be an ACL (issue 18).
        raise MalformedEventError("storage event: metadata is not a map of strings")
    return ObjectEvent(
        kind=kind,
        bucket=_text(data, "bucket"),
        name=name,
        generation=int(_decimal(data, "generation", required=True) or 0),
        content_type=content_type if isinstance(content_type, str) and content_type else None,
        size=_decimal(data, "size", required=False),
        event_id=str(event_id) if event_id else None,
        metadata=dict(metadata),
    )
