"""The local stack's Cloud Scheduler: POST a scheduled function at once, then every few
seconds (the first call also pays the function's imports while the stack starts, not in the
middle of the first workload).

    python -m ragline.dev.ticker URL EVERY_S   (TASK_SECRET from the environment)

Errors are logged and the loop goes on (the function may be down during a fault test)."""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.error
import urllib.request


def main() -> None:
    url, every = sys.argv[1], float(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    secret = os.environ.get("TASK_SECRET", "")
    while True:
        request = urllib.request.Request(
            url,
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json", "X-Ragline-Task-Secret": secret},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            status = 0
            print(f"ticker: {url}: {exc}", flush=True)
        if status != 200:
            print(f"ticker: {url} answered {status}", flush=True)
        time.sleep(every)


if __name__ == "__main__":
    main()
