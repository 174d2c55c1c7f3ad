"""`health`: GET / (liveness: no dependency calls), GET /ready (dependencies: 200 or 503).

No API key: load balancers and uptime checks call it."""

import functions_framework
from flask import Request

from ragline import health as checks
from ragline.errors import NotFoundError
from ragline.http import Reply, path_segments, plain_endpoint


@functions_framework.http
@plain_endpoint("health", methods=("GET", "HEAD"))
def health(req: Request) -> Reply:
    route = path_segments(req)
    if not route:
        return Reply(checks.liveness(), headers={"Cache-Control": "no-store"})
    if route == ["ready"]:
        ready = checks.readiness()
        return Reply(ready.to_dict(), 200 if ready.ok else 503, {"Cache-Control": "no-store"})
    raise NotFoundError("no such route: use / or /ready")
