"""`documents`: GET / (list), GET /<id> (status, counts, timings), DELETE /<id>."""

import functions_framework
from flask import Request
from werkzeug.routing import Rule

from ragline.api import Context, Reply, endpoint, match_route, query_params, routes

ROUTES = routes(
    Rule("/", endpoint="list", methods=["GET"]),
    Rule("/<uuid:document_id>", endpoint="one", methods=["GET", "DELETE"]),
)


@functions_framework.http
@endpoint("documents", methods=("GET", "DELETE"))
def documents(req: Request, ctx: Context) -> Reply:
    from ragline.ingest import documents as docs

    route, args = match_route(req, ROUTES)
    if route == "list":
        found, cursor = docs.list_documents(ctx.session, query_params(req, docs.ListQuery))
        items = [docs.describe(ctx.session, d) for d in found]
        return Reply({"documents": items, "next_cursor": cursor})
    doc_id = args["document_id"]
    if req.method == "DELETE":
        return Reply({"document_id": str(doc_id), "deleted": docs.delete(ctx.session, doc_id)})
    return Reply(docs.describe(ctx.session, docs.get(ctx.session, doc_id), detail=True))
