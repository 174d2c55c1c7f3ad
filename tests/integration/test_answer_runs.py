"""Answers with citations and recorded runs, through the real answer/runs functions."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ragline.db import tenancy
from ragline.db.models import Chunk, Document, Run
from ragline.retrieval import answer as answers

from .helpers import Tenant, client, make_tenant

WITH_QUESTION = "How does the with statement call __enter__ and __exit__?"


def topics(*names: str) -> dict[str, str]:
    from pydoc_data.topics import topics as all_topics

    return {name: all_topics[name] for name in names}


def ingest_topics(tenant: Tenant, *names: str) -> None:
    ingest = client("ingest")
    for name, text in topics(*names).items():
        resp = ingest.post(
            "/", json={"title": name, "text": text, "kind": "pydoc"}, headers=tenant.headers
        )
        assert resp.status_code == 202, resp.json


def org_chunks(tenant: Tenant) -> dict[str, str]:
    """chunk id -> document title, for every chunk of the tenant's org."""
    with tenancy.tenant_session(tenant.org_id) as s:
        rows = s.execute(
            sa.select(Chunk.id, Document.title).join(Document, Document.id == Chunk.document_id)
        ).all()
    return {str(r.id): r.title for r in rows}


def ask(tenant: Tenant, **body: Any) -> Any:
    return client("answer").post("/", json=body, headers=tenant.headers)


def get_run(tenant: Tenant, run_id: str) -> dict[str, Any]:
    resp = client("runs").get(f"/{run_id}", headers=tenant.headers)
    assert resp.status_code == 200, resp.json
    body: dict[str, Any] = resp.json
    return body


@pytest.fixture()
def hashing(offline_pipeline: Callable[..., None]) -> None:
    pass


# --------------------------------------------------------------------------- answer function


def test_answer_quality_with_minilm(tenant: Tenant, configure: Callable[..., None]) -> None:
    configure(queue_backend="inline", embedding_provider="minilm", llm_provider="none")
    ingest_topics(tenant, "with", "context-managers", "try", "lambda", "assert")
    resp = ask(tenant, question=WITH_QUESTION)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["mode"] == "extractive"
    assert body["citations"], body
    assert body["citations"][0]["title"] in ("with", "context-managers")
    assert "__enter__" in body["answer"] or "__exit__" in body["answer"]
    refs = [c["ref"] for c in body["citations"]]
    assert all(f"[{ref}]" in body["answer"] for ref in refs)
    chunks = org_chunks(tenant)
    for citation in body["citations"]:
        assert chunks[citation["chunk_id"]] == citation["title"]
        # The quote is the chunk's own text (whitespace collapsed, long ones cut at a word).
        assert citation["quote"].rstrip(" …")[:60] in " ".join(
            _chunk_text(tenant, citation["chunk_id"]).split()
        )


def _chunk_text(tenant: Tenant, chunk_id: str) -> str:
    with tenancy.tenant_session(tenant.org_id) as s:
        chunk = tenancy.get(s, Chunk, uuid.UUID(chunk_id))
        assert chunk is not None
        return chunk.text


@pytest.mark.usefixtures("hashing")
def test_citations_stay_inside_the_asking_org(tenant: Tenant) -> None:
    other = make_tenant("globex")
    ingest_topics(tenant, "with", "try")
    ingest_topics(other, "lambda", "assert")
    mine, theirs = org_chunks(tenant), org_chunks(other)
    for who, own, foreign in ((tenant, mine, theirs), (other, theirs, mine)):
        body = ask(who, question=WITH_QUESTION, top_k=10).json
        assert body["citations"]
        cited = {c["chunk_id"] for c in body["citations"]}
        assert cited <= set(own) and not cited & set(foreign)
        run = get_run(who, body["run_id"])
        assert set(run["state"]["retrieved"]) <= set(own)
        # The other org cannot read the run.
        other_tenant = other if who is tenant else tenant
        assert (
            client("runs").get(f"/{body['run_id']}", headers=other_tenant.headers).status_code
            == 404
        )


