"""Request bodies and parameters: bounded before anything reads them (a WSGI middleware),
decoded strictly (UTF-8, finite JSON numbers, bounded depth, no NUL or lone surrogates) and
validated by pydantic models (strict for JSON, lax for query strings)."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Request, Response
from werkzeug import exceptions as wz_exc

from ragline.api.replies import error_body, reply_for_error, respond
from ragline.core import errors

if TYPE_CHECKING:  # pydantic and the domain model load with the first request, not at import
    import pydantic

    from ragline.ingest.documents import NewDocument, NewFile

T = TypeVar("T", bound="pydantic.BaseModel")

MAX_JSON_DEPTH = 32
_KIND_RE = re.compile(r"^[a-z0-9_.-]{1,64}$")

_BODY_KEY = "ragline.body"

#: How much of a refused body is read and thrown away so that an ordinary HTTP client, still
#: sending, gets the 413 instead of a broken pipe. Cloud Run refuses HTTP/1 bodies over
#: 32 MiB itself; beyond this the connection is closed unread. Memory stays one block.
DRAIN_MAX_BYTES = 32 * 1024 * 1024

_BLOCK = 64 * 1024


class _CappedInput:
    """A WSGI input stream that yields at most `cap` bytes and then reports end of body:
    nothing downstream (functions-framework's after-request hook reads every body to the end)
    can pull more than the cap into memory, with or without a Content-Length.

    A callable `cap` is called when the body's first byte arrives: a request without a body
    (every GET, the first request of a cold start) never looks the limit up (issue 12)."""

    def __init__(self, stream: Any, cap: int | Callable[[], int]) -> None:
        self._stream = stream
        self._cap = cap
        self._left: int | None = cap if isinstance(cap, int) else None

    def _first_byte(self) -> bytes:
        """Before anything was read (lazy cap): one byte, and the cap once there is one."""
        first = bytes(self._stream.read(1))
        if first and callable(self._cap):
            self._left = self._cap() - 1
        return first

    def _capped(self, read: Callable[[int], Any], size: int | None) -> bytes:
        if self._left is None or self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = bytes(read(want))
        self._left -= len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size == 0:
            return b""
        if self._left is not None:
            return self._capped(self._stream.read, size)
        first = self._first_byte()
        more = None if size is None or size < 0 else size - 1
        return first + self._capped(self._stream.read, more) if first and more != 0 else first

    def readline(self, size: int | None = -1) -> bytes:
        if size == 0:
            return b""
        if self._left is not None:
            return self._capped(self._stream.readline, size)
        first = self._first_byte()
        if not first or first == b"\n" or size == 1:
            return first
        more = None if size is None or size < 0 else size - 1
        return first + self._capped(self._stream.readline, more)

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def drain(self, limit: int = DRAIN_MAX_BYTES) -> None:
        """Discard what is left of the body past the cap, up to `limit` bytes."""
        if self._left is None or self._left > 0:
            return
        _discard(self._stream, limit)


def _discard(stream: Any, limit: int) -> bool:
    """Read and drop up to `limit` bytes, one block at a time; True when the body ended."""
    while limit > 0:
        block = stream.read(min(_BLOCK, limit))
        if not block:
            return True
        limit -= len(block)
    return False


def body_limit_middleware(app: Any) -> Any:
    """WSGI middleware: a declared Content-Length over MAX_BODY_BYTES gets 413 before the
    function runs (the body is discarded, never kept); any other body is capped at the limit
    + 1 byte, so `read_body` sees the overflow and answers 413 while at most that much was
    buffered."""

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        declared = environ.get("CONTENT_LENGTH") or ""
        refusal: tuple[str, str, str] | None = None
        details: Any = None
        if declared:
            if not (declared.isascii() and declared.isdigit()):
                refusal = ("400 Bad Request", "malformed_body", "invalid Content-Length")
            elif int(declared) > 0 and int(declared) > (limit := _max_body_bytes()):
                # An empty body fits any limit: it is not looked up (issue 12: cold start).
                too_large = _too_large(limit, environ.get("CONTENT_TYPE"))
                refusal = ("413 Request Entity Too Large", "payload_too_large", too_large.message)
                details = too_large.details
        if refusal is not None:
            request_id = uuid.uuid4().hex
            body = json.dumps(error_body(refusal[1], refusal[2], request_id, details)).encode()
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Request-Id", request_id),
            ]
            size = (
                int(declared)
                if (declared.isascii() and declared.isdigit())
                else DRAIN_MAX_BYTES + 1
            )
            if size > DRAIN_MAX_BYTES or not _discard(environ["wsgi.input"], size):
                headers.append(("Connection", "close"))
            start_response(refusal[0], headers)
            return [body]
        if declared:
            # Never read past the declared length (that would wait on the socket) and let a
            # shorter body simply end: the stream ends where the bytes end, so werkzeug does
            # not raise ClientDisconnected half-way through the framework's own reads.
            environ["wsgi.input"] = _CappedInput(environ["wsgi.input"], int(declared))
            environ["wsgi.input_terminated"] = True

            return app(environ, start_response)
        capped = _CappedInput(environ["wsgi.input"], lambda: _max_body_bytes() + 1)
        environ["wsgi.input"] = capped
        try:
            return app(environ, start_response)
        finally:
            capped.drain()

    middleware.ragline_body_limit = True  # type: ignore[attr-defined]
    return middleware


def _max_body_bytes() -> int:
    from ragline.core.config import get_settings

    return get_settings().max_body_bytes


def install_body_limit() -> None:
    """Put `body_limit_middleware` in front of the Flask app that is loading this function.

    functions-framework executes a function's source inside the app context of the app it
    built, so decorating a handler (at import) is the moment to wrap that app, once."""
    import flask

    if not flask.has_app_context():
        return
    app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    if not getattr(app.wsgi_app, "ragline_body_limit", False):
        app.wsgi_app = body_limit_middleware(app.wsgi_app)
        # What the framework answers by itself (a path its router refuses, a body shorter than
        # its Content-Length) gets the API's JSON error model too, never an HTML page.
        app.register_error_handler(wz_exc.HTTPException, _framework_error)


def _framework_error(exc: wz_exc.HTTPException) -> Response:
    request_id = uuid.uuid4().hex
    return respond(reply_for_error(exc, request_id, "framework"), request_id)


def _too_large(limit: int, content_type: str | None) -> errors.PayloadTooLargeError:
    """413: a file (PDF, HTML, DOCX, Markdown, text) is pointed to the upload route."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in FILE_TYPES or media in TEXT_TYPES:
        return errors.PayloadTooLargeError(
            f"body larger than {limit} bytes; {UPLOADS_HINT}",
            details={"upload_route": "/uploads"},
        )
    return errors.PayloadTooLargeError(f"body larger than {limit} bytes")


def read_body(req: Request, limit: int | None = None) -> bytes:
    """The raw body, refusing more than `limit` bytes (MAX_BODY_BYTES) before reading it all."""
    from ragline.core.config import get_settings

    cached = req.environ.get(_BODY_KEY)
    if isinstance(cached, bytes):
        return cached
    limit = limit or get_settings().max_body_bytes
    if req.content_length is not None and req.content_length > limit:
        raise _too_large(limit, req.content_type)
    data = req.stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large(limit, req.content_type)
    declared = req.content_length
    if declared is not None and len(data) < declared:
        raise errors.MalformedBodyError(
            f"the body ended after {len(data)} of its {declared} declared bytes"
        )
    req.environ[_BODY_KEY] = data
    return data


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()], default=level + 1)
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value], default=level + 1)
    return level


