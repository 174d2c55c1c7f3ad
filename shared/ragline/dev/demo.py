"""`make demo`: the main job on the local stack, offline, with no credentials.

Starts the stack, ingests Python's reference topics through the HTTP API, waits until every
document is ready, runs a few searches; then gives it files as people have them (an HTML page
and a DOCX posted raw to `ingest`, a PDF uploaded through a signed URL into the local bucket,
whose object event starts the pipeline), asks a question about each and prints the answer
with its cited page; prints totals, and stops the stack.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragline.dev import devstack
from ragline.dev.corpus import pydoc_topics

SEARCHES = (
    "how do I catch an exception and clean up afterwards",
    "format a number with two decimal places",
    "what makes an object usable in a with statement",
)


def _post(url: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


_last_shown: dict[str, int] = {}


def _bar(done: int, total: int, label: str, width: int = 30) -> None:
    """A progress bar on a terminal; a line per quarter when output is a log."""
    filled = width * done // max(total, 1)
    line = f"  {label:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if done >= total else ""))
    else:
        quarter = 4 * done // max(total, 1)
        if _last_shown.get(label) == quarter:
            return
        _last_shown[label] = quarter
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def wait_all_ready(
    stack: devstack.Stack, ids: list[str], timeout: float, on_progress: Callable[[int], None]
) -> dict[str, dict[str, Any]]:
    """Poll until every document is ready or failed; returns their final descriptions."""
    pending = set(ids)
    final: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for doc_id in sorted(pending):
            doc = devstack.get_json(stack.functions["documents"] + doc_id, stack.api_key)
            if doc.get("status") in ("ready", "failed"):
                final[doc_id] = doc
                pending.discard(doc_id)
        on_progress(len(final))
        if pending:
            time.sleep(0.5)
    if pending:
        raise TimeoutError(f"{len(pending)} documents still not ready after {timeout:.0f}s")
    return final


def _post_file(url: str, key: str, path: Path, ctype: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        f"{url}?filename={urllib.parse.quote(path.name)}",
        data=path.read_bytes(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": ctype},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def files_demo(stack: devstack.Stack, say: Callable[[str], None]) -> dict[str, Any]:
    """PDF, HTML and DOCX: two posted raw, the PDF uploaded through the bucket; a question
    each, answered with its citation's page."""
    from ragline.dev import samples, uploader

    folder = Path(tempfile.mkdtemp(prefix="ragline-samples-"))
    pdf, html, docx = samples.write_samples(folder)
    started = time.monotonic()
    say("\n==> files: an HTML page and a DOCX posted raw to ingest")
    ids: list[str] = []
    for path in (html, docx):
        ctype = uploader.CONTENT_TYPES[path.suffix]
        status, body = _post_file(stack.functions["ingest"], stack.api_key, path, ctype)
        if status not in (200, 202):
            raise RuntimeError(f"ingest of {path.name} failed: {status} {body}")
        say(f"  {path.name} ({ctype}) → {status} {body['document_id']}")
        ids.append(body["document_id"])
    say(f"==> files: {pdf.name} uploaded through a signed URL into gs://{stack.upload_bucket}")
    client = uploader.http_client()
    upload = uploader.Upload(pdf, uploader.CONTENT_TYPES[".pdf"], pdf.stat().st_size)
    uploader.request_url(client, stack, stack.api_key, upload)
    uploader.put_file(client, upload, lambda _n: None)
    say(f"  object {upload.object}: its finalized event → on_upload → parse → chunk → embed")
    uploader.wait_documents(client, stack, stack.api_key, [upload], 300, lambda _n: None)
    final = wait_all_ready(stack, ids, 300, lambda _n: None)
    final[upload.document["id"]] = upload.document
    for doc in final.values():
        source = doc.get("source") or {}
        pages = f", {source['page_count']} pages" if source.get("page_count") else ""
        say(f"  {doc['status']}: {doc['title']!r} ({source.get('format')}{pages})")
    asked = 0
    for fact in samples.FACTS:
        status, body = _post(
            stack.functions["answer"], stack.api_key, {"question": fact.question, "top_k": 3}
        )
        say(f"\n==> ask: {fact.question}")
        say(f"  {' '.join(str(body.get('answer', body)).split())[:240]}")
        for citation in body.get("citations", [])[:2]:
            page = f", page {citation['page']}" if citation.get("page") else ""
            say(f"  [{citation['ref']}] {citation['title']}{page}")
        asked += int(fact.answer in str(body.get("answer", "")))
    return {
        "documents": len(final),
        "ready": sum(d["status"] == "ready" for d in final.values()),
        "answers_with_the_fact": asked,
        "seconds": round(time.monotonic() - started, 1),
    }


def run(say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo; returns the totals it printed."""
    say("==> starting the local stack (embedded Postgres, Cloud Tasks emulator, functions)")
    stack = devstack.start(progress=lambda m: say(f"  {m}"))
    console = devstack.console_url(stack)
    if console:
        say(f"==> console: {console} (while the demo runs; `make dev` keeps a stack running,")
        say("    and `ragline dev key` prints the API key to paste)")
    try:
        corpus = pydoc_topics()
        say(f"==> ingesting {len(corpus)} documents (pydoc_data.topics) over HTTP")
        started = time.monotonic()
        ids: list[str] = []
        duplicates = 0
        for i, (title, text) in enumerate(corpus, start=1):
            status, body = _post(
                stack.functions["ingest"],
                stack.api_key,
                {
                    "title": title,
                    "text": text,
                    "kind": "python-reference",
                    "source_uri": f"pydoc:{title}",
                },
            )
            if status not in (200, 202):
                raise RuntimeError(f"ingest of {title!r} failed: {status} {body}")
            if body["document_id"] in ids:
                duplicates += 1  # same content as an earlier topic: the same document
            else:
                ids.append(body["document_id"])
            _bar(i, len(corpus), "ingested")
        say("==> waiting for chunk → embed → finalize")
        final = wait_all_ready(stack, ids, 1800, lambda n: _bar(n, len(ids), "ready"))
        elapsed = time.monotonic() - started
        failed = [d for d in final.values() if d["status"] != "ready"]
        chunks = sum(int(d["chunks"]["total"]) for d in final.values())
        for query in SEARCHES:
            status, body = _post(
                stack.functions["search"], stack.api_key, {"query": query, "top_k": 3}
            )
            say(f"\n==> search: {query!r} ({body.get('took_ms', '?')} ms)")
            for rank, hit in enumerate(body.get("results", []), start=1):
                snippet = " ".join(hit["text"].split())[:110]
                label = hit["section_label"] or ""
                say(f"  {rank}. [{hit['title']}] {label[:40]}  score {hit['score']:.4f}")
                say(f"     {snippet}…")
        totals: dict[str, Any] = {
            "posted": len(corpus),
            "documents": len(final),
            "duplicate_content": duplicates,
            "failed": len(failed),
            "chunks": chunks,
            "seconds": round(elapsed, 1),
            "chunks_per_s": round(chunks / elapsed, 1) if elapsed else 0.0,
        }
        totals["files"] = files_demo(stack, say)
        say(f"\n==> totals: {json.dumps(totals)}")
        for doc in failed:
            say(f"  failed: {doc['title']}: {doc['error']}")
        if console:
            say("==> to click through the console: `make dev`, open the console URL it prints")
            say("    and paste the key from `ragline dev key` (docs/console.md)")
        return totals
    finally:
        say("==> stopping the local stack")
        devstack.stop(stack)
