"""`documents`: GET / (list), GET /<id> (status, counts, timings), PATCH /<id> ({acl}),
DELETE /<id>, POST /<id>/retry (restart a failed document from its first unfinished stage)."""

import functions_framework
from flask import Request
from werkzeug.routing import Rule

from ragline.api import Context, Reply, endpoint, json_body, match_route, query_params, routes

ROUTES = routes(
    Rule("/", endpoint="list", methods=["GET"]),
    Rule("/<uuid:document_id>", endpoint="one", methods=["GET", "PATCH", "DELETE"]),
    Rule("/<uuid:document_id>/retry", endpoint="retry", methods=["POST"]),
)


@functions_framework.http
@endpoint("documents", methods=("GET", "PATCH", "DELETE", "POST"))
def documents(req: Request, ctx: Context) -> Reply:
    from ragline.ingest import documents as docs
    from ragline.ingest import ingestion

    route, args = match_route(req, ROUTES)
    if route == "list":
        found, cursor = docs.list_documents(ctx.session, query_params(req, docs.ListQuery))
        items = [docs.describe(ctx.session, d) for d in found]
        return Reply({"documents": items, "next_cursor": cursor})
    doc_id = args["document_id"]
    if route == "retry":
        work = ingestion.retry(ctx.session, doc_id)
        ctx.after_commit.append(lambda: ingestion.enqueue(work))
        doc = docs.get(ctx.session, doc_id)
        return Reply(
            {"document_id": str(doc_id), "status": doc.status, "from_stage": work[0].stage}, 202
        )
    if req.method == "PATCH":
        doc = docs.set_acl(ctx.session, doc_id, json_body(req, docs.AclPatch))
        return Reply(docs.describe(ctx.session, doc, detail=True))
    if req.method == "DELETE":
        return Reply({"document_id": str(doc_id), "deleted": docs.delete(ctx.session, doc_id)})
    return Reply(docs.describe(ctx.session, docs.get(ctx.session, doc_id), detail=True))
