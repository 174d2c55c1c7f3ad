"""`ingest`: POST a document (JSON, or a text/markdown | text/plain body with ?title=)."""

import functions_framework
from flask import Request

from ragline import documents, ingestion
from ragline.http import Context, Reply, endpoint


@functions_framework.http
@endpoint("ingest", methods=("POST",))
def ingest(req: Request, ctx: Context) -> Reply:
    result = documents.create(ctx.session, ingestion.parse_request(req))
    ctx.after_commit.append(lambda: ingestion.start_pipeline(ctx.org_id, result))
    return Reply(ingestion.describe(result), 202 if result.created else 200)