def parse_json(raw: bytes) -> Any:
    """Decode a JSON body: valid UTF-8, valid JSON, bounded nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.MalformedBodyError("body is not valid UTF-8") from exc
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise errors.MalformedBodyError(f"body is not valid JSON: {exc}"[:200]) from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise errors.MalformedBodyError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if "\\u0000" in text and _has_nul(value):
        # PostgreSQL stores no NUL character, in text or jsonb: refuse it here, once.
        raise errors.ValidationError("NUL characters (\\u0000) are not allowed")
    if "\\u" in text.lower():
        # JSON escapes can smuggle lone surrogates, which no database can store.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise errors.MalformedBodyError(
                "body contains invalid unicode (lone surrogate)"
            ) from exc
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """Numbers like 1e999 overflow to infinity, which JSONB (and JSON) cannot hold."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _validation_error(exc: pydantic.ValidationError) -> errors.ValidationError:
    details = [{"loc": list(e["loc"]), "type": e["type"], "msg": e["msg"]} for e in exc.errors()]
    return errors.ValidationError("request body failed validation", details=details)


def validate(model: type[T], value: Any) -> T:
    """Validate decoded values in lax mode (query parameters are strings: `?limit=5` is 5);
    field errors become 422 with their locations and types."""
    import pydantic

    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise _validation_error(exc) from exc


def validate_json(model: type[T], raw: bytes) -> T:
    """Check a raw JSON body (`parse_json`), then validate it in strict JSON mode: a number
    must be a number and a boolean a boolean (`"top_k": "5"` or `true` is a 422), while
    JSON's strings still become UUIDs and timestamps."""
    import pydantic

    parse_json(raw)
    try:
        return model.model_validate_json(raw, strict=True)
    except pydantic.ValidationError as exc:
        raise _validation_error(exc) from exc


def json_body(req: Request, model: type[T]) -> T:
    """Read, decode and validate a JSON request body."""
    ctype = (req.mimetype or "").lower()
    if ctype != "application/json":
        raise errors.UnsupportedMediaTypeError("Content-Type must be application/json")
    return validate_json(model, read_body(req))


