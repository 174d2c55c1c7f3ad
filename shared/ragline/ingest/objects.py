"""A Cloud Storage (or S3) object event, whatever delivered it (issue 13)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ObjectEvent:
    kind: Literal["finalized", "deleted"]
    bucket: str
    name: str  # "orgs/<org_id>/<upload_id>/<filename>"
    generation: int
    content_type: str | None = None
    size: int | None = None
    event_id: str | None = None
