"""`runs`: POST / (record a run), GET / (list), GET /<id>, PATCH /<id> (merge state, append
tool_log, change status), GET /<id>/compare/<other_id>."""

import functions_framework
from flask import Request

from ragline import runs as records
from ragline.errors import MethodNotAllowedError, NotFoundError
from ragline.http import Context, Reply, endpoint, json_body, path_id, path_segments, query_params


@functions_framework.http
@endpoint(
    "runs",
    methods=("GET", "POST", "PATCH"),
    scopes={"GET": "read", "POST": "write", "PATCH": "write"},
)
def runs(req: Request, ctx: Context) -> Reply:
    segments = path_segments(req)
    run_id = path_id(req)
    if run_id is None:
        if req.method == "POST":
            run = records.create(ctx.session, json_body(req, records.NewRun))
            return Reply(records.describe(run), 201)
        if req.method != "GET":
            raise MethodNotAllowedError(f"{req.method} needs /<run_id>")
        found, cursor = records.list_runs(ctx.session, query_params(req, records.RunQuery))
        return Reply(
            {"runs": [records.describe(r, detail=False) for r in found], "next_cursor": cursor}
        )
    if len(segments) == 1:
        if req.method == "PATCH":
            run = records.patch(ctx.session, run_id, json_body(req, records.RunPatch))
            return Reply(records.describe(run))
        if req.method != "GET":
            raise MethodNotAllowedError(f"{req.method} goes to /, not /<run_id>")
        return Reply(records.describe(records.get(ctx.session, run_id)))
    other_id = path_id(req, 2)
    if len(segments) != 3 or segments[1] != "compare" or other_id is None:
        raise NotFoundError(f"no such resource: {req.path[:120]!r}")
    if req.method != "GET":
        raise MethodNotAllowedError("compare is GET only")
    return Reply(records.compare(ctx.session, run_id, other_id))
