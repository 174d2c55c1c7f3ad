"""`health`: GET / (liveness: no dependency calls), GET /ready (dependencies: 200 or 503).

No API key: load balancers and uptime checks call it. `/ready` says only which checks pass;
a caller with an admin API key also gets each check's detail and timing.

Like every function, it imports its domain module inside the handler: a cold start loads only
functions-framework and the light `ragline.api` wrappers; each request loads what it needs."""

import functions_framework
from flask import Request
from werkzeug.routing import Rule

from ragline.api import Reply, is_operator, match_route, plain_endpoint, routes

ROUTES = routes(
    Rule("/", endpoint="live", methods=["GET"]),
    Rule("/ready", endpoint="ready", methods=["GET"]),
)
NO_STORE = {"Cache-Control": "no-store"}


@functions_framework.http
@plain_endpoint("health", methods=("GET", "HEAD"))
def health(req: Request) -> Reply:
    route, _ = match_route(req, ROUTES)
    if route == "live":  # liveness loads nothing: no database, no models
        return Reply({"status": "ok"}, headers=NO_STORE)
    from ragline.ops import health as checks

    ready = checks.readiness()
    body = ready.to_dict(detail=is_operator(req))
    return Reply(body, 200 if ready.ok else 503, NO_STORE)
