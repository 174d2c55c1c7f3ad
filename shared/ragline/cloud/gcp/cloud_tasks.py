"""Cloud Tasks: one HTTP task per call, with OIDC auth in Google Cloud or a shared-secret
header locally; the emulator is reached over plain gRPC (`CLOUD_TASKS_EMULATOR_HOST`).

An existing task name is success (Cloud Tasks de-duplicates names); unavailability is a
TransientError, any other refusal a QueueError."""

from __future__ import annotations

import json
import threading
from typing import Any

from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError, QueueError, TransientError

#: Header carrying TASK_SECRET to task endpoints locally (TASK_AUTH=secret).
TASK_SECRET_HEADER = "X-Ragline-Task-Secret"  # noqa: S105 - a header name
_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


def tasks_client(settings: Settings) -> Any:
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


def create_task(
    stage: str,
    queue: str,
    payload: dict[str, Any],
    task_name: str,
    settings: Settings,
    delay_s: float = 0,
) -> None:
    """Create the task `task_name` in `queue`, calling the URL of `stage` (FUNCTION_URLS)."""
    from google.api_core import exceptions as gexc
    from google.cloud import tasks_v2

    url = settings.function_urls.get(stage)
    if not url:
        raise ConfigurationError(f"FUNCTION_URLS has no URL for stage {stage!r}")
    client = tasks_client(settings)
    parent = client.queue_path(settings.gcp_project, settings.gcp_region, queue)
    headers = {"Content-Type": "application/json"}
    if settings.task_secret is not None:
        headers[TASK_SECRET_HEADER] = settings.task_secret.get_secret_value()
    http_request: dict[str, Any] = {
        "http_method": tasks_v2.HttpMethod.POST,
        "url": url,
        "headers": headers,
        "body": json.dumps(payload).encode(),
    }
    # Each stage's queue calls with that stage's invoker identity (the only one its handler
    # accepts): TASK_SERVICE_ACCOUNTS[stage], else TASK_SERVICE_ACCOUNT.
    invoker = settings.task_service_accounts.get(stage) or settings.task_service_account
    if invoker and not settings.cloud_tasks_emulator_host:
        http_request["oidc_token"] = {"service_account_email": invoker, "audience": url}
    task: dict[str, Any] = {"name": f"{parent}/tasks/{task_name}", "http_request": http_request}
    if delay_s > 0:
        from datetime import UTC, datetime, timedelta

        task["schedule_time"] = datetime.now(UTC) + timedelta(seconds=delay_s)
    try:
        client.create_task(parent=parent, task=task, timeout=10.0)
    except gexc.AlreadyExists:
        return  # the same task was enqueued before: success
    except (
        gexc.ServiceUnavailable,
        gexc.DeadlineExceeded,
        gexc.InternalServerError,
        gexc.TooManyRequests,  # RESOURCE_EXHAUSTED: quota or an overloaded queue
        gexc.Aborted,
        gexc.Cancelled,
        gexc.Unknown,
    ) as exc:
        raise TransientError(f"Cloud Tasks unavailable: {exc.__class__.__name__}") from exc
    except gexc.GoogleAPICallError as exc:
        raise QueueError(f"Cloud Tasks refused the task: {exc.__class__.__name__}") from exc


def reset_clients() -> None:
    with _client_lock:
        _clients.clear()
