"""The local stack's Eventarc: watch the upload bucket and POST Cloud Storage CloudEvents to
the `on_upload` function, at least once (issue 13).

    python -m ragline.dev.events URL BUCKET

(STORAGE_EMULATOR_HOST, TASK_SECRET, RAGLINE_HOME and RAGLINE_DUPLICATE_EVENTS come from the
environment.) Every POLL_S the bucket's listing is compared with the objects seen before:

- a new object, or a new generation of one → `finalized` for it; a replaced generation also
  gets `deleted`, as Cloud Storage sends for an overwrite (after the `finalized`: Eventarc
  gives no order);
- an object gone from the listing → `deleted` for its last generation.

Each event is a binary-mode CloudEvent (`ce-*` headers, the object's JSON resource as data,
generation and size as decimal strings), as Eventarc sends it, plus the local task-secret
header. A failed or non-2xx POST is retried with exponential backoff (0.5 s doubling to 10 s,
MAX_ATTEMPTS in all). What was seen and what is still to deliver is saved in
`$RAGLINE_HOME/events.json`, so a restarted stack delivers what it missed.
`RAGLINE_DUPLICATE_EVENTS=1` delivers every event twice (same id), to test idempotency.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ragline.cloud.gcp.cloud_tasks import TASK_SECRET_HEADER
from ragline.cloud.gcp.storage import StoredObject, list_objects

POLL_S = 0.5
MAX_ATTEMPTS = 30
MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
EVENT_TYPE = "google.cloud.storage.object.v1.{kind}"

Kind = Literal["finalized", "deleted"]
#: POST(url, headers, body) → HTTP status (0 when the request failed before an answer).
Post = Callable[[str, dict[str, str], bytes], int]


def _rfc3339(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def object_resource(obj: StoredObject) -> dict[str, Any]:
    """The object's JSON API resource: the data of an Eventarc Cloud Storage event."""
    quoted = urllib.parse.quote(obj.name, safe="")
    resource: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{obj.bucket}/{obj.name}/{obj.generation}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{obj.bucket}/o/{quoted}",
        "mediaLink": "https://storage.googleapis.com/download/storage/v1/b/"
        f"{obj.bucket}/o/{quoted}?generation={obj.generation}&alt=media",
        "name": obj.name,
        "bucket": obj.bucket,
        "generation": str(obj.generation),
        "metageneration": str(obj.metageneration),
        "contentType": obj.content_type,
        "timeCreated": _rfc3339(obj.time_created),
        "updated": _rfc3339(obj.updated),
        "storageClass": obj.storage_class,
        "size": str(obj.size),
        "md5Hash": obj.md5_hash,
        "crc32c": obj.crc32c,
        "etag": obj.etag,
        "metadata": obj.metadata,
    }
    return {k: v for k, v in resource.items() if v is not None}


def _header_value(text: str) -> str:
    """CloudEvents HTTP binding: percent-encode space, `"`, `%` and non-printable-ASCII."""
    return "".join(
        ch if " " < ch < "\x7f" and ch not in '"%' else urllib.parse.quote(ch, safe="")
        for ch in text
    )


def event_id(kind: Kind, bucket: str, name: str, generation: int) -> str:
    """Stable for one object generation and kind: a redelivery carries the same id."""
    raw = f"{bucket}\0{name}\0{generation}\0{kind}"
    return str(int(hashlib.sha256(raw.encode()).hexdigest()[:15], 16))


def cloud_event(kind: Kind, obj: StoredObject) -> tuple[dict[str, str], bytes]:
    """Headers and body of one binary-mode CloudEvent, as Eventarc POSTs it."""
    resource = object_resource(obj)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "ce-specversion": "1.0",
        "ce-id": event_id(kind, obj.bucket, obj.name, obj.generation),
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{obj.bucket}",
        "ce-type": EVENT_TYPE.format(kind=kind),
        "ce-subject": _header_value(f"objects/{obj.name}"),
        "ce-time": resource.get("updated") or _rfc3339(datetime.now(UTC)) or "",
    }
    return headers, json.dumps(resource).encode()


def changes(
    seen: dict[str, StoredObject], listed: list[StoredObject]
) -> list[tuple[Kind, StoredObject]]:
    """The events between two listings of a bucket, in listing order."""
    out: list[tuple[Kind, StoredObject]] = []
    current = {obj.name: obj for obj in listed}
    for obj in listed:
        before = seen.get(obj.name)
        if before is None or before.generation != obj.generation:
            out.append(("finalized", obj))
            if before is not None:
                out.append(("deleted", before))
    out += [("deleted", obj) for name, obj in seen.items() if name not in current]
    return out


