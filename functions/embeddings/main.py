"""`embeddings` (admin scope): the org's embedding spaces (issue 17). GET / (every space with
its progress), POST / ({provider, model, dimension?}: start or resume a shadow build),
POST /cutover and POST /rollback ({force?})."""

import functions_framework
from flask import Request
from werkzeug.routing import Rule

from ragline.api import Context, Reply, endpoint, json_body, match_route, optional_json_body, routes

ROUTES = routes(
    Rule("/", endpoint="spaces", methods=["GET", "POST"]),
    Rule("/cutover", endpoint="cutover", methods=["POST"]),
    Rule("/rollback", endpoint="rollback", methods=["POST"]),
)


@functions_framework.http
@endpoint("embeddings", methods=("GET", "POST"), scopes={"GET": "admin", "POST": "admin"})
def embeddings(req: Request, ctx: Context) -> Reply:
    from ragline.ingest import reembed

    route, _ = match_route(req, ROUTES)
    if req.method == "GET":
        return Reply(reembed.describe(ctx.session))
    if route == "spaces":
        planned = reembed.begin(ctx.session, json_body(req, reembed.ReembedRequest))
    else:
        body = optional_json_body(req, reembed.SwitchRequest)
        planned = reembed.switch_in(ctx.session, back=route == "rollback", force=body.force)
    ctx.after_commit.append(planned.enqueue)
    return Reply(planned.body, 202 if route == "spaces" else 200)
