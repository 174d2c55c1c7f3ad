"""`ingest`: POST a document (JSON, or a text/markdown | text/plain body with ?title=)."""

import functions_framework
from flask import Request

from ragline.api import Context, Reply, endpoint, ingest_body


@functions_framework.http
@endpoint("ingest", methods=("POST",))
def ingest(req: Request, ctx: Context) -> Reply:
    from ragline.ingest import documents, ingestion

    result = documents.create(ctx.session, ingest_body(req))
    ctx.after_commit.append(lambda: ingestion.start_pipeline(ctx.org_id, result))
    return Reply(ingestion.describe(result), 202 if result.created else 200)
