"""Per-instance admission: an HTTP function instance runs at most `max_concurrent_requests`
requests at once; with `admission_wait_ms` set, as many more may wait that long for a slot.
Any other request gets `429 overloaded` with `Retry-After: 1` at once, before any work is
done for it (issue 16). The default refuses at once: on the load bench (2 cores, 16 clients)
a waiting line of two per instance, 1 s at most, doubled the p95 of the searches it let in
(236 ms against 111 ms, single client 29 ms) for 5 % more served requests.

On Cloud Run the platform routes at most the function's concurrency to an instance and scales
out or queues itself; Terraform passes the same value here, so this never binds there. Where
one process serves every request (the local stack, a single container) it keeps an overloaded
instance from answering everyone late: an overload is told to come back (the console and
the load bench's clients honour Retry-After), and the requests it admits run at the speed of
a busy machine, not of a queue behind it. The default, one request per CPU, suits
the functions' work: a search is ~25 ms of CPU (most of it the query embedding) under one
interpreter lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ragline.core.errors import OverloadedError

RETRY_AFTER_S = 1
_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None
_size = 0
_waiting = 0


def limit() -> int:
    """The instance's concurrent-request limit (0 configured: one per CPU)."""
    from ragline.core.config import get_settings  # settings load pydantic: not at import

    return get_settings().max_concurrent_requests or (os.cpu_count() or 1)


def _semaphore(size: int) -> threading.BoundedSemaphore:
    global _slots, _size
    with _lock:
        if _slots is None or _size != size:
            _slots, _size = threading.BoundedSemaphore(size), size
        return _slots


def _overloaded(size: int) -> OverloadedError:
    return OverloadedError(
        f"this instance is running its limit of {size} requests: retry shortly",
        details={"retry_after": RETRY_AFTER_S},
    )


@contextmanager
def admitted() -> Iterator[None]:
    """Hold one of the instance's slots for the request, or raise `OverloadedError`: at once
    when as many requests already wait as there are slots, else after `admission_wait_ms`."""
    global _waiting
    from ragline.core.config import get_settings

    size = limit()
    slots = _semaphore(size)
    if not slots.acquire(blocking=False):
        with _lock:
            if _waiting >= size:
                raise _overloaded(size)
            _waiting += 1
        try:
            acquired = slots.acquire(timeout=get_settings().admission_wait_ms / 1000)
        finally:
            with _lock:
                _waiting -= 1
        if not acquired:
            raise _overloaded(size)
    try:
        yield
    finally:
        slots.release()