@pytest.mark.usefixtures("hashing")
def test_answer_records_a_run_with_tool_log(tenant: Tenant) -> None:
    ingest_topics(tenant, "with", "try", "while")
    resp = ask(tenant, question=WITH_QUESTION, top_k=4, params={"sentences": 2})
    assert resp.status_code == 200, resp.json
    body = resp.json
    run = get_run(tenant, body["run_id"])
    assert (run["kind"], run["status"]) == ("answer", "succeeded")
    assert run["started_at"] and run["finished_at"] and run["error"] is None
    assert run["input"]["question"] == WITH_QUESTION and run["input"]["top_k"] == 4
    state = run["state"]
    assert state["question"] == WITH_QUESTION and state["mode"] == "extractive"
    assert state["answer"] == body["answer"] and state["citations"] == body["citations"]
    assert state["params"] == {
        "mode": "hybrid",
        "top_k": 4,
        "generator": "extractive",
        "sentences": 2,
    }
    assert len(state["retrieved"]) == 4
    assert body["answer"].count("[") <= 2
    assert [c["chunk_id"] for c in body["citations"]] == [
        state["retrieved"][c["ref"] - 1] for c in body["citations"]
    ]
    search, extractive = run["tool_log"]
    assert search["tool"] == "search" and search["results"] == 4
    assert search["plan"]["candidates"] > 0 and search["ms"] >= 0
    assert extractive["tool"] == "extractive" and extractive["ms"] >= 0


@pytest.mark.usefixtures("hashing")
def test_nothing_retrieved(tenant: Tenant) -> None:
    body = ask(tenant, question="anything at all?").json
    assert body["answer"] == answers.NO_PASSAGES and body["citations"] == []
    run = get_run(tenant, body["run_id"])
    assert run["status"] == "succeeded" and run["state"]["retrieved"] == []


@pytest.mark.usefixtures("hashing")
def test_what_if_branch_and_compare(tenant: Tenant) -> None:
    ingest_topics(tenant, "with", "try", "for", "while")
    base = ask(tenant, question=WITH_QUESTION).json
    branch = ask(
        tenant,
        question=WITH_QUESTION,
        parent_run_id=base["run_id"],
        scenario_label="text search, top 2",
        params={"mode": "text", "top_k": 2},
    )
    assert branch.status_code == 200, branch.json
    b = branch.json
    run = get_run(tenant, b["run_id"])
    assert run["parent_run_id"] == base["run_id"]
    assert run["scenario_label"] == "text search, top 2"
    runs = client("runs")
    children = runs.get(f"/?parent_run_id={base['run_id']}", headers=tenant.headers).json
    assert [r["id"] for r in children["runs"]] == [b["run_id"]]
    diff = runs.get(f"/{base['run_id']}/compare/{b['run_id']}", headers=tenant.headers)
    assert diff.status_code == 200, diff.json
    d = diff.json
    assert (d["a"], d["b"]) == (base["run_id"], b["run_id"])
    assert d["params"]["changed"] == {
        "mode": {"a": "hybrid", "b": "text"},
        "top_k": {"a": 5, "b": 2},
    }
    assert d["params"]["only_a"] == {} and d["params"]["only_b"] == {}
    assert len(d["retrieved"]["only_a"]) >= 3  # 5 retrieved versus 2
    assert len(d["retrieved"]["common"]) + len(d["retrieved"]["only_b"]) == 2
    assert d["status"] == {"a": "succeeded", "b": "succeeded"}
    assert d["answer"]["a"] == base["answer"] and d["answer"]["same"] is (
        base["answer"] == b["answer"]
    )
    same = runs.get(f"/{base['run_id']}/compare/{base['run_id']}", headers=tenant.headers).json
    assert same["answer"]["same"] is True and same["retrieved"]["only_a"] == []


