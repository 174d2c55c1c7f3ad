"""The HTTP layer: how a request becomes a call into the library and an answer.

`endpoint` (API-key functions), `plain_endpoint` (health), `scheduled_endpoint` (Cloud
Scheduler) and `task_endpoint` (pipeline stages) wrap a small handler with request id, body
limits, authentication, tenancy, rate limits, idempotency, one error mapping and one log line.
Request parsing (`body`), route tables (`routes`), replies (`replies`) and storage CloudEvents
(`objects`) live here too, so the domain packages (`ingest`, `retrieval`, `ops`) never see
Flask. Function `main.py` files import their names from here:

    from ragline.api import Context, Reply, endpoint, json_body
"""

from ragline.api.body import ingest_body, json_body, optional_json_body, query_params
from ragline.api.endpoint import (
    Context,
    endpoint,
    is_operator,
    plain_endpoint,
    scheduled_endpoint,
)
from ragline.api.replies import Reply, error_body, status_for
from ragline.api.routes import match_route, routes
from ragline.api.tasks import task_endpoint

__all__ = [
    "Context",
    "Reply",
    "endpoint",
    "error_body",
    "ingest_body",
    "is_operator",
    "json_body",
    "match_route",
    "optional_json_body",
    "plain_endpoint",
    "query_params",
    "routes",
    "scheduled_endpoint",
    "status_for",
    "task_endpoint",
]