def optional_json_body(req: Request, model: type[T]) -> T:
    """Like `json_body`, but an empty body validates as `{}` (scheduler jobs may send none)."""
    raw = read_body(req)
    if not raw.strip():
        return validate(model, {})
    ctype = (req.mimetype or "").lower()
    if ctype not in ("application/json", ""):
        raise errors.UnsupportedMediaTypeError("Content-Type must be application/json")
    return validate_json(model, raw)


def check_query_args(req: Request) -> None:
    """Refuse query parameters carrying NUL characters (PostgreSQL cannot store them) or given
    more than once (refused rather than guessed)."""
    for key, values in req.args.lists():
        if "\x00" in key or any("\x00" in v for v in values):
            raise errors.ValidationError("NUL characters are not allowed in query parameters")
    repeated = [k for k in req.args if len(req.args.getlist(k)) > 1]
    if repeated:
        raise errors.ValidationError(f"repeated query parameter(s): {', '.join(repeated)}")


def query_params(req: Request, model: type[T]) -> T:
    """Validate query parameters (`check_query_args`: no NUL, none repeated)."""
    check_query_args(req)
    return validate(model, dict(req.args))


TEXT_TYPES = ("text/plain", "text/markdown")
#: Files the parse stage reads (PDF, HTML, DOCX); the body's bytes must agree with the type.
FILE_TYPES = (
    "application/pdf",
    "text/html",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
)


def ingest_body(req: Request) -> NewDocument | NewFile:
    """JSON `{title, text, kind?, metadata?, source_uri?}`, a Markdown or text body, or a raw
    PDF, HTML or DOCX file; for the last two `?title=` (default: the file's own title, or its
    first heading or line), `?kind=`, `?source_uri=` and, for files, `?filename=`."""
    from ragline.ingest.documents import NewDocument, parse_acl, title_from_text

    ctype = (req.mimetype or "").lower()
    if ctype == "application/json":
        return validate_json(NewDocument, read_body(req))
    if ctype not in TEXT_TYPES and ctype not in FILE_TYPES:
        raise errors.UnsupportedMediaTypeError(
            "Content-Type must be application/json, text/markdown, text/plain, "
            "application/pdf, text/html or the DOCX type "
            f"({FILE_TYPES[2]}); other files: convert them first",
            details={"accepted": ["application/json", *TEXT_TYPES, *FILE_TYPES]},
        )
    check_query_args(req)
    raw = read_body(req)
    if ctype in FILE_TYPES:
        return _file_body(req, raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.MalformedBodyError("body is not valid UTF-8") from exc
    title = req.args.get("title") or title_from_text(text)
    if not title:
        raise errors.ValidationError("the body has no text (and no ?title= was given)")
    fields: dict[str, Any] = {
        "title": title,
        "text": text,
        "kind": req.args.get("kind") or ("markdown" if ctype == "text/markdown" else "text"),
    }
    if req.args.get("source_uri"):
        fields["source_uri"] = req.args["source_uri"]
    if "acl" in req.args:
        fields["acl"] = parse_acl(req.args["acl"])
    return validate(NewDocument, fields)


#: Where a file over the body limit goes instead (the `uploads` function, issue 13).
UPLOADS_HINT = (
    "POST /uploads for a signed Cloud Storage URL: files of any size up to the upload limit "
    "are ingested from the bucket"
)


def _file_body(req: Request, raw: bytes) -> NewFile:
    """A raw PDF, HTML or DOCX body: its bytes checked against the declared type here (a
    mismatch, an empty or unsupported file is a 4xx now); the text is extracted later, by
    the parse stage."""
    from ragline.ingest.documents import MAX_TITLE, NewFile, parse_acl
    from ragline.ingest.extract import HEAD_BYTES, ExtractionError, detect

    try:
        fmt = detect(req.content_type, raw[:HEAD_BYTES])
    except ExtractionError as exc:
        if exc.reason in ("unsupported_type", "type_mismatch"):
            raise errors.UnsupportedMediaTypeError(exc.message, details=exc.details) from exc
        raise errors.ValidationError(exc.message, details=exc.details) from exc
    params = {k: req.args.get(k) for k in ("title", "kind", "source_uri", "filename")}
    title = (params["title"] or "").strip() or None
    if title is not None and len(title) > MAX_TITLE:
        raise errors.ValidationError(f"?title= is longer than {MAX_TITLE} characters")
    kind = params["kind"]
    if kind is not None and not _KIND_RE.fullmatch(kind):
        raise errors.ValidationError("?kind= must match ^[a-z0-9_.-]{1,64}$")
    source_uri = params["source_uri"]
    if source_uri is not None and len(source_uri) > 2048:
        raise errors.ValidationError("?source_uri= is longer than 2048 characters")
    return NewFile(
        data=raw,
        content_type=req.content_type or str(fmt),
        format=str(fmt),
        title=title,
        filename=(params["filename"] or "")[:MAX_TITLE] or None,
        kind=kind,
        source_uri=source_uri,
        acl=parse_acl(req.args.get("acl")),
    )