@pytest.mark.usefixtures("hashing")
def test_cross_org_parent_and_compare_are_404(tenant: Tenant) -> None:
    ingest_topics(tenant, "with")
    mine = ask(tenant, question=WITH_QUESTION).json["run_id"]
    other = make_tenant("globex")
    theirs = ask(other, question=WITH_QUESTION).json["run_id"]
    resp = ask(other, question=WITH_QUESTION, parent_run_id=mine)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    resp = ask(other, question=WITH_QUESTION, parent_run_id=str(uuid.uuid4()))
    assert resp.status_code == 404
    runs = client("runs")
    assert (
        runs.post(
            "/", json={"kind": "agent", "parent_run_id": mine}, headers=other.headers
        ).status_code
        == 404
    )
    assert runs.get(f"/{theirs}/compare/{mine}", headers=other.headers).status_code == 404
    assert runs.get(f"/{mine}/compare/{theirs}", headers=tenant.headers).status_code == 404
    with tenancy.tenant_session(other.org_id) as s:
        assert tenancy.count(s, Run, Run.kind == "answer") == 1  # the 404s recorded nothing


BAD_ANSWERS: list[tuple[str, dict[str, Any], int]] = [
    ("empty question", {"question": ""}, 422),
    ("blank question", {"question": "   "}, 422),
    ("long question", {"question": "x" * 2001}, 422),
    ("top_k 0", {"question": "q", "top_k": 0}, 422),
    ("top_k 51", {"question": "q", "top_k": 51}, 422),
    ("unknown field", {"question": "q", "evil": 1}, 422),
    ("unknown param", {"question": "q", "params": {"tmperature": 1}}, 422),
    ("bad search mode", {"question": "q", "params": {"mode": "magic"}}, 422),
    ("long label", {"question": "q", "scenario_label": "x" * 201}, 422),
    ("bad parent", {"question": "q", "parent_run_id": "nope"}, 422),
    ("bad filters", {"question": "q", "filters": {"colour": "red"}}, 422),
    ("llm without provider", {"question": "q", "params": {"generator": "llm"}}, 422),
]


@pytest.mark.usefixtures("hashing")
@pytest.mark.parametrize(("name", "body", "status"), BAD_ANSWERS, ids=[b[0] for b in BAD_ANSWERS])
def test_bad_answer_requests(tenant: Tenant, name: str, body: dict[str, Any], status: int) -> None:
    resp = ask(tenant, **body)
    assert resp.status_code == status, resp.json
    assert resp.json["error"]["request_id"] == resp.headers["X-Request-Id"]


@pytest.mark.usefixtures("hashing")
def test_answer_auth() -> None:
    assert client("answer").post("/", json={"question": "q"}).status_code == 401
    reader = make_tenant("reader", scopes=("read",))
    assert ask(reader, question="q").status_code == 200  # answering needs only `read`
    assert client("answer").get("/", headers=reader.headers).status_code == 405


@pytest.mark.usefixtures("hashing")
def test_answers_use_the_agent_rate_limit_bucket() -> None:
    limited = make_tenant("limited", settings={})  # default: 5 answers a minute per key
    assert [ask(limited, question="q?").status_code for _ in range(6)] == [200] * 5 + [429]
    refused = ask(limited, question="q?")
    assert refused.json["error"]["code"] == "rate_limited"
    assert refused.headers["RateLimit-Remaining"] == "0" and int(refused.headers["Retry-After"]) > 0
    # Other functions draw on their own (crud) bucket; refused calls recorded no run.
    listed = client("runs").get("/?kind=answer", headers=limited.headers)
    assert listed.status_code == 200 and len(listed.json["runs"]) == 5


# --------------------------------------------------------------------------- LLM mode


class FakeChat:
    """An OpenAI-compatible /chat/completions endpoint on pytest-httpserver."""

    def __init__(self, server: HTTPServer) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: tuple[int, Any] = (200, {})
        self.server = server
        server.expect_request(re.compile(".*"), method="POST").respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        self.requests.append(
            {
                "path": request.path,
                "auth": request.headers.get("Authorization"),
                "body": json.loads(request.get_data()),
            }
        )
        status, body = self.reply
        return Response(json.dumps(body), status, content_type="application/json")

    @property
    def base_url(self) -> str:
        return self.server.url_for("/v1")

    def answer_with(self, content: str) -> None:
        self.reply = (200, {"choices": [{"index": 0, "message": {"content": content}}]})


