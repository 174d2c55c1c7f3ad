"""`search`: POST {query, top_k?, mode?, filters?} → ranked chunks of the caller's org."""

import functions_framework
from flask import Request

from ragline.api import Context, Reply, endpoint, json_body


@functions_framework.http
@endpoint("search", methods=("POST",), scopes={"POST": "read"})
def search(req: Request, ctx: Context) -> Reply:
    from ragline.retrieval import search as retrieval

    result = retrieval.search_logged(ctx.session, json_body(req, retrieval.SearchRequest))
    return Reply(result.as_dict())
