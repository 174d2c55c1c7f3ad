"""openapi.yaml describes the real functions: every response of the test clients, 2xx and 4xx,
validates against its documented status, headers and schema."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import pytest
import sqlalchemy as sa
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ragline.core.config import Settings
from ragline.db import engine as db
from ragline.ingest import documents, reembed, upload_urls
from ragline.retrieval import answer, runs, search

from .helpers import FUNCTIONS, Tenant, client, make_tenant

SPEC_FILE = Path(__file__).resolve().parents[2] / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text())
BASE_URI = "urn:ragline:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(
    BASE_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
METHODS = ("get", "post", "put", "patch", "delete")
#: Functions documented elsewhere, or not by this file.
#: `console` serves the browser console's files (docs/console.md), not the JSON API.
UNDOCUMENTED = {"retention", "reconcile", "console"}


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _lookup(pointer: str) -> Any:
    node: Any = SPEC
    for part in pointer.lstrip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(node: Any, pointer: str) -> tuple[Any, str]:
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        node = _lookup(pointer)
    return node, pointer


def _validate(pointer: str, instance: Any) -> None:
    schema = {"$ref": f"{BASE_URI}#{pointer}"}
    jsonschema.Draft202012Validator(
        schema, registry=REGISTRY, format_checker=jsonschema.FormatChecker()
    ).validate(instance)


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _has_health() -> bool:
    return (FUNCTIONS / "health" / "main.py").is_file()


class Checker:
    """Calls a function's test client and validates the response against the spec."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, str]] = set()

    def __call__(
        self,
        function: str,
        method: str,
        path: str,
        spec_path: str,
        *,
        tenant: Tenant | None = None,
        expect: int,
        **kwargs: Any,
    ) -> Any:
        headers = {**(tenant.headers if tenant else {}), **kwargs.pop("headers", {})}
        resp = getattr(client(function), method)(path, headers=headers, **kwargs)
        assert resp.status_code == expect, (method, path, resp.status_code, resp.get_data())
        item = SPEC["paths"][spec_path]
        assert item["x-ragline-function"] == function
        op_pointer = f"/paths/{_escape(spec_path)}/{method}"
        status = str(resp.status_code)
        if method in item:
            responses = item[method]["responses"]
            assert status in responses, f"{method.upper()} {spec_path}: {status} not documented"
            spec, pointer = _deref(responses[status], f"{op_pointer}/responses/{status}")
        else:  # a method the path does not have
            assert status == "405", f"{method.upper()} {spec_path} is not documented"
            spec, pointer = _deref({"$ref": "#/components/responses/MethodNotAllowed"}, "")
        for name, header in spec.get("headers", {}).items():
            header, _ = _deref(header, "")
            if header.get("required"):
                assert resp.headers.get(name), f"{method.upper()} {spec_path} {status}: no {name}"
        assert resp.headers.get("X-Request-Id")
        if resp.status_code == 405:
            assert resp.headers.get("Allow")
        assert resp.mimetype == "application/json"
        _validate(f"{pointer}/content/application~1json/schema", resp.json)
        if resp.status_code >= 400:
            assert resp.json["error"]["request_id"] == resp.headers["X-Request-Id"]
        elif isinstance(kwargs.get("json"), dict):
            # What the server accepts, the documented request schema accepts too.
            body = f"{op_pointer}/requestBody/content/application~1json/schema"
            _validate(body, kwargs["json"])
        self.seen.add((spec_path, method, status))
        return resp

    def assert_covered(self, function: str, *, also: dict[str, set[str]] | None = None) -> None:
        """Each operation of `function` got a 2xx and a 4xx (and each status in `also`)."""
        for path, method, _op in _operations():
            if SPEC["paths"][path]["x-ragline-function"] != function:
                continue
            statuses = {s for p, m, s in self.seen if (p, m) == (path, method)}
            assert any(s.startswith("2") for s in statuses), f"{method} {path}: no 2xx checked"
            assert any(s.startswith("4") for s in statuses), f"{method} {path}: no 4xx checked"
        for status in (also or {}).get(function, set()):
            assert any(s == status for _p, _m, s in self.seen), f"{function}: no {status}"


