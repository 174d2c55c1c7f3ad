"""Per-instance admission: an HTTP function instance runs at most `max_concurrent_requests`
requests at once; one more waits up to `admission_wait_ms` for a slot, then gets
`429 overloaded` with `Retry-After: 1`, before any work is done for it (issue 16).

On Cloud Run the platform routes at most the function's concurrency to an instance and scales
out or answers 429 itself; Terraform sets this limit to the same value, so it never binds
there. Where one process serves every request (the local stack, a single container) it keeps
an overloaded instance from answering everyone late: the requests it admits run at the
latency of a busy machine, not of a queue behind it. 0 means two per CPU.
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


def limit() -> int:
    """The instance's concurrent-request limit."""
    from ragline.core.config import get_settings  # settings load pydantic: not at import

    configured = get_settings().max_concurrent_requests
    return configured or 2 * (os.cpu_count() or 1)


def _semaphore() -> threading.BoundedSemaphore:
    global _slots, _size
    size = limit()
    with _lock:
        if _slots is None or _size != size:
            _slots, _size = threading.BoundedSemaphore(size), size
        return _slots


@contextmanager
def admitted() -> Iterator[None]:
    """Hold one of the instance's slots for the request, or raise `OverloadedError`."""
    from ragline.core.config import get_settings

    slots = _semaphore()
    if not slots.acquire(timeout=get_settings().admission_wait_ms / 1000):
        raise OverloadedError(
            f"this instance is running its limit of {_size} requests: retry shortly",
            details={"retry_after": RETRY_AFTER_S},
        )
    try:
        yield
    finally:
        slots.release()
