"""Queues that chain the pipeline stages: Cloud Tasks (GCP and its emulator), SQS, or inline.

`enqueue(stage, payload, task_name)` is the only entry point. Task names derive from the
document, stage and batch, so a re-enqueue is a no-op where the backend dedupes names
(Cloud Tasks `AlreadyExists`, SQS FIFO deduplication id); the stages' own idempotency
carries correctness everywhere else (the emulator, inline retries).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from ragline.core.config import Settings, get_settings
from ragline.core.errors import ConfigurationError, QueueError

#: Pipeline stages reached through a queue, in order. One queue and one function each.
STAGES: tuple[str, ...] = ("parse", "chunk", "embed", "finalize")
_NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,500}$")


def queue_name(stage: str, settings: Settings | None = None) -> str:
    """Short queue id of a stage, e.g. `ragline-chunk` (same name in Terraform)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    s = settings or get_settings()
    return f"{s.queue_prefix}-{stage}"


def can_defer(settings: Settings | None = None) -> bool:
    """Whether a task can be enqueued to run later (`delay_s`): Cloud Tasks only (SQS FIFO
    queues take no per-message delay; inline runs now)."""
    return (settings or get_settings()).queue_backend == "cloudtasks"


def enqueue(stage: str, payload: dict[str, Any], task_name: str, *, delay_s: float = 0) -> None:
    """Hand `payload` to `stage` through the configured backend (`delay_s`: Cloud Tasks
    schedules it that much later; see `can_defer`)."""
    if not _NAME_OK.match(task_name):
        raise ValueError(f"invalid task name {task_name!r}")
    settings = get_settings()
    backend = settings.queue_backend
    if backend == "inline":
        _inline(stage, payload, settings)
    elif backend == "cloudtasks":
        from ragline.cloud.gcp import cloud_tasks

        cloud_tasks.create_task(
            stage, queue_name(stage, settings), payload, task_name, settings, delay_s
        )
    else:
        from ragline.cloud.aws import sqs

        sqs.send(stage, payload, task_name, settings)


class InlineRunner(Protocol):
    """Runs one delivery of a stage task; True when it may be acknowledged."""

    def __call__(
        self, stage: str, payload: dict[str, Any], *, attempt: int, max_attempts: int
    ) -> bool: ...


_inline_runner: InlineRunner | None = None


def set_inline_runner(runner: InlineRunner | None) -> None:
    """The stage runner of QUEUE_BACKEND=inline; `ragline.ingest.pipeline` installs its own
    when imported (queues never import the pipeline: the dependency points one way)."""
    global _inline_runner
    _inline_runner = runner


def _inline(stage: str, payload: dict[str, Any], settings: Settings) -> None:
    """Run the stage in-process, retrying transient failures like a queue would."""
    if _inline_runner is None:
        raise ConfigurationError("QUEUE_BACKEND=inline but no stage runner is installed")
    attempts = max(1, settings.task_max_attempts)
    for attempt in range(attempts):
        if _inline_runner(stage, payload, attempt=attempt, max_attempts=attempts):
            return
    raise QueueError(f"inline {stage} task failed after {attempts} attempts")


def reset_clients() -> None:
    from ragline.cloud.gcp import cloud_tasks

    cloud_tasks.reset_clients()
