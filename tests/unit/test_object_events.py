"""Storage events → ObjectEvent: Eventarc CloudEvents (ragline.api.objects) and S3
notifications delivered through SQS (ragline.cloud.aws.s3), from sample events in
tests/events/ and malformed variants of them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from ragline.api.objects import object_event
from ragline.cloud.aws import s3
from ragline.core.errors import MalformedEventError
from ragline.ingest.objects import ObjectEvent

EVENTS = Path(__file__).resolve().parents[1] / "events"
ORG = "8f8e1a52-3c5e-4a36-9f0a-2a6f2c7f4b11"
UPLOAD = "0d1c9e2a-6b8e-4f4e-9a7c-5e2b7d3c1f00"


def _gcs() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "gcs_object_finalized.json").read_text())
    return event


def _cloud_event(raw: dict[str, Any]) -> CloudEvent:
    attributes = {k: v for k, v in raw.items() if k != "data"}
    return CloudEvent(attributes, raw.get("data"))


# --------------------------------------------------------------------------- CloudEvents


def test_finalized_cloud_event() -> None:
    assert object_event(_cloud_event(_gcs())) == ObjectEvent(
        kind="finalized",
        bucket="ragline-uploads",
        name=f"orgs/{ORG}/{UPLOAD}/Annual report 2026.pdf",
        generation=1764584130123456,
        content_type="application/pdf",
        size=48213,
        event_id="13447935417741457",
    )


def test_deleted_cloud_event_with_json_text_data() -> None:
    raw = _gcs()
    raw["type"] = "google.cloud.storage.object.v1.deleted"
    raw["data"] = json.dumps({"bucket": "b", "name": "o", "generation": 7})
    event = object_event(_cloud_event(raw))
    assert (event.kind, event.bucket, event.name, event.generation) == ("deleted", "b", "o", 7)
    assert (event.content_type, event.size) == (None, None)


def _with(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(_gcs())
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return raw


MALFORMED = [
    ("other type", _with("type", "google.cloud.storage.object.v1.archived"), "type"),
    ("no data", _with("data", None), "JSON object"),
    ("data not JSON", _with("data", "{oops"), "not JSON"),
    ("data a list", _with("data", [1]), "JSON object"),
    ("no bucket", _with("data.bucket", KeyError), "bucket"),
    ("empty name", _with("data.name", ""), "name"),
    ("long name", _with("data.name", "x" * 1025), "object name"),
    ("no generation", _with("data.generation", KeyError), "generation"),
    ("generation text", _with("data.generation", "12a"), "generation"),
    ("generation zero", _with("data.generation", "0"), "generation"),
    ("generation bool", _with("data.generation", True), "generation"),
    ("generation huge", _with("data.generation", str(2**63)), "generation"),
    ("size negative", _with("data.size", -1), "size"),
    ("metadata list", _with("data.metadata", ["ragline-acl"]), "metadata"),
    ("metadata number", _with("data.metadata", {"ragline-acl": 7}), "metadata"),
]


@pytest.mark.parametrize(("name", "raw", "match"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_cloud_events(name: str, raw: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedEventError, match=match) as caught:
        object_event(_cloud_event(raw))
    assert caught.value.code == "malformed_event"


def test_custom_metadata_is_carried_whole() -> None:
    """The object's custom metadata (an upload's signed `ragline-acl`, issue 18) reaches
    `on_upload` as stored."""
    raw = _with("data.metadata", {"ragline-acl": "group:hr", "other": "x"})
    event = object_event(_cloud_event(raw))
    assert event.metadata == {"ragline-acl": "group:hr", "other": "x"}
    assert object_event(_cloud_event(_gcs())).metadata == {}


# --------------------------------------------------------------------------- S3 notifications


def _s3_record() -> dict[str, Any]:
    record: dict[str, Any] = json.loads((EVENTS / "s3_sqs_record.json").read_text())
    return record


def _s3_body(**object_fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(_s3_record()["body"])
    body["Records"][0]["s3"]["object"].update(object_fields)
    return body


def test_s3_record_through_sqs() -> None:
    [note] = s3.parse_sqs_message(_s3_record())
    assert note.key == f"orgs/{ORG}/{UPLOAD}/Annual report 2026, final.pdf"  # URL-decoded
    assert (note.kind, note.size, note.version_id) == (
        "finalized",
        48213,
        "096fKKXTRTtl3on89fVO.nfljtsv6qko",
    )
    event = ObjectEvent(**note.event_fields())
    assert event.name == note.key and event.bucket == "ragline-uploads"
    assert event.generation == int("0055AED6DCD90281E5".ljust(32, "0"), 16)
    assert event.content_type is None and event.event_id == note.event_id
    # A duplicate delivery (another SQS message, same S3 event) has the same id and generation.
    again = {**_s3_record(), "messageId": "another"}
    assert s3.parse_sqs_message(again)[0].event_fields() == note.event_fields()


def test_sequencers_order_after_right_padding() -> None:
    # AWS: compare sequencers after right-padding the shorter with zeros.
    sequencers = ["0055AED6DCD90281E5", "0055AED6DCD90281E6", "0055AED6DCD9028200", "0056", "1"]
    padded = sorted(sequencers, key=lambda s: s.ljust(32, "0"))
    assert sorted(sequencers, key=s3.sequencer_generation) == padded
    assert s3.sequencer_generation("0056") > s3.sequencer_generation("0055AED6DCD90281E6")
    assert s3.sequencer_generation("ab") == s3.sequencer_generation("AB")


def test_removed_test_event_sns_and_other_names() -> None:
    body = _s3_body()
    body["Records"][0]["eventName"] = "ObjectRemoved:DeleteMarkerCreated"
    assert s3.parse_notification(json.dumps(body))[0].kind == "deleted"
    body["Records"][0]["eventName"] = "ObjectTagging:Put"
    assert s3.parse_notification(body) == []
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "ragline-uploads"}
    assert s3.parse_notification(json.dumps(test_event)) == []
    sns = {"Type": "Notification", "Message": json.dumps(_s3_body())}
    assert s3.parse_notification(json.dumps(sns))[0].kind == "finalized"


S3_MALFORMED = [
    ("not JSON", "{oops", "not JSON"),
    ("no Records", json.dumps({"x": 1}), "Records"),
    ("sequencer not hex", json.dumps(_s3_body(sequencer="XYZ")), "hexadecimal"),
    ("sequencer too long", json.dumps(_s3_body(sequencer="1" * 33)), "too long"),
    ("no key", json.dumps(_s3_body(key="")), "key"),
    ("size text", json.dumps(_s3_body(size="12")), "size"),
]


@pytest.mark.parametrize(("name", "body", "match"), S3_MALFORMED, ids=[m[0] for m in S3_MALFORMED])
def test_malformed_s3_notifications(name: str, body: str, match: str) -> None:
    with pytest.raises(MalformedEventError, match=match):
        s3.parse_notification(body)


def test_s3_event_without_sequencer_falls_back_to_event_time() -> None:
    body = _s3_body()
    del body["Records"][0]["s3"]["object"]["sequencer"]
    [note] = s3.parse_notification(body)
    assert note.sequencer is None
    when = datetime(2026, 12, 1, 10, 15, 30, 123000, tzinfo=UTC)  # the record's eventTime
    assert note.generation == int(when.timestamp()) * 1_000_000 + 123000
