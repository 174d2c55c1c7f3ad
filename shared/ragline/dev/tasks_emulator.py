"""gcloud-tasks-emulator with Cloud Tasks' concurrent dispatch.

The emulator delivers the tasks of a queue one at a time, each after the previous answered,
and sleeps 0.1 s whenever its snapshot of the queue runs out; Cloud Tasks keeps up to the
queue's `max_concurrent_dispatches` (5 in `terraform/`) in flight. Serial delivery made every
stage wait on its own hops: while one embed task wrote its vectors and answered, the model sat
idle (issue 16). This launcher runs the emulator itself (its gRPC API, its queues, its retry
count) with a dispatch loop that keeps up to `--concurrency` tasks of each queue in flight and
looks again as soon as one finishes.

Run by the emulator's own interpreter (`.venv-tasks`, which pins an old protobuf and has no
ragline): `python tasks_emulator.py --concurrency N start --port ... -d QUEUE ...`. It
imports nothing from ragline.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

#: Longest wait between looks at a queue (the emulator's own loop sleeps 0.1 s); a new task
#: or a finished delivery wakes it at once.
IDLE_WAIT_S = 0.1

#: Queue name → the event that wakes its dispatch loop.
_WAKE: dict[str, threading.Event] = {}


def _wake(queue: str) -> threading.Event:
    return _WAKE.setdefault(queue, threading.Event())


def _due(task: Any, now: datetime) -> bool:
    return not task.schedule_time or task.schedule_time < now


def _dispatch(server: Any, state: Any, queue: str, task: Any, lock: threading.Lock) -> None:
    """One delivery, as the emulator's `submit_task` makes it (same request, same retry
    count and limit), without holding the queue while the handler runs."""
    from urllib import error

    from google.cloud.tasks_v2 import Attempt
    from google.protobuf import timestamp_pb2

    def stamp() -> Any:
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(datetime.utcnow())
        return ts

    task.dispatch_count += 1
    dispatched = stamp()
    try:
        response = server._make_task_request(queue, task, state._target_host, state._target_port)
        status = response.status
        response.close()
    except error.HTTPError as exc:
        status = exc.code
        exc.close()
    except Exception:  # connection refused, reset, ...: as the emulator, a 500
        status = 500
    attempt = Attempt(
        schedule_time=dispatched, dispatch_time=dispatched, response_status={"code": status}
    )
    task.first_attempt = task.first_attempt or attempt
    task.last_attempt = attempt
    retry = 400 <= status < 600 and (
        state._max_retries < 0 or task.dispatch_count <= state._max_retries
    )
    if retry:
        with lock:
            state._queue_tasks[queue].append(task)


def _process_queue(server: Any, processor: Any, queue: str, concurrency: int) -> None:
    """Replaces `Processor._process_queue`: up to `concurrency` deliveries in flight."""
    state = processor._state
    lock = threading.Lock()
    slots = threading.Semaphore(concurrency)
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"dispatch-{queue[-20:]}")

    wake = _wake(queue)

    def run(task: Any) -> None:
        try:
            _dispatch(server, state, queue, task, lock)
        finally:
            slots.release()
            wake.set()

    while processor._is_running.is_set():
        if queue not in state._queues or queue not in state._queue_tasks:
            break
        wake.clear()
        if state.queue(queue).state == server.Queue.State.RUNNING:
            now = datetime.now(UTC)
            with lock:
                tasks = state._queue_tasks[queue]
                due = [t for t in tasks if _due(t, now)]
            for task in due:
                if not slots.acquire(blocking=False):
                    break  # all in flight: a finished delivery wakes the loop
                with lock:  # by identity: the same name may be queued twice (no dedup here)
                    index = next((i for i, t in enumerate(tasks) if t is task), None)
                    if index is not None:
                        del tasks[index]
                if index is None:
                    slots.release()
                    continue
                pool.submit(run, task)
        wake.wait(IDLE_WAIT_S)
    pool.shutdown(wait=False)


def main(argv: list[str]) -> None:
    from gcloud_tasks_emulator import __main__ as cli
    from gcloud_tasks_emulator import server

    concurrency = 1
    if argv[:1] == ["--concurrency"]:
        concurrency, argv = max(1, int(argv[1])), argv[2:]

    def process_queue(processor: Any, queue: str) -> None:
        if queue not in processor._known_queues:
            processor._known_queues.add(queue)
            thread = threading.Thread(
                target=_process_queue, args=(server, processor, queue, concurrency), daemon=True
            )
            processor._queue_threads[queue] = thread
            thread.start()

    create_task = server.QueueState.create_task

    def create_and_wake(state: Any, queue: str, task: Any) -> Any:
        created = create_task(state, queue, task)
        _wake(queue).set()
        return created

    server.Processor.process_queue = process_queue
    server.QueueState.create_task = create_and_wake
    sys.argv = ["gcloud-tasks-emulator", *argv]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