@pytest.fixture()
def check() -> Checker:
    return Checker()


@pytest.fixture()
def hashing(offline_pipeline: Callable[..., None]) -> Callable[..., None]:
    return offline_pipeline


@pytest.fixture()
def tenant(hashing: Callable[..., None]) -> Tenant:
    return make_tenant("acme")


@pytest.fixture()
def reader() -> Tenant:
    return make_tenant("reader", scopes=("read",))


@pytest.fixture()
def writer_only() -> Tenant:
    return make_tenant("writer", scopes=("write",))


def ingest(tenant: Tenant, title: str, text: str) -> str:
    resp = client("ingest").post("/", json={"title": title, "text": text}, headers=tenant.headers)
    assert resp.status_code == 202
    return str(resp.json["document_id"])


WITH_TEXT = (
    "The with statement wraps a block with methods of a context manager. "
    "It calls __enter__ before the block and __exit__ after it, even on errors."
)
LOOP_TEXT = "The while statement repeats a block as long as its condition stays true."


# --------------------------------------------------------------------------- the document


def test_spec_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    assert SPEC["openapi"].startswith("3.1")
    validator.validate(SPEC)


def test_every_http_function_is_documented() -> None:
    # Pipeline stages are called by their queues only, and on_upload by Eventarc (a
    # CloudEvent function): not part of the public API.
    http = {
        p.parent.name
        for p in FUNCTIONS.glob("*/main.py")
        if "task_endpoint(" not in p.read_text() and "cloud_event" not in p.read_text()
    }
    documented = {item["x-ragline-function"] for item in SPEC["paths"].values()}
    assert http - UNDOCUMENTED <= documented
    assert documented - {"health"} <= http
    for path, item in SPEC["paths"].items():
        assert path.startswith(f"/{item['x-ragline-function']}/"), path


