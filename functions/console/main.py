"""`console`: the browser console (issue 19, docs/console.md). GET / (the page),
GET /<file> (its script, style sheet and icon), GET /config.json (the API functions' URLs).

No API key here: the page asks the user for one, keeps it in sessionStorage and calls the
public API functions with it. Every answer carries a strict Content-Security-Policy."""

import functions_framework
from flask import Request
from werkzeug.routing import Rule

from ragline.api import Reply, match_route, routes
from ragline.api.console import Asset, asset, config, page_endpoint

ROUTES = routes(
    Rule("/", endpoint="index", methods=["GET"]),
    Rule("/config.json", endpoint="config", methods=["GET"]),
    Rule("/<name>", endpoint="file", methods=["GET"]),
)


@functions_framework.http
@page_endpoint("console")
def console(req: Request) -> Asset | Reply:
    route, args = match_route(req, ROUTES)
    if route == "config":
        return Reply(config())
    return asset(args.get("name", "index.html"))
