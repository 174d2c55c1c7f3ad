"""`runs`: POST / (record a run), GET / (list), GET /<id>, PATCH /<id> (merge state, append
tool_log, change status), GET /<id>/compare/<other_id>."""

import functions_framework
from flask import Request
from werkzeug.routing import Rule

from ragline.api import (
    Context,
    Reply,
    endpoint,
    json_body,
    match_route,
    query_params,
    routes,
)

ROUTES = routes(
    Rule("/", endpoint="collection", methods=["GET", "POST"]),
    Rule("/<uuid:run_id>", endpoint="one", methods=["GET", "PATCH"]),
    Rule("/<uuid:run_id>/compare/<uuid:other_id>", endpoint="compare", methods=["GET"]),
)


@functions_framework.http
@endpoint(
    "runs",
    methods=("GET", "POST", "PATCH"),
    scopes={"GET": "read", "POST": "write", "PATCH": "write"},
)
def runs(req: Request, ctx: Context) -> Reply:
    from ragline.retrieval import runs as records

    route, args = match_route(req, ROUTES)
    if route == "collection" and req.method == "POST":
        run = records.create(ctx.session, json_body(req, records.NewRun))
        return Reply(records.describe(run), 201)
    if route == "collection":
        found, cursor = records.list_runs(
            ctx.session, query_params(req, records.RunQuery), owner=ctx.run_owner
        )
        return Reply(
            {"runs": [records.describe(r, detail=False) for r in found], "next_cursor": cursor}
        )
    if route == "compare":
        return Reply(
            records.compare(ctx.session, args["run_id"], args["other_id"], owner=ctx.run_owner)
        )
    if req.method == "PATCH":
        patch = json_body(req, records.RunPatch)
        run = records.patch(ctx.session, args["run_id"], patch, owner=ctx.run_owner)
        return Reply(records.describe(run))
    return Reply(records.describe(records.get(ctx.session, args["run_id"], owner=ctx.run_owner)))
