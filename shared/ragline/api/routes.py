"""Route tables of the functions that serve several paths (werkzeug's `Map`): canonical UUIDs
only, exact paths, 404 for unknown paths and 405 with the path's own `Allow`."""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug import exceptions as wz_exc
from werkzeug.routing import Map, RequestRedirect, Rule

from ragline.core import errors


def routes(*rules: Rule) -> Map:
    """A function's route table. Ids are canonical UUIDs only (`<uuid:...>`, werkzeug's
    converter): no braces, no `urn:`, no missing hyphens; a trailing slash is optional."""
    return Map(list(rules), strict_slashes=False, merge_slashes=False)


def match_route(req: Request, table: Map) -> tuple[str, dict[str, Any]]:
    """`(endpoint, arguments)` of the rule matching the request's path and method: an
    unknown path is a 404 and a known path with another method a 405 naming the path's
    own methods."""
    adapter = table.bind("function", path_info=req.path)
    try:
        endpoint, args = adapter.match(req.path, method=req.method)
    except wz_exc.MethodNotAllowed as exc:
        allowed = sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"})
        raise errors.MethodNotAllowedError(
            f"{req.method} not allowed on this path", details={"allow": allowed}
        ) from exc
    except (wz_exc.NotFound, RequestRedirect) as exc:
        raise errors.NotFoundError(f"no such resource: {req.path[:120]!r}") from exc
    return str(endpoint), dict(args)
