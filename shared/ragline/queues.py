"""Queues that chain the pipeline stages: Cloud Tasks (GCP and its emulator), SQS, or inline.

`enqueue(stage, payload, task_name)` is the only entry point. Task names derive from the
document, stage and batch, so a re-enqueue is a no-op where the backend dedupes names
(Cloud Tasks `AlreadyExists`, SQS FIFO deduplication id); the stages' own idempotency
carries correctness everywhere else (the emulator, inline retries).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from ragline.config import Settings, get_settings
from ragline.errors import ConfigurationError, QueueError, TransientError

#: Pipeline stages reached through a queue, in order. One queue and one function each.
STAGES: tuple[str, ...] = ("chunk", "embed", "finalize")
TASK_SECRET_HEADER = "X-Ragline-Task-Secret"  # noqa: S105 - a header name
_NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


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
        _cloud_tasks(stage, payload, task_name, settings, delay_s)
    else:
        from ragline import sqs

        sqs.send(stage, payload, task_name, settings)


def _inline(stage: str, payload: dict[str, Any], settings: Settings) -> None:
    """Run the stage in-process, retrying transient failures like a queue would."""
    from ragline import pipeline

    attempts = max(1, settings.task_max_attempts)
    for attempt in range(attempts):
        outcome = pipeline.run_stage(stage, payload, attempt=attempt, max_attempts=attempts)
        if outcome.ok:
            return
    raise QueueError(f"inline {stage} task failed after {attempts} attempts")


def _tasks_client(settings: Settings) -> Any:
    key = settings.cloud_tasks_emulator_host or "gcp"
    with _client_lock:
        if key not in _clients:
            from google.cloud import tasks_v2

            if settings.cloud_tasks_emulator_host:
                import grpc
                from google.cloud.tasks_v2.services.cloud_tasks.transports import (
                    CloudTasksGrpcTransport,
                )

                channel = grpc.insecure_channel(settings.cloud_tasks_emulator_host)
                _clients[key] = tasks_v2.CloudTasksClient(
                    transport=CloudTasksGrpcTransport(channel=channel)
                )
            else:
                _clients[key] = tasks_v2.CloudTasksClient()
        return _clients[key]


def _cloud_tasks(
    stage: str, payload: dict[str, Any], task_name: str, settings: Settings, delay_s: float = 0
) -> None:
    from google.api_core import exceptions as gexc
    from google.cloud import tasks_v2

    url = settings.function_urls.get(stage)
    if not url:
        raise ConfigurationError(f"FUNCTION_URLS has no URL for stage {stage!r}")
    client = _tasks_client(settings)
    parent = client.queue_path(settings.gcp_project, settings.gcp_region, queue_name(stage))
    headers = {"Content-Type": "application/json"}
    if settings.task_secret is not None:
        headers[TASK_SECRET_HEADER] = settings.task_secret.get_secret_value()
    http_request: dict[str, Any] = {
        "http_method": tasks_v2.HttpMethod.POST,
        "url": url,
        "headers": headers,
        "body": json.dumps(payload).encode(),
    }
    if settings.task_service_account and not settings.cloud_tasks_emulator_host:
        http_request["oidc_token"] = {
            "service_account_email": settings.task_service_account,
            "audience": url,
        }
    task: dict[str, Any] = {"name": f"{parent}/tasks/{task_name}", "http_request": http_request}
    if delay_s > 0:
        from datetime import UTC, datetime, timedelta

        task["schedule_time"] = datetime.now(UTC) + timedelta(seconds=delay_s)
    try:
        client.create_task(parent=parent, task=task, timeout=10.0)
    except gexc.AlreadyExists:
        return  # the same task was enqueued before: success
    except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError) as exc:
        raise TransientError(f"Cloud Tasks unavailable: {exc.__class__.__name__}") from exc
    except gexc.GoogleAPICallError as exc:
        raise QueueError(f"Cloud Tasks refused the task: {exc.__class__.__name__}") from exc


def reset_clients() -> None:
    with _client_lock:
        _clients.clear()
