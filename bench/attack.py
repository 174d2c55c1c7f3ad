"""The attack of issue 11, replayed on the real local stack: hostile inputs, crafted cursors
and ids, another org's ids on every route, pathological texts, oversized and chunked bodies.

Reports the count of 5xx answers, of leaks (another org's id or title in an answer), of
documents left unfinished, and the peak memory (VmHWM) of every function's process tree,
against the 512 MiB a function gets. `ok` when 5xx = leaks = stuck = 0 and memory < limit.

    .venv/bin/python bench/attack.py [--quick]

`tests/e2e/test_attack.py` runs `attack()` on the test session's stack in `make test`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FUNCTION_MEMORY_MIB = 512
MIB = 1024 * 1024


@dataclass
class Org:
    slug: str
    org_id: uuid.UUID
    key: str
    doc_ids: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class Tally:
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    five_xx: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, label: str, status: int) -> None:
        with self.lock:
            self.requests += 1
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if status >= 500:
                self.five_xx.append(f"{label}: {status}")


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: list[tuple[str, str]] | dict[str, str] | None = None,
    *,
    chunked_mb: int = 0,
    timeout: float = 120,
) -> tuple[int, bytes]:
    """One raw HTTP/1.1 request (headers may repeat); a chunked body of `chunked_mb` MiB is
    streamed without Content-Length. Returns (status, body); status 0 when the server closed
    the connection without an answer."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in items:
            conn.putheader(name, value)
        if chunked_mb:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            block = b"x" * MIB
            try:
                for _ in range(chunked_mb):
                    conn.send(b"%x\r\n" % len(block) + block + b"\r\n")
                conn.send(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered and closed early: read its answer
        else:
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (ConnectionError, http.client.RemoteDisconnected):
        return 0, b""
    finally:
        conn.close()


def tree_hwm_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of the largest process in `pid`'s tree, in MiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    peak, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return peak


# --------------------------------------------------------------------------- the cases


def crafted_cursors() -> list[str]:
    some = str(uuid.uuid4())
    return [
        f"0001-01-01T00:00:00+14:00|{some}",
        f"9999-12-31T23:59:59-14:00|{some}",
        f"2026-01-01T00:00:00|{some}",
        f"2026-01-01T00:00:00+00:00|{{{some}}}",
        f"2026-01-01T00:00:00+00:00|urn:uuid:{some}",
        "x" * 5000,
        "'; select pg_sleep(5); --|" + some,
        "\u0000|" + some,
        "%00",
        "|",
    ]


J = [("Content-Type", "application/json")]


def hostile_bodies() -> list[tuple[str, str, str, bytes, list[tuple[str, str]]]]:
    """(label, function, path, body, extra headers) sent with a valid key."""
    deep = b"[" * 5000 + b"]" * 5000
    cases: list[tuple[str, str, str, bytes, list[tuple[str, str]]]] = [
        (
            "ingest inf metadata",
            "ingest",
            "",
            b'{"title":"t","text":"x","metadata":{"n":1e999}}',
            J,
        ),
        ("search inf filter", "search", "", b'{"query":"x","filters":{"metadata":{"n":1e999}}}', J),
        (
            "answer inf filter",
            "answer",
            "",
            b'{"question":"x","filters":{"metadata":{"n":-1e999}}}',
            J,
        ),
        ("runs inf state", "runs", "", b'{"kind":"agent","state":{"n":1e999}}', J),
        ("runs NaN", "runs", "", b'{"kind":"agent","input":{"n":NaN}}', J),
        ("deep + idempotency", "ingest", "", deep, [*J, ("Idempotency-Key", "deep")]),
        ("deep", "runs", "", deep, J),
        (
            "dup idempotency",
            "runs",
            "",
            b'{"kind":"agent"}',
            [*J, ("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
        ),
        ("joined idempotency", "runs", "", b'{"kind":"agent"}', [*J, ("Idempotency-Key", "a,b")]),
        ("top_k string", "search", "", b'{"query":"x","top_k":"5"}', J),
        ("top_k bool", "search", "", b'{"query":"x","top_k":true}', J),
        ("top_k huge", "search", "", b'{"query":"x","top_k":99999999999999999999999}', J),
        ("lone surrogate", "ingest", "", b'{"title":"t","text":"\\ud800"}', J),
        ("NUL", "ingest", "", b'{"title":"t","text":"a\\u0000b"}', J),
        ("invalid utf-8", "ingest", "?title=t", b"\xff\xfe", [("Content-Type", "text/plain")]),
        ("xml", "ingest", "", b"<x/>", [("Content-Type", "application/xml")]),
        ("huge digits", "runs", "", b'{"kind":"agent","state":{"n":' + b"9" * 5000 + b"}}", J),
        ("empty", "answer", "", b"", J),
    ]
    return cases


PATHOLOGICAL = {
    "dots": "." * (256 * 1024),
    "commas": "," * (128 * 1024),
    "heading storm": "# h\n" * 40_000,
    "underline storm": "x\n===\n" * 20_000,
    "no spaces": "a" * (256 * 1024),
}


def attack(
    functions: dict[str, str],
    make_org: Callable[[str], Org],
    pids: dict[str, int],
    *,
    quick: bool = False,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Run every case against a running stack; return the report (see the module doc)."""
    tally = Tally()
    started = time.monotonic()
    suffix = uuid.uuid4().hex[:6]
    orgs = [make_org(f"atk-{name}-{suffix}") for name in ("a", "b", "c")]

    def send(
        label: str, fn: str, path: str = "", method: str = "GET", **kw: Any
    ) -> tuple[int, bytes]:
        status, body = request(functions[fn] + path.lstrip("/"), method, **kw)
        tally.count(label, status)
        return status, body

    # Each org owns documents and runs with unique titles.
    progress("seeding three orgs")
    for org in orgs:
        for i in range(2 if quick else 4):
            title = f"secret-{org.slug}-{i}"
            status, body = send(
                "seed ingest",
                "ingest",
                method="POST",
                body=json.dumps({"title": title, "text": f"{title} unique text {i}."}).encode(),
                headers={**org.auth, "Content-Type": "application/json"},
            )
            if status in (200, 202):
                org.doc_ids.append(json.loads(body)["document_id"])
                org.titles.append(title)
        status, body = send(
            "seed run",
            "runs",
            method="POST",
            body=b'{"kind":"agent"}',
            headers={**org.auth, "Content-Type": "application/json"},
        )
        if status == 201:
            org.run_ids.append(json.loads(body)["id"])

    def leaked(org: Org, body: bytes, sent: str = "") -> None:
        """Another org's id or title in an answer to `org`, unless the request itself carried
        it (a 404 or `deleted: false` naming the id the caller sent is an echo, not a leak)."""
        text = body.decode("utf-8", "replace")
        for other in orgs:
            if other is org:
                continue
            for secret in other.doc_ids + other.run_ids + other.titles:
                if secret in text and secret not in sent:
                    tally.leaks.append(f"{org.slug} saw {secret}")

    progress("crafted cursors")
    for org in orgs:
        for cursor in crafted_cursors():
            for fn in ("documents", "runs"):
                q = urllib.parse.urlencode({"cursor": cursor})
                _, body = send(f"cursor {fn}", fn, f"?{q}", headers=org.auth)
                leaked(org, body)
        for fn in ("documents", "runs"):  # the pool must still be in step
            for _ in range(3):
                status, body = send(f"after cursors {fn}", fn, headers=org.auth)
                leaked(org, body)

    progress("another org's ids on every route")
    a, b = orgs[0], orgs[1]
    for doc in b.doc_ids:
        for method, path in (
            ("GET", doc),
            ("DELETE", doc),
            ("GET", f"{{{doc}}}"),
            ("DELETE", f"{doc}/x/y"),
        ):
            _, body = send(
                f"cross-org {method} document", "documents", path, method, headers=a.auth
            )
            leaked(a, body, path)
        query = json.dumps({"query": "secret unique text", "filters": {"document_ids": [doc]}})
        for fn in ("search", "answer"):
            payload = query if fn == "search" else query.replace('"query"', '"question"')
            _, body = send(
                f"cross-org {fn}",
                fn,
                method="POST",
                body=payload.encode(),
                headers={**a.auth, "Content-Type": "application/json"},
            )
            leaked(a, body, payload)
    for run in b.run_ids:
        for path in (run, f"{a.run_ids[0]}/compare/{run}" if a.run_ids else run):
            _, body = send("cross-org run", "runs", path, headers=a.auth)
            leaked(a, body, path)
        _, body = send(
            "cross-org patch run",
            "runs",
            run,
            "PATCH",
            body=b'{"state":{"x":1}}',
            headers={**a.auth, "Content-Type": "application/json"},
        )
        leaked(a, body, run)

    progress("hostile bodies")
    for label, fn, path, body, extra in hostile_bodies():
        _, answer = send(label, fn, path, "POST", body=body, headers=[*a.auth.items(), *extra])
        leaked(a, answer)

    progress("pathological texts")
    pathological_docs: list[str] = []
    # Quick: two shapes at 1/8 of the size (the embedding, not the attack, takes the time).
    texts = (
        {name: text[: len(text) // 8] for name, text in list(PATHOLOGICAL.items())[:2]}
        if quick
        else PATHOLOGICAL
    )
    for name, text in texts.items():
        status, body = send(
            f"pathological {name}",
            "ingest",
            f"?title={urllib.parse.quote(name)}",
            "POST",
            body=text.encode(),
            headers={**a.auth, "Content-Type": "text/plain"},
        )
        if status in (200, 202):
            pathological_docs.append(json.loads(body)["document_id"])

    progress("oversized and chunked bodies")
    limit_mb = 11
    send(
        "declared 40 MiB unauthenticated",
        "answer",
        method="POST",
        body=b"x" * (40 * MIB),
        headers=J,
    )
    send(
        "declared 11 MiB",
        "ingest",
        "?title=big",
        "POST",
        body=b"x" * (limit_mb * MIB),
        headers={**a.auth, "Content-Type": "text/plain"},
    )
    send(
        "chunked 100 MiB unauthenticated",
        "answer",
        method="POST",
        headers=J,
        chunked_mb=30 if quick else 100,
    )
    send(
        "chunked 30 MiB",
        "ingest",
        "?title=chunked",
        "POST",
        headers={**a.auth, "Content-Type": "text/plain"},
        chunked_mb=30,
    )
    threads = [
        threading.Thread(
            target=send,
            args=("parallel chunked 40 MiB", "answer"),
            kwargs={"method": "POST", "headers": J, "chunked_mb": 10 if quick else 40},
        )
        for _ in range(4 if quick else 8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    progress("waiting for every document to finish")
    stuck: list[str] = []
    deadline = time.monotonic() + (240 if quick else 600)
    states: dict[str, str] = {}
    for org in orgs:
        for doc in org.doc_ids + (pathological_docs if org is a else []):
            while True:
                status, body = send("poll", "documents", doc, headers=org.auth)
                state = json.loads(body).get("status", "?") if status == 200 else str(status)
                if state in ("ready", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            states[doc] = state
            if state not in ("ready", "failed"):
                stuck.append(f"{doc}: {state}")
    failed_reasons = []
    for doc in pathological_docs:
        status, body = send("pathological detail", "documents", doc, headers=a.auth)
        detail = json.loads(body)
        failed_reasons.append(
            {"status": detail.get("status"), "error": (detail.get("error") or "")[:80]}
        )

    progress("final listings: each org sees only its own")
    for org in orgs:
        for fn in ("documents", "runs"):
            _, body = send("final listing", fn, headers=org.auth)
            leaked(org, body)

    memory = {name: round(tree_hwm_mib(pid), 1) for name, pid in pids.items() if name in functions}
    worst = max(memory.values(), default=0.0)
    return {
        "quick": quick,
        "requests": tally.requests,
        "by_status": {str(k): v for k, v in sorted(tally.by_status.items())},
        "five_xx": len(tally.five_xx),
        "five_xx_cases": tally.five_xx[:20],
        "leaks": len(tally.leaks),
        "leak_cases": tally.leaks[:20],
        "stuck_documents": stuck,
        "pathological_outcomes": failed_reasons,
        "peak_memory_mib": memory,
        "worst_memory_mib": worst,
        "memory_limit_mib": FUNCTION_MEMORY_MIB,
        "seconds": round(time.monotonic() - started, 1),
        "ok": not tally.five_xx and not tally.leaks and not stuck and worst < FUNCTION_MEMORY_MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import exit_on_sigterm, record

    from ragline.core.config import get_settings
    from ragline.db import engine as db
    from ragline.db import orgs, tenancy
    from ragline.dev import devstack
    from ragline.guardrails import apikeys

    exit_on_sigterm()
    os.environ["RAGLINE_HOME"] = tempfile.mkdtemp(prefix="rla-", dir="/tmp")
    os.environ.pop("DATABASE_URL", None)
    get_settings.cache_clear()
    stack = devstack.start(progress=lambda m: print(f"[attack] {m}", file=sys.stderr))

    def make_org(slug: str) -> Org:
        with db.owner_session() as session:
            org_id, _ = orgs.ensure_org(
                session, slug, settings={"rate_limits": {"crud": 100_000, "agent": 100_000}}
            )
            tenancy.bind_org(session, org_id)
            _, raw = apikeys.create_key(session, "attack", ["read", "write"])
        return Org(slug, org_id, raw)

    try:
        report = attack(
            stack.functions,
            make_org,
            stack.pids,
            quick=args.quick,
            progress=lambda m: print(f"[attack] {m}", file=sys.stderr, flush=True),
        )
    finally:
        devstack.stop(stack)
    record("attack", report)


if __name__ == "__main__":
    main()
