"""End-to-end time of a folder of mixed files (PDF, HTML, DOCX) on the real local stack, two
ways side by side in one run: posted raw to `ingest`, and uploaded the way `ragline upload`
does (a signed URL from `uploads`, a PUT into the Cloud Storage emulator, the object event →
`on_upload` → parse → chunk → embed). Each path runs on its own copy of the folder; the time
is from the first request to the last document ready.

    .venv/bin/python bench/upload_folder.py [--files 24] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import exit_on_sigterm, record


def say(message: str) -> None:
    print(f"[upload_folder] {message}", file=sys.stderr, flush=True)


def make_folder(folder: Path, files: int, tag: str) -> list[Path]:
    """`files` distinct files, a third each PDF (2-12 pages), HTML and DOCX."""
    from ragline.testing import documents as samples

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        kind = i % 3
        title = f"Widget Guide {tag} {i}"
        if kind == 0:
            path, data = (
                folder / f"guide-{i}.pdf",
                samples.pdf_with_headings(title=title, pages=2 + (i % 11)),
            )
        elif kind == 1:
            path, data = folder / f"page-{i}.html", samples.html_page(title=title, repeat=2)
        else:
            path, data = folder / f"handbook-{i}.docx", samples.docx_with_headings(title=title)
        path.write_bytes(data)
        paths.append(path)
    return paths


def post_raw(stack: Any, paths: list[Path]) -> list[str]:
    from ragline.dev.demo import _post_file
    from ragline.dev.uploader import CONTENT_TYPES

    ids = []
    for path in paths:
        status, body = _post_file(
            stack.functions["ingest"], stack.api_key, path, CONTENT_TYPES[path.suffix]
        )
        if status not in (200, 202):
            raise RuntimeError(f"ingest {path.name}: {status} {body}")
        ids.append(body["document_id"])
    return ids


def upload(stack: Any, paths: list[Path]) -> list[Any]:
    from ragline.dev import uploader

    client = uploader.http_client()
    uploads = [
        uploader.Upload(p, uploader.CONTENT_TYPES[p.suffix], p.stat().st_size) for p in paths
    ]
    for item in uploads:
        uploader.request_url(client, stack, stack.api_key, item)
        uploader.put_file(client, item, lambda _n: None)
    return uploads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    exit_on_sigterm()

    home = Path(tempfile.mkdtemp(prefix="rlbu-", dir="/tmp"))
    for name in ("DATABASE_URL", "QUEUE_BACKEND"):
        os.environ.pop(name, None)
    os.environ["RAGLINE_HOME"] = str(home)
    os.environ.setdefault("EMBEDDING_PROVIDER", "minilm")

    from ragline.core.config import get_settings
    from ragline.dev import devstack, uploader
    from ragline.dev.demo import wait_all_ready

    get_settings.cache_clear()
    raw_paths = make_folder(home / "raw", args.files, "raw")
    up_paths = make_folder(home / "up", args.files, "up")
    size = sum(p.stat().st_size for p in raw_paths)
    say(f"{args.files} files, {size / 1e6:.2f} MB per copy; starting the local stack in {home}")
    stack = devstack.start(progress=lambda m: say(f"  {m}"))
    try:
        warm = make_folder(home / "warm", 3, "warm")  # first-request imports, not timed
        wait_all_ready(stack, post_raw(stack, warm), args.timeout, lambda _n: None)

        started = time.monotonic()
        ids = post_raw(stack, raw_paths)
        final = wait_all_ready(stack, ids, args.timeout, lambda _n: None)
        raw_s = time.monotonic() - started
        say(f"raw ingest: {raw_s:.1f} s")

        started = time.monotonic()
        uploads = upload(stack, up_paths)
        put_s = time.monotonic() - started
        client = uploader.http_client()
        uploader.wait_documents(
            client, stack, stack.api_key, uploads, args.timeout, lambda _n: None
        )
        up_s = time.monotonic() - started
        say(f"upload: {up_s:.1f} s (URLs + PUTs {put_s:.1f} s)")
    finally:
        devstack.stop(stack)

    up_docs = [u.document for u in uploads]
    pages = sum(int((d.get("source") or {}).get("page_count") or 0) for d in final.values())
    chunks = sum(int(d["chunks"]["total"]) for d in final.values())
    result = {
        "files": args.files,
        "megabytes": round(size / 1e6, 3),
        "pdf_pages": pages,
        "chunks": chunks,
        "raw_ingest": {
            "seconds": round(raw_s, 2),
            "files_per_s": round(args.files / raw_s, 2),
            "ready": sum(d["status"] == "ready" for d in final.values()),
        },
        "upload": {
            "seconds": round(up_s, 2),
            "files_per_s": round(args.files / up_s, 2),
            "urls_and_puts_s": round(put_s, 2),
            "ready": sum(d.get("status") == "ready" for d in up_docs),
        },
        "upload_over_raw": round(up_s / raw_s, 2),
        "notes": "one run, same stack, raw first then upload, distinct copies of the folder; "
        "upload includes the event deliverer's 0.5 s listing period",
    }
    if args.no_record:
        import json

        print(json.dumps(result, indent=2))
    else:
        record("upload_folder", result)


if __name__ == "__main__":
    main()
