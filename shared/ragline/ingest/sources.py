"""Where a file document's bytes are: posted to `ingest` (kept in `document_file`), or an
object of the ingestion bucket (`gs://` or `s3://`, at the generation its event named).

Only the upload event handler (`ragline.ingest.uploads`) sets `source_generation`, so a
client-supplied `source_uri` is a label, never a location the parse stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from ragline.core.errors import ExtractionError, ObjectGoneError
from ragline.db import tenancy
from ragline.db.models import Document, DocumentFile


@dataclass(frozen=True)
class Source:
    content_type: str | None
    data: bytes | None = None  # a posted file
    uri: str | None = None  # an object: gs://bucket/name or s3://bucket/key
    generation: int | None = None


def locate(session: Session, doc: Document) -> Source:
    """With a tenant session: where the document's file is (its bytes, when posted)."""
    if doc.source_generation is not None and doc.source_uri:
        return Source(doc.content_type, uri=doc.source_uri, generation=int(doc.source_generation))
    data = session.scalar(
        tenancy.scoped_select(
            session, DocumentFile, DocumentFile.document_id == doc.id
        ).with_only_columns(DocumentFile.data)
    )
    if data is None:
        raise ExtractionError("source_gone", "the document's file is no longer stored")
    return Source(doc.content_type, data=bytes(data))


def read(source: Source) -> bytes:
    """The file's bytes (objects: that exact generation). Raises ExtractionError
    `source_gone` when the object or generation no longer exists (overwritten or deleted:
    the newer event takes care of the document), a transient error otherwise."""
    if source.data is not None:
        return source.data
    parts = urlsplit(source.uri or "")
    bucket, name = parts.netloc, parts.path.lstrip("/")
    try:
        if parts.scheme == "gs" and source.generation:
            from ragline.cloud.gcp import storage

            return storage.read_object(bucket, name, source.generation)
        if parts.scheme == "s3":
            from ragline.cloud.aws import s3

            # S3 events name no readable version in an unversioned bucket: the current
            # object is read (an overwrite's own event replaces this document anyway).
            return s3.read_object(bucket, name)
    except ObjectGoneError as exc:
        raise ExtractionError(
            "source_gone", f"the object is gone (overwritten or deleted): {exc.message}"
        ) from exc
    raise ExtractionError("source_gone", f"no reader for {source.uri!r}")
