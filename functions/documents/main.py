"""`documents`: GET / (list), GET /<id> (status, counts, timings), DELETE /<id>."""

import functions_framework
from flask import Request

from ragline import documents as docs
from ragline.errors import MethodNotAllowedError
from ragline.http import Context, Reply, endpoint, path_id, query_params


@functions_framework.http
@endpoint("documents", methods=("GET", "DELETE"))
def documents(req: Request, ctx: Context) -> Reply:
    doc_id = path_id(req)
    if doc_id is None:
        if req.method != "GET":
            raise MethodNotAllowedError("DELETE needs /<document_id>")
        found, cursor = docs.list_documents(ctx.session, query_params(req, docs.ListQuery))
        items = [docs.describe(ctx.session, d) for d in found]
        return Reply({"documents": items, "next_cursor": cursor})
    if req.method == "DELETE":
        return Reply({"document_id": str(doc_id), "deleted": docs.delete(ctx.session, doc_id)})
    return Reply(docs.describe(ctx.session, docs.get(ctx.session, doc_id), detail=True))