def test_every_operation_documents_errors_headers_and_idempotency() -> None:
    for path, method, op in _operations():
        where = f"{method.upper()} {path}"
        public = op.get("security") == []
        for status, response in op["responses"].items():
            spec, _ = _deref(response, "")
            assert "X-Request-Id" in spec.get("headers", {}), f"{where} {status}: X-Request-Id"
            if status >= "400" and not public:
                schema = spec["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{where} {status}"
        if public:
            continue
        assert {"400", "401", "405", "429", "500", "503"} <= set(op["responses"]), where
        params = [_deref(p, "")[0] for p in op.get("parameters", [])]
        names = {p["name"] for p in params}
        if method in ("post", "patch", "delete"):
            assert "Idempotency-Key" in names, where
            assert {"409", "422"} <= set(op["responses"]), where
        if "requestBody" in op:
            assert {"400", "413", "415", "422"} <= set(op["responses"]), where
    too_many, _ = _deref({"$ref": "#/components/responses/TooManyRequests"}, "")
    assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
        too_many["headers"]
    )
    idem, _ = _deref({"$ref": "#/components/parameters/IdempotencyKey"}, "")
    assert (idem["in"], idem["schema"]["maxLength"], idem["required"]) == ("header", 255, False)
    bearer = SPEC["components"]["securitySchemes"]["bearerApiKey"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")


REQUEST_MODELS: list[tuple[str, type[pydantic.BaseModel]]] = [
    ("NewDocument", documents.NewDocument),
    ("AclPatch", documents.AclPatch),
    ("UploadRequest", upload_urls.UploadRequest),
    ("SearchRequest", search.SearchRequest),
    ("Filters", search.Filters),
    ("AnswerRequest", answer.AnswerRequest),
    ("AnswerParams", answer.AnswerParams),
    ("NewRun", runs.NewRun),
    ("RunPatch", runs.RunPatch),
    ("ReembedRequest", reembed.ReembedRequest),
    ("SwitchRequest", reembed.SwitchRequest),
]


@pytest.mark.parametrize(("name", "model"), REQUEST_MODELS, ids=[m[0] for m in REQUEST_MODELS])
def test_request_schemas_match_the_models(name: str, model: type[pydantic.BaseModel]) -> None:
    schema = SPEC["components"]["schemas"][name]
    assert set(schema["properties"]) == set(model.model_fields), name
    required = {k for k, f in model.model_fields.items() if f.is_required()}
    assert set(schema.get("required", [])) == required, name
    assert schema["additionalProperties"] is False  # the models forbid unknown fields


QUERY_MODELS: list[tuple[str, type[pydantic.BaseModel]]] = [
    ("/documents/", documents.ListQuery),
    ("/runs/", runs.RunQuery),
]


@pytest.mark.parametrize(("path", "model"), QUERY_MODELS, ids=[q[0] for q in QUERY_MODELS])
def test_query_parameters_match_the_models(path: str, model: type[pydantic.BaseModel]) -> None:
    params = [_deref(p, "")[0] for p in SPEC["paths"][path]["get"].get("parameters", [])]
    assert {p["name"] for p in params if p["in"] == "query"} == set(model.model_fields)


# --------------------------------------------------------------------------- the functions


def test_ingest_responses(
    check: Checker, tenant: Tenant, reader: Tenant, hashing: Callable[..., None]
) -> None:
    p = "/ingest/"
    body = {"title": "With", "text": WITH_TEXT, "kind": "note", "metadata": {"a": 1}}
    check("ingest", "post", "/", p, tenant=tenant, json=body, expect=202)
    check("ingest", "post", "/", p, tenant=tenant, json=body, expect=200)
    check(
        "ingest",
        "post",
        "/?title=Loops&kind=note",
        p,
        tenant=tenant,
        data=LOOP_TEXT,
        content_type="text/markdown",
        expect=202,
    )
    bad_json = {"data": b"{nope", "content_type": "application/json"}
    check("ingest", "post", "/", p, tenant=tenant, expect=400, **bad_json)
    check("ingest", "post", "/", p, json=body, expect=401)
    check("ingest", "post", "/", p, tenant=reader, json=body, expect=403)
    check("ingest", "get", "/", p, tenant=tenant, expect=405)
    check("ingest", "post", "/", p, tenant=tenant, data=b"x", content_type="text/xml", expect=415)
    check("ingest", "post", "/", p, tenant=tenant, json={"text": "x"}, expect=422)
    hashing(max_body_bytes="100")
    check("ingest", "post", "/", p, tenant=tenant, json={**body, "text": "x" * 200}, expect=413)
    check.assert_covered("ingest", also={"ingest": {"400", "401", "403", "405", "413", "415"}})


def test_uploads_responses(
    check: Checker,
    tenant: Tenant,
    reader: Tenant,
    gcs: Settings,
    configure: Callable[..., None],
) -> None:
    p = "/uploads/"
    body = {"filename": "guide.pdf", "content_type": "application/pdf", "size": 1000}
    check("uploads", "post", "/", p, tenant=tenant, json=body, expect=201)
    bad_json = {"data": b"{nope", "content_type": "application/json"}
    check("uploads", "post", "/", p, tenant=tenant, expect=400, **bad_json)
    check("uploads", "post", "/", p, json=body, expect=401)
    check("uploads", "post", "/", p, tenant=reader, json=body, expect=403)
    check("uploads", "get", "/", p, tenant=tenant, expect=405)
    png = {**body, "content_type": "image/png"}
    check("uploads", "post", "/", p, tenant=tenant, json=png, expect=415)
    check("uploads", "post", "/", p, tenant=tenant, json={**body, "filename": "a/b"}, expect=422)
    configure(max_upload_bytes="999")
    check("uploads", "post", "/", p, tenant=tenant, json=body, expect=413)
    check.assert_covered("uploads", also={"uploads": {"400", "401", "403", "405", "413", "415"}})


def test_documents_responses(
    check: Checker, tenant: Tenant, writer_only: Tenant, reader: Tenant
) -> None:
    first = ingest(tenant, "With", WITH_TEXT)
    ingest(tenant, "Loops", LOOP_TEXT)
    listed = check("documents", "get", "/?limit=1", "/documents/", tenant=tenant, expect=200)
    assert listed.json["next_cursor"] and len(listed.json["documents"]) == 1
    cursor = {"cursor": listed.json["next_cursor"], "status": "ready"}
    check("documents", "get", "/", "/documents/", tenant=tenant, query_string=cursor, expect=200)
    check("documents", "get", "/?limit=0", "/documents/", tenant=tenant, expect=422)
    check("documents", "get", "/", "/documents/", expect=401)
    check("documents", "get", "/", "/documents/", tenant=writer_only, expect=403)
    check("documents", "post", "/", "/documents/", tenant=tenant, expect=405)
    one = "/documents/{document_id}"
    got = check("documents", "get", f"/{first}", one, tenant=tenant, expect=200)
    assert got.json["status"] == "ready" and got.json["chunks"]["total"] >= 1
    retry = "/documents/{document_id}/retry"
    check("documents", "post", f"/{first}/retry", retry, tenant=tenant, expect=409)
    check("documents", "post", f"/{uuid.uuid4()}/retry", retry, tenant=tenant, expect=404)
    check("documents", "post", f"/{first}/retry", retry, tenant=reader, expect=403)
    check("documents", "post", f"/{first}/retry", retry, expect=401)
    with db.owner_session() as session:  # what a stage's last failed attempt leaves
        session.execute(
            sa.text(
                "UPDATE document SET status = 'failed', failure_reason = 'retries_exhausted' "
                "WHERE id = :d"
            ),
            {"d": first},
        )
    failed = check("documents", "get", f"/{first}", one, tenant=tenant, expect=200)
    assert failed.json["failure_reason"] == "retries_exhausted"
    retried = check("documents", "post", f"/{first}/retry", retry, tenant=tenant, expect=202)
    assert retried.json["from_stage"] == "finalize"
    assert (
        check("documents", "get", f"/{first}", one, tenant=tenant, expect=200).json["status"]
        == "ready"
    )
    check("documents", "get", f"/{uuid.uuid4()}", one, tenant=tenant, expect=404)
    check("documents", "get", "/not-a-uuid", one, tenant=tenant, expect=404)
    acl = {"acl": ["group:hr"]}
    patched = check("documents", "patch", f"/{first}", one, tenant=tenant, json=acl, expect=200)
    assert patched.json["acl"] == ["group:hr"]
    check("documents", "patch", f"/{first}", one, tenant=tenant, json={"acl": []}, expect=422)
    check("documents", "patch", f"/{uuid.uuid4()}", one, tenant=tenant, json=acl, expect=404)
    check("documents", "patch", f"/{first}", one, tenant=reader, json=acl, expect=403)
    check("documents", "patch", f"/{first}", one, json=acl, expect=401)
    check("documents", "delete", f"/{first}", one, tenant=reader, expect=403)
    check("documents", "delete", f"/{first}", one, tenant=tenant, expect=200)
    check("documents", "delete", f"/{first}", one, tenant=tenant, expect=200)
    check("documents", "delete", f"/{first}", one, expect=401)
    check("documents", "get", f"/{first}", one, tenant=tenant, expect=404)
    check.assert_covered("documents")


def test_embeddings_responses(check: Checker, tenant: Tenant) -> None:
    """Admin only; a build through the (inline) embed stage, cutover, rollback, 4xx JSON."""
    admin = make_tenant("acme", scopes=("admin",))
    ingest(tenant, "With", WITH_TEXT)
    ingest(tenant, "Loops", LOOP_TEXT)
    root, cut, back = "/embeddings/", "/embeddings/cutover", "/embeddings/rollback"
    empty = check("embeddings", "get", "/", root, tenant=admin, expect=200)
    assert empty.json == {"spaces": []}
    check("embeddings", "get", "/", root, tenant=tenant, expect=403)  # read+write, no admin
    check("embeddings", "get", "/", root, expect=401)
    check("embeddings", "delete", "/", root, tenant=admin, expect=405)
    check("embeddings", "post", "/cutover", cut, tenant=admin, expect=409)  # nothing to cut to
    model = {"provider": "hashing", "model": "hashing-v1", "dimension": 256}
    check("embeddings", "post", "/", root, tenant=tenant, json=model, expect=403)
    bad = {"provider": "hashing", "model": "hashing-v1", "dimension": 512}
    check("embeddings", "post", "/", root, tenant=admin, json=bad, expect=422)
    nope = {**model, "provider": "nope"}
    check("embeddings", "post", "/", root, tenant=admin, json=nope, expect=422)
    check("embeddings", "post", "/", root, tenant=admin, json={"model": "m"}, expect=422)
    bad_json = {"data": b"{", "content_type": "application/json"}
    check("embeddings", "post", "/", root, tenant=admin, expect=400, **bad_json)
    check("embeddings", "post", "/", root, tenant=admin, data="x", expect=415)
    built = check("embeddings", "post", "/", root, tenant=admin, json=model, expect=202)
    assert built.json["created"] and built.json["tasks"] > 0
    assert built.json["space"]["state"] == "shadow"
    listed = check("embeddings", "get", "/", root, tenant=admin, expect=200).json["spaces"]
    shadow = [p for p in listed if p["state"] == "shadow"]
    assert shadow and shadow[0]["missing"] == 0  # inline queue: the build ran after commit
    other = {**model, "dimension": 768}
    check("embeddings", "post", "/", root, tenant=admin, json=other, expect=409)
    again = check("embeddings", "post", "/", root, tenant=admin, json=model, expect=202)
    assert (again.json["created"], again.json["tasks"]) == (False, 0)
    check("embeddings", "post", "/cutover", cut, tenant=admin, json={"x": 1}, expect=422)
    done = check("embeddings", "post", "/cutover", cut, tenant=admin, expect=200)
    assert done.json["active"]["dimension"] == 256 and done.json["missing"] == 0
    found = client("search").post("/", json={"query": "with"}, headers=tenant.headers)
    assert found.status_code == 200 and found.json["results"]
    check("embeddings", "post", "/rollback", back, tenant=tenant, expect=403)
    rolled = check("embeddings", "post", "/rollback", back, tenant=admin, json={}, expect=200)
    assert rolled.json["active"]["storage"] == "chunk"
    check.assert_covered("embeddings")


def test_search_responses(
    check: Checker, tenant: Tenant, writer_only: Tenant, hashing: Callable[..., None]
) -> None:
    ingest(tenant, "With", WITH_TEXT)
    ingest(tenant, "Loops", LOOP_TEXT)
    p = "/search/"
    for mode in ("hybrid", "vector", "text"):
        body = {"query": "with statement __enter__", "top_k": 2, "mode": mode}
        found = check("search", "post", "/", p, tenant=tenant, json=body, expect=200)
        assert found.json["results"]
    filtered = {"query": "block", "filters": {"kind": "text", "metadata": {}}}
    check("search", "post", "/", p, tenant=tenant, json=filtered, expect=200)
    bad_json = {"data": b"[" * 100, "content_type": "application/json"}
    check("search", "post", "/", p, tenant=tenant, expect=400, **bad_json)
    check("search", "post", "/", p, json={"query": "q"}, expect=401)
    check("search", "post", "/", p, tenant=writer_only, json={"query": "q"}, expect=403)
    check("search", "get", "/", p, tenant=tenant, expect=405)
    check("search", "post", "/", p, tenant=tenant, data="q", content_type="text/plain", expect=415)
    check("search", "post", "/", p, tenant=tenant, json={"query": "q", "top_k": 0}, expect=422)
    hashing(max_body_bytes="50")
    check("search", "post", "/", p, tenant=tenant, json={"query": "q" * 100}, expect=413)
    check.assert_covered("search", also={"search": {"400", "401", "403", "405", "413", "415"}})


def test_answer_responses(
    check: Checker, tenant: Tenant, writer_only: Tenant, hashing: Callable[..., None]
) -> None:
    p = "/answer/"
    empty = check("answer", "post", "/", p, tenant=tenant, json={"question": "q?"}, expect=200)
    assert empty.json["citations"] == []
    ingest(tenant, "With", WITH_TEXT)
    ingest(tenant, "Loops", LOOP_TEXT)
    question = {"question": "What does the with statement call?", "top_k": 2}
    first = check("answer", "post", "/", p, tenant=tenant, json=question, expect=200)
    assert first.json["citations"] and first.json["mode"] == "extractive"
    branch = {
        **question,
        "parent_run_id": first.json["run_id"],
        "scenario_label": "text only",
        "params": {"mode": "text", "top_k": 1, "sentences": 1},
        "filters": {"kind": "text"},
    }
    check("answer", "post", "/", p, tenant=tenant, json=branch, expect=200)
    orphan = {**question, "parent_run_id": str(uuid.uuid4())}
    check("answer", "post", "/", p, tenant=tenant, json=orphan, expect=404)
    bad_json = {"data": b"\xff", "content_type": "application/json"}
    check("answer", "post", "/", p, tenant=tenant, expect=400, **bad_json)
    check("answer", "post", "/", p, json=question, expect=401)
    check("answer", "post", "/", p, tenant=writer_only, json=question, expect=403)
    check("answer", "get", "/", p, tenant=tenant, expect=405)
    check("answer", "post", "/", p, tenant=tenant, data="q", content_type="text/plain", expect=415)
    check("answer", "post", "/", p, tenant=tenant, json={"question": ""}, expect=422)
    # The `agent` bucket: 5 answers a minute per key by default.
    limited = make_tenant("limited", settings={})
    for _ in range(5):
        check("answer", "post", "/", p, tenant=limited, json=question, expect=200)
    limit = check("answer", "post", "/", p, tenant=limited, json=question, expect=429)
    assert limit.headers["RateLimit-Remaining"] == "0" and int(limit.headers["Retry-After"]) > 0
    # An unreachable LLM: 503, with the failed run recorded and named in the error.
    hashing(llm_provider="openai", llm_base_url="http://127.0.0.1:9/v1", llm_api_key="k")
    answer.reset_llms()
    failed = check("answer", "post", "/", p, tenant=tenant, json=question, expect=503)
    run_id = failed.json["error"]["details"]["run_id"]
    check("runs", "get", f"/{run_id}", "/runs/{run_id}", tenant=tenant, expect=200)
    answer.reset_llms()
    hashing(max_body_bytes="50")
    check("answer", "post", "/", p, tenant=tenant, json={"question": "q" * 100}, expect=413)
    statuses = {"400", "401", "403", "404", "415", "429", "503"}
    check.assert_covered("answer", also={"answer": statuses})


def test_runs_responses(
    check: Checker, tenant: Tenant, reader: Tenant, writer_only: Tenant
) -> None:
    coll, one = "/runs/", "/runs/{run_id}"
    cmp = "/runs/{run_id}/compare/{other_run_id}"
    new = {"kind": "agent", "input": {"goal": "g"}}
    a = check("runs", "post", "/", coll, tenant=tenant, json=new, expect=201).json
    child = {
        "kind": "agent",
        "status": "running",
        "parent_run_id": a["id"],
        "scenario_label": "b",
        "state": {"params": {"k": 2}, "retrieved": ["c1", "c2"], "answer": "x"},
    }
    b = check("runs", "post", "/", coll, tenant=tenant, json=child, expect=201).json
    check("runs", "post", "/", coll, tenant=reader, json=new, expect=403)
    check("runs", "post", "/", coll, json=new, expect=401)
    check("runs", "post", "/", coll, tenant=tenant, json={"kind": "answer"}, expect=422)
    check("runs", "post", "/", coll, tenant=tenant, data="x", content_type="text/plain", expect=415)
    check(
        "runs",
        "post",
        "/",
        coll,
        tenant=tenant,
        data=b"{",
        content_type="application/json",
        expect=400,
    )
    orphan = {"kind": "agent", "parent_run_id": str(uuid.uuid4())}
    check("runs", "post", "/", coll, tenant=tenant, json=orphan, expect=404)
    listed = check("runs", "get", "/?limit=1", coll, tenant=tenant, expect=200).json
    assert listed["next_cursor"]
    check(
        "runs",
        "get",
        f"/?parent_run_id={a['id']}&kind=agent&status=running",
        coll,
        tenant=tenant,
        expect=200,
    )
    check("runs", "get", "/?cursor=x", coll, tenant=tenant, expect=422)
    check("runs", "get", "/", coll, tenant=writer_only, expect=403)
    check("runs", "patch", "/", coll, tenant=tenant, json={"status": "running"}, expect=405)
    check("runs", "get", f"/{a['id']}", one, tenant=tenant, expect=200)
    check("runs", "get", f"/{uuid.uuid4()}", one, tenant=tenant, expect=404)
    patch = {
        "state": {"params": {"k": 1, "z": 0}, "retrieved": ["c2", "c3"]},
        "tool_log": [{"tool": "t"}],
    }
    check("runs", "patch", f"/{a['id']}", one, tenant=tenant, json=patch, expect=200)
    check("runs", "patch", f"/{a['id']}", one, tenant=tenant, json={}, expect=422)
    check("runs", "patch", f"/{a['id']}", one, tenant=reader, json=patch, expect=403)
    done = {"status": "succeeded", "error": None}
    check("runs", "patch", f"/{a['id']}", one, tenant=tenant, json=done, expect=200)
    check(
        "runs", "patch", f"/{a['id']}", one, tenant=tenant, json={"status": "running"}, expect=409
    )
    check("runs", "patch", f"/{uuid.uuid4()}", one, tenant=tenant, json=patch, expect=404)
    check("runs", "post", f"/{a['id']}", one, tenant=tenant, json=new, expect=405)
    diff = check("runs", "get", f"/{a['id']}/compare/{b['id']}", cmp, tenant=tenant, expect=200)
    assert diff.json["params"] == {
        "only_a": {"z": 0},
        "only_b": {},
        "changed": {"k": {"a": 1, "b": 2}},
    }
    assert diff.json["retrieved"] == {
        "only_a": ["c3"],
        "only_b": ["c1"],
        "common": ["c2"],
        "rank_changes": [{"chunk_id": "c2", "a": 1, "b": 2}],
    }
    check("runs", "get", f"/{a['id']}/compare/{uuid.uuid4()}", cmp, tenant=tenant, expect=404)
    check("runs", "get", f"/{a['id']}/compare/{b['id']}", cmp, expect=401)
    check(
        "runs", "patch", f"/{a['id']}/compare/{b['id']}", cmp, tenant=tenant, json=patch, expect=405
    )
    # Idempotency-Key: a retry is replayed, another body under the same key is refused.
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = check("runs", "post", "/", coll, tenant=tenant, json=new, headers=key, expect=201)
    again = check("runs", "post", "/", coll, tenant=tenant, json=new, headers=key, expect=201)
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    other = {**new, "kind": "other"}
    check("runs", "post", "/", coll, tenant=tenant, json=other, headers=key, expect=422)
    long_key = {"Idempotency-Key": "k" * 256}
    check("runs", "post", "/", coll, tenant=tenant, json=new, headers=long_key, expect=422)
    statuses = {"400", "401", "403", "404", "405", "409", "415"}
    check.assert_covered("runs", also={"runs": statuses})


@pytest.mark.skipif(not _has_health(), reason="functions/health is not written yet")
def test_health_responses(check: Checker, tenant: Tenant) -> None:
    check("health", "get", "/", "/health/", expect=200)
    check("health", "get", "/ready", "/health/ready", expect=200)
    check("health", "post", "/", "/health/", expect=405)
    check("health", "delete", "/ready", "/health/ready", expect=405)
