"""Cloud Tasks (and SQS / inline) queues that chain the pipeline stages."""

from __future__ import annotations

from ragline.config import Settings, get_settings

#: Pipeline stages reached through a queue, in order. One queue and one function each.
STAGES: tuple[str, ...] = ("chunk", "embed", "finalize")


def queue_name(stage: str, settings: Settings | None = None) -> str:
    """Short queue id of a stage, e.g. `ragline-chunk` (same name in Terraform)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    s = settings or get_settings()
    return f"{s.queue_prefix}-{stage}"
