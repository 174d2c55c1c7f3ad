"""The front of the pipeline: parse an ingest request and hand the document to the queue."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Request

from ragline import queues
from ragline.documents import Ingested, NewDocument
from ragline.errors import MalformedBodyError, UnsupportedMediaTypeError, ValidationError
from ragline.http import check_query_args, read_body, validate, validate_json

TEXT_TYPES = ("text/plain", "text/markdown")
#: A pending document re-submitted after this long gets its chunk task enqueued again.
REQUEUE_AFTER_S = 60


def parse_request(req: Request) -> NewDocument:
    """JSON `{title, text, kind?, metadata?, source_uri?}` or a text body with `?title=`."""
    ctype = (req.mimetype or "").lower()
    raw = read_body(req)
    if ctype == "application/json":
        return validate_json(NewDocument, raw)
    if ctype in TEXT_TYPES:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedBodyError("body is not valid UTF-8") from exc
        check_query_args(req)
        title = req.args.get("title")
        if not title:
            raise ValidationError("a text body needs the title in the ?title= query parameter")
        fields: dict[str, Any] = {
            "title": title,
            "text": text,
            "kind": req.args.get("kind") or ("markdown" if ctype == "text/markdown" else "text"),
        }
        if req.args.get("source_uri"):
            fields["source_uri"] = req.args["source_uri"]
        return validate(NewDocument, fields)
    raise UnsupportedMediaTypeError(
        "Content-Type must be application/json, text/markdown or text/plain"
    )


def start_pipeline(org_id: uuid.UUID, result: Ingested) -> None:
    """Enqueue the chunk task (after commit). A re-submitted document still pending is
    enqueued again under a new name, so a lost enqueue heals on the client's retry."""
    doc = result.document
    if result.created:
        name = f"chunk-{doc.id}"
    elif doc.status == "pending":
        name = f"chunk-{doc.id}-r{int(time.time()) // REQUEUE_AFTER_S}"
    else:
        return
    queues.enqueue("chunk", {"org_id": str(org_id), "document_id": str(doc.id)}, name)


def describe(result: Ingested) -> dict[str, Any]:
    return {
        "document_id": str(result.document.id),
        "run_id": str(result.run_id) if result.run_id else None,
        "status": result.document.status,
        "created": result.created,
    }
