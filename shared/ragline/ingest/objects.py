"""A Cloud Storage (or S3) object event, whatever delivered it (issue 13)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ObjectEvent:
    kind: Literal["finalized", "deleted"]
    bucket: str
    name: str  # "orgs/<org_id>/<upload_id>/<filename>"
    #: Cloud Storage: the object generation; S3: the event sequencer as a number (< 2**128,
    #: stored as numeric(40)), ordered per key either way.
    generation: int
    content_type: str | None = None
    size: int | None = None
    event_id: str | None = None
    scheme: str = "gs"  # gs (Cloud Storage) or s3: the document's source_uri scheme
    #: The object's custom metadata (Cloud Storage events carry it; S3 notifications do not):
    #: `ragline-acl` is the ACL its upload URL signed (issue 18).
    metadata: dict[str, str] = field(default_factory=dict)