@pytest.fixture()
def fake_llm(configure: Callable[..., None], httpserver: HTTPServer) -> Iterator[FakeChat]:
    fake = FakeChat(httpserver)
    configure(
        queue_backend="inline",
        embedding_provider="hashing",
        llm_provider="openai",
        llm_base_url=fake.base_url,
        llm_model="fake-chat",
        llm_api_key="sk-test",
    )
    answers.reset_llms()
    yield fake
    answers.reset_llms()


def test_llm_mode_against_a_fake_provider(tenant: Tenant, fake_llm: FakeChat) -> None:
    ingest_topics(tenant, "with", "try", "for")
    fake_llm.answer_with(
        "The with statement calls __enter__ before the suite [2]. "
        "It always calls __exit__ afterwards [1][2], even on errors [9]."
    )
    resp = ask(tenant, question=WITH_QUESTION, top_k=3, params={"temperature": 0.3})
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["mode"] == "llm"
    assert body["answer"].startswith("The with statement calls __enter__")
    assert [c["ref"] for c in body["citations"]] == [2, 1]  # [9] is not a passage: dropped
    (request,) = fake_llm.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    sent = request["body"]
    assert sent["model"] == "fake-chat" and sent["temperature"] == 0.3
    system, user = sent["messages"]
    assert system["role"] == "system" and "[2]" in system["content"]
    assert WITH_QUESTION in user["content"]
    assert all(f"[{n}]" in user["content"] for n in (1, 2, 3)) and "[4]" not in user["content"]
    run = get_run(tenant, body["run_id"])
    retrieved = run["state"]["retrieved"]
    assert [c["chunk_id"] for c in body["citations"]] == [retrieved[1], retrieved[0]]
    assert run["state"]["params"]["model"] == "fake-chat"
    assert [e["tool"] for e in run["tool_log"]] == ["search", "llm"]
    assert run["tool_log"][1]["cited"] == [2, 1] and run["tool_log"][1]["model"] == "fake-chat"
    chunks = org_chunks(tenant)
    assert all(chunks[c["chunk_id"]] == c["title"] for c in body["citations"])


def test_llm_failures_are_recorded_as_failed_runs(tenant: Tenant, fake_llm: FakeChat) -> None:
    ingest_topics(tenant, "with")
    for status, http_status, code in ((500, 503, "transient"), (400, 502, "generation_failed")):
        fake_llm.reply = (status, {"error": {"message": "nope"}})
        resp = ask(tenant, question=WITH_QUESTION)
        assert resp.status_code == http_status, resp.json
        error = resp.json["error"]
        assert error["code"] == code and error["request_id"] == resp.headers["X-Request-Id"]
        run = get_run(tenant, error["details"]["run_id"])
        assert run["status"] == "failed" and run["error"].startswith(code)
        assert run["state"]["answer"] is None and run["state"]["retrieved"]
        assert run["tool_log"][-1] == {**run["tool_log"][-1], "tool": "llm", "error": code}
    fake_llm.reply = (200, {"unexpected": True})
    assert ask(tenant, question=WITH_QUESTION).status_code == 502


def test_extractive_can_be_forced_with_an_llm_configured(
    tenant: Tenant, fake_llm: FakeChat
) -> None:
    ingest_topics(tenant, "with")
    body = ask(tenant, question=WITH_QUESTION, params={"generator": "extractive"}).json
    assert body["mode"] == "extractive" and body["citations"]
    assert fake_llm.requests == []


# --------------------------------------------------------------------------- runs function


