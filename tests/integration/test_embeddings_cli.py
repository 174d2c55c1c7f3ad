"""`ragline embeddings status|reembed|compare|cutover|rollback` and the spaces in
`ragline status`, end to end on the test Postgres (hashing spaces, inline queue)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from ragline.dev.cli import app

from .helpers import client, make_tenant
from .test_embedding_spaces import TEXTS, add_doc, make_org


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_the_whole_lifecycle_from_the_command_line(
    configure: Callable[..., None], tmp_path: Path
) -> None:
    configure(
        queue_backend="inline",
        embedding_provider="hashing",
        embedding_prices='{"hashing/hashing-v1": 0.02}',
    )
    make_org("cli-spaces")
    from ragline.db import orgs
    from ragline.db.engine import owner_session

    with owner_session() as s:
        org = orgs.org_id_by_slug(s, "cli-spaces")
    assert org is not None
    for title, text in TEXTS.items():
        add_doc(org, title, text)

    code, out = run("embeddings", "status", "--org", "cli-spaces")
    assert code == 0 and "no embedding spaces" in out
    code, out = run("embeddings", "cutover", "--org", "cli-spaces")
    assert code == 1 and "no shadow space" in out
    code, out = run(
        "embeddings", "reembed", "--org", "cli-spaces", "--provider", "hashing",
        "--model", "hashing-v1", "--dimension", "3072",
    )  # fmt: skip
    assert code == 1 and "2000" in out
    code, out = run(
        "embeddings", "reembed", "--org", "cli-spaces", "--provider", "hashing",
        "--model", "hashing-v1", "--dimension", "256",
    )  # fmt: skip
    assert code == 0, out
    assert "started shadow space" in out and "0 missing" in out and "≈ $" in out

    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps({"question": q, "relevant": [t]})
            for q, t in (("keel rudder wind", "sailing"), ("yeast dough", "baking"))
        )
    )
    code, out = run("embeddings", "compare", "--org", "cli-spaces", "--questions", str(questions))
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["questions"] == 2 and 0 <= report["overlap"] <= 1
    assert report["a"]["state"] == "active" and report["b"]["state"] == "shadow"
    assert report["b"]["mrr@10"] == 1.0

    code, out = run("embeddings", "cutover", "--org", "cli-spaces")
    assert code == 0 and "active: hashing/hashing-v1 (256 d)" in out
    code, out = run("status", "--org", "cli-spaces")
    assert code == 0 and "EMBEDDING SPACE" in out and "retired" in out
    code, out = run("embeddings", "rollback", "--org", "cli-spaces")
    assert code == 0 and "active: hashing/hashing-v1 (384 d)" in out
    code, out = run("embeddings", "status", "--org", "cli-spaces", "--json")
    assert code == 0
    states = {p["state"]: p for p in json.loads(out)}
    assert states["active"]["storage"] == "chunk" and states["retired"]["dimension"] == 256


def test_compare_without_questions_runs_the_logged_search_queries(
    configure: Callable[..., None],
) -> None:
    configure(queue_backend="inline", embedding_provider="hashing", query_log_rate="1")
    tenant = make_tenant("cli-log")
    for title, text in TEXTS.items():
        add_doc(tenant.org_id, title, text)
    code, out = run("embeddings", "reembed", "--org", "cli-log", "--provider", "hashing",
                    "--model", "hashing-v1", "--dimension", "256")  # fmt: skip
    assert code == 0, out
    code, out = run("embeddings", "compare", "--org", "cli-log")
    assert code == 1 and "no logged search queries" in out
    for query in ("keel rudder wind", "yeast dough", "keel rudder wind"):
        resp = client("search").post("/", json={"query": query}, headers=tenant.headers)
        assert resp.status_code == 200
    code, out = run("embeddings", "compare", "--org", "cli-log")
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert (report["questions"], report["labelled"]) == (2, False)
    assert 0 <= report["overlap"] <= 1 and "mrr@10" not in report["b"]
