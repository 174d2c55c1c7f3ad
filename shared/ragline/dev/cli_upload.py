"""`ragline upload`: files and folders to the local stack through signed URLs, and
`ragline upload --delete OBJECT` (registered in ragline.dev.cli; logic in ragline.dev.uploader)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ragline.dev.devstack import Stack
    from ragline.dev.uploader import Upload


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def upload_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="files or folders (walked recursively, hidden files skipped)"),
    ] = None,
    org: Annotated[str | None, typer.Option(help="org slug (default: the demo org)")] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="return once uploaded; do not wait for documents")
    ] = False,
    delete: Annotated[
        str | None,
        typer.Option("--delete", metavar="OBJECT", help="delete an uploaded object instead"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the documents")] = 600,
) -> None:
    """Upload PDF, HTML, DOCX, Markdown and text files to the local stack (`ragline dev`):
    a signed URL from the `uploads` function, a PUT to Cloud Storage, then wait until each
    document is ready or failed."""
    from ragline.dev import devstack, uploader

    stack = devstack.load()
    if stack is None or not stack.storage:
        _fail("no local stack with Cloud Storage running: start one with `ragline dev --detach`")
    assert stack is not None
    if delete is not None:
        if paths:
            _fail("give either files to upload or --delete OBJECT, not both")
        try:
            gone = uploader.delete(stack, delete)
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(f"deleted {delete}" if gone else f"nothing to delete: {delete}")
        return
    if not paths:
        _fail("nothing to upload: give files or folders (or --delete OBJECT)")
    try:
        files, skipped = uploader.collect(list(paths or []))
    except FileNotFoundError as exc:
        _fail(str(exc))
    for path in skipped:
        typer.echo(f"skipped {path} (not PDF, HTML, DOCX, Markdown or text)", err=True)
    if not files:
        _fail("no file to upload")
    uploads = [
        uploader.Upload(p, uploader.content_type_for(p) or "", p.stat().st_size) for p in files
    ]
    try:
        with uploader.org_key(stack, org) as key, uploader.http_client() as client:
            _send(client, stack, key, uploads)
            sent = [u for u in uploads if not u.error]
            if sent and not no_wait:
                _wait(client, stack, key, sent, timeout)
    except LookupError as exc:
        _fail(str(exc))
    _summary(uploads, waited=not no_wait)
    # Failed: a refused upload, or (when waiting) a document that is not ready.
    if any(u.error or (not no_wait and u.document.get("status") != "ready") for u in uploads):
        raise typer.Exit(1)


def _send(client: Any, stack: Stack, key: str, uploads: list[Upload]) -> None:
    from ragline.dev import uploader

    total = sum(u.size for u in uploads)
    with typer.progressbar(length=total, label="uploading", file=sys.stderr) as bar:
        for upload in uploads:
            try:
                uploader.request_url(client, stack, key, upload)
                uploader.put_file(client, upload, bar.update)
            except Exception as exc:  # one refused file does not stop the others
                upload.error = str(exc)
                bar.update(upload.size)


def _wait(client: Any, stack: Stack, key: str, uploads: list[Upload], timeout: float) -> None:
    from ragline.dev import uploader

    typer.echo(f"waiting for {len(uploads)} document(s)", err=True)
    with typer.progressbar(length=len(uploads), label="documents", file=sys.stderr) as bar:
        shown = 0

        def progress(done: int) -> None:
            nonlocal shown
            bar.update(done - shown)
            shown = done

        try:
            uploader.wait_documents(client, stack, key, uploads, timeout, progress)
        except TimeoutError as exc:
            typer.secho(str(exc), fg=typer.colors.YELLOW, err=True)


def _summary(uploads: list[Upload], *, waited: bool) -> None:
    for u in uploads:
        doc = u.document
        if u.error:
            typer.secho(f"  failed   {u.path}: {u.error}", fg=typer.colors.RED)
        elif not waited:
            typer.echo(f"  uploaded {u.path} -> {u.object}")
        elif not doc:
            typer.echo(f"  waiting  {u.path} -> {u.object} (no document yet)")
        elif doc.get("status") == "ready":
            typer.echo(
                f"  ready    {u.path}: {doc.get('title')!r}, {doc.get('chunk_count')} chunks"
            )
        else:
            reason = doc.get("failure_reason") or doc.get("error") or ""
            status = str(doc.get("status"))
            typer.secho(f"  {status:<8} {u.path}: {reason}", fg=typer.colors.YELLOW)
    ok = sum(1 for u in uploads if not u.error)
    ready = sum(1 for u in uploads if u.document.get("status") == "ready")
    tail = f", {ready} ready" if waited else ""
    typer.echo(f"{ok}/{len(uploads)} uploaded{tail}")