@pytest.mark.usefixtures("hashing")
def test_runs_crud_pagination_and_filters(tenant: Tenant) -> None:
    runs = client("runs")
    created = runs.post(
        "/",
        json={"kind": "agent", "input": {"goal": "g"}, "state": {"step": 0}, "status": "running"},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.json
    root = created.json
    assert (root["kind"], root["status"], root["input"], root["state"], root["tool_log"]) == (
        "agent",
        "running",
        {"goal": "g"},
        {"step": 0},
        [],
    )
    assert root["started_at"] and root["finished_at"] is None
    ids = [root["id"]]
    for i in range(4):
        child = runs.post(
            "/",
            json={"kind": "agent", "parent_run_id": root["id"], "scenario_label": f"s{i}"},
            headers=tenant.headers,
        ).json
        assert child["status"] == "pending" and child["started_at"] is None
        ids.append(child["id"])
    ids.append(runs.post("/", json={"kind": "planner-2"}, headers=tenant.headers).json["id"])

    seen: list[str] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = runs.get("/", query_string=query, headers=tenant.headers).json
        assert len(page["runs"]) <= 2
        assert all("state" not in r for r in page["runs"])  # lists stay small
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))

    def listed(query: str) -> set[str]:
        resp = runs.get(f"/?{query}", headers=tenant.headers)
        assert resp.status_code == 200, resp.json
        return {r["id"] for r in resp.json["runs"]}

    assert listed("kind=planner-2") == {ids[-1]}
    assert listed("status=running") == {root["id"]}
    assert listed(f"parent_run_id={root['id']}") == set(ids[1:5])
    assert listed(f"parent_run_id={root['id']}&status=running") == set()
    assert listed("kind=agent&status=pending") == set(ids[1:5])
    assert runs.get("/?cursor=garbage", headers=tenant.headers).status_code == 422
    assert runs.get("/?limit=201", headers=tenant.headers).status_code == 422
    assert runs.get("/?status=done", headers=tenant.headers).status_code == 422
    assert runs.get("/?colour=red", headers=tenant.headers).status_code == 422

    patched = runs.patch(
        f"/{ids[1]}",
        json={"state": {"a": 1}, "tool_log": [{"tool": "search", "ms": 3}], "status": "running"},
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.json
    assert patched.json["status"] == "running" and patched.json["started_at"]
    again = runs.patch(
        f"/{ids[1]}",
        json={"state": {"b": 2, "a": 3}, "tool_log": [{"tool": "llm"}]},
        headers=tenant.headers,
    ).json
    assert again["state"] == {"a": 3, "b": 2}
    assert again["tool_log"] == [{"tool": "search", "ms": 3}, {"tool": "llm"}]
    assert runs.get(f"/{ids[1]}", headers=tenant.headers).json == again


@pytest.mark.usefixtures("hashing")
def test_terminal_status_is_final(tenant: Tenant) -> None:
    runs = client("runs")
    run_id = runs.post("/", json={"kind": "agent"}, headers=tenant.headers).json["id"]
    running = runs.patch(f"/{run_id}", json={"status": "running"}, headers=tenant.headers)
    assert running.status_code == 200
    back = runs.patch(f"/{run_id}", json={"status": "pending"}, headers=tenant.headers)
    assert back.status_code == 409 and back.json["error"]["details"] == {"status": "running"}
    done = runs.patch(
        f"/{run_id}", json={"status": "succeeded", "state": {"x": 1}}, headers=tenant.headers
    )
    assert done.status_code == 200 and done.json["finished_at"]
    for change in (
        {"status": "running"},
        {"status": "failed"},
        {"status": "succeeded"},
        {"state": {"y": 2}},
        {"tool_log": [{"tool": "late"}]},
    ):
        resp = runs.patch(f"/{run_id}", json=change, headers=tenant.headers)
        assert resp.status_code == 409, (change, resp.json)
        assert resp.json["error"]["code"] == "conflict"
    final = runs.get(f"/{run_id}", headers=tenant.headers).json
    assert (final["status"], final["state"], final["tool_log"]) == ("succeeded", {"x": 1}, [])
    assert (
        runs.patch(
            f"/{uuid.uuid4()}", json={"status": "failed"}, headers=tenant.headers
        ).status_code
        == 404
    )


@pytest.mark.usefixtures("hashing")
def test_concurrent_patches_lose_nothing(tenant: Tenant) -> None:
    run_id = client("runs").post("/", json={"kind": "agent"}, headers=tenant.headers).json["id"]
    clients = [client("runs") for _ in range(10)]
    barrier = threading.Barrier(10)

    def patch(i: int) -> int:
        barrier.wait()
        while True:
            resp = clients[i].patch(
                f"/{run_id}",
                json={"state": {f"k{i}": i}, "tool_log": [{"tool": "worker", "i": i}]},
                headers=tenant.headers,
            )
            if resp.status_code != 429:  # refused at the instance's limit: sent again
                return int(resp.status_code)
            time.sleep(float(resp.headers["Retry-After"]))

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(patch, range(10)))
    assert statuses == [200] * 10
    run = get_run(tenant, run_id)
    assert run["state"] == {f"k{i}": i for i in range(10)}
    assert sorted(e["i"] for e in run["tool_log"]) == list(range(10))


