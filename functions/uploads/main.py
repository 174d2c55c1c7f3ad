"""`uploads`: POST {filename, content_type, size} → 201 a signed URL to PUT the file to
Cloud Storage; the object's event then starts the pipeline (docs/documents.md)."""

import functions_framework
from flask import Request

from ragline.api import Context, Reply, endpoint, json_body


@functions_framework.http
@endpoint("uploads", methods=("POST",))
def uploads(req: Request, ctx: Context) -> Reply:
    from ragline.ingest import upload_urls

    body = json_body(req, upload_urls.UploadRequest)
    return Reply(upload_urls.describe(upload_urls.create_upload_url(ctx.org_id, body)), 201)