def urllib_post(url: str, headers: dict[str, str], body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


@dataclass
class Delivery:
    kind: Kind
    name: str
    generation: int
    headers: dict[str, str]
    body: str
    attempts: int = 0
    due: float = 0.0


def _stored(data: dict[str, Any]) -> StoredObject:
    for key in ("time_created", "updated"):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    return StoredObject(**data)


def _plain(obj: StoredObject) -> dict[str, Any]:
    data = asdict(obj)
    for key in ("time_created", "updated"):
        if data[key] is not None:
            data[key] = data[key].isoformat()
    return data


@dataclass
class Deliverer:
    """Polls `bucket` and delivers its events to `url` (see the module docstring)."""

    url: str
    bucket: str
    state_path: Path
    secret: str = ""
    duplicate: bool = False
    post: Post = urllib_post
    min_backoff_s: float = MIN_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    max_attempts: int = MAX_ATTEMPTS
    say: Callable[[str], None] = print
    seen: dict[str, StoredObject] = field(default_factory=dict)
    queue: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            self.seen = {o["name"]: _stored(o) for o in state.get("seen", [])}
            # Due times are this boot's monotonic clock: what was pending is due now.
            self.queue = [Delivery(**{**d, "due": 0.0}) for d in state.get("queue", [])]

    def _save(self) -> None:
        state = {
            "seen": [_plain(o) for o in self.seen.values()],
            "queue": [asdict(d) for d in self.queue],
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_path)

    def poll(self) -> int:
        """Compare the bucket with what was seen; queue the events. Returns how many."""
        listed = list_objects(self.bucket)
        found = changes(self.seen, listed)
        if not found:
            return 0
        for kind, obj in found:
            headers, body = cloud_event(kind, obj)
            for _ in range(2 if self.duplicate else 1):
                self.queue.append(Delivery(kind, obj.name, obj.generation, headers, body.decode()))
        self.seen = {obj.name: obj for obj in listed}
        self._save()
        return len(found)

    def deliver_due(self, now: float | None = None) -> int:
        """POST every queued event that is due, in order; returns how many were delivered."""
        delivered, attempted = 0, False
        kept: list[Delivery] = []
        clock = time.monotonic() if now is None else now
        auth = {TASK_SECRET_HEADER: self.secret} if self.secret else {}
        for item in self.queue:
            if item.due > clock:
                kept.append(item)
                continue
            status = self.post(self.url, item.headers | auth, item.body.encode())
            item.attempts, attempted = item.attempts + 1, True
            what = f"{item.kind} {item.name}#{item.generation}"
            if 200 <= status < 300:
                delivered += 1
                self.say(f"events: {what} -> {status}")
            elif item.attempts >= self.max_attempts:
                self.say(f"events: {what} dropped after {item.attempts} attempts ({status})")
            else:
                wait = min(self.min_backoff_s * 2 ** (item.attempts - 1), self.max_backoff_s)
                item.due = time.monotonic() + wait
                self.say(f"events: {what} -> {status or 'no answer'}; retry in {wait:.1f}s")
                kept.append(item)
        self.queue = kept
        if attempted:
            self._save()
        return delivered

    def run(self, poll_s: float = POLL_S) -> None:
        while True:
            try:
                self.poll()
            except Exception as exc:  # the emulator restarting: try again next round
                self.say(f"events: listing gs://{self.bucket} failed: {type(exc).__name__}")
            self.deliver_due()
            time.sleep(poll_s)


def main() -> None:
    url, bucket = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    home = Path(os.environ.get("RAGLINE_HOME", ".ragline"))
    home.mkdir(parents=True, exist_ok=True)
    deliverer = Deliverer(
        url=url,
        bucket=bucket,
        state_path=home / "events.json",
        secret=os.environ.get("TASK_SECRET", ""),
        duplicate=os.environ.get("RAGLINE_DUPLICATE_EVENTS", "") not in ("", "0", "false"),
        say=lambda line: print(line, flush=True),
    )
    with contextlib.suppress(KeyboardInterrupt):
        deliverer.run(float(os.environ.get("RAGLINE_EVENT_POLL_S", POLL_S)))


if __name__ == "__main__":
    main()