BAD_RUNS: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("system kind", "post", "/", {"kind": "answer"}, 422),
    ("ingest kind", "post", "/", {"kind": "ingest"}, 422),
    ("bad kind", "post", "/", {"kind": "Agent!"}, 422),
    ("long kind", "post", "/", {"kind": "a" * 65}, 422),
    ("terminal at birth", "post", "/", {"kind": "agent", "status": "succeeded"}, 422),
    ("unknown field", "post", "/", {"kind": "agent", "evil": 1}, 422),
    ("state not object", "post", "/", {"kind": "agent", "state": [1]}, 422),
    ("unknown parent", "post", "/", {"kind": "agent", "parent_run_id": str(uuid.uuid4())}, 404),
    ("empty patch", "patch", "/{id}", {}, 422),
    ("bad status", "patch", "/{id}", {"status": "done"}, 422),
    ("log not list", "patch", "/{id}", {"tool_log": {"tool": "x"}}, 422),
    ("log entry not object", "patch", "/{id}", {"tool_log": ["x"]}, 422),
    ("patch collection", "patch", "/", {"status": "running"}, 405),
    ("post to a run", "post", "/{id}", {"kind": "agent"}, 405),
    ("compare needs other", "get", "/{id}/compare", {}, 404),
    ("compare garbage", "get", "/{id}/compare/nope", {}, 404),
    ("unknown sub-path", "get", "/{id}/children", {}, 404),
    ("malformed id", "get", "/nope", {}, 404),
    ("unknown run", "get", f"/{uuid.uuid4()}", {}, 404),
]


@pytest.mark.usefixtures("hashing")
@pytest.mark.parametrize(
    ("name", "method", "path", "body", "status"), BAD_RUNS, ids=[b[0] for b in BAD_RUNS]
)
def test_bad_runs_requests(
    tenant: Tenant, name: str, method: str, path: str, body: dict[str, Any], status: int
) -> None:
    runs = client("runs")
    run_id = runs.post("/", json={"kind": "agent"}, headers=tenant.headers).json["id"]
    call = getattr(runs, method)
    kwargs: dict[str, Any] = {"json": body} if method != "get" else {}
    resp = call(path.format(id=run_id), headers=tenant.headers, **kwargs)
    assert resp.status_code == status, resp.json
    assert resp.json["error"]["request_id"] == resp.headers["X-Request-Id"]


@pytest.mark.usefixtures("hashing")
def test_runs_scopes() -> None:
    writer = make_tenant("writer")
    run_id = client("runs").post("/", json={"kind": "agent"}, headers=writer.headers).json["id"]
    reader = make_tenant("reader", scopes=("read",))
    runs = client("runs")
    assert runs.get("/").status_code == 401
    assert runs.post("/", json={"kind": "agent"}, headers=reader.headers).status_code == 403
    assert runs.get("/", headers=reader.headers).json["runs"] == []
    assert (
        runs.patch(f"/{run_id}", json={"status": "running"}, headers=reader.headers).status_code
        == 403
    )
    assert runs.delete(f"/{run_id}", headers=writer.headers).status_code == 405
