"""`ragline eval` end to end: an org, a question file, the table and the JSON line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from ragline.dev.cli import app

from .test_search import add_doc, make_org


def test_eval_prints_a_table_and_json(configure: Callable[..., None], tmp_path: Path) -> None:
    configure(queue_backend="inline", embedding_provider="hashing")
    org = make_org("eval-cli")
    add_doc(org, "keels", "Sailing boats use a keel and a rudder to steer.")
    loops = add_doc(org, "loops", "A for loop iterates over the items of a sequence in order.")
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"question": "rudder keel sailing", "relevant": ["keels"]})
        + "\n"
        + json.dumps({"question": "iterate over a sequence", "relevant": [str(loops)]})
        + "\n"
    )
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        app,
        ["eval", "--questions", str(questions), "--org", "eval-cli", "--json-out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "MRR@10" in result.output and "hybrid" in result.output
    payload = json.loads(out.read_text())
    assert [m["mode"] for m in payload["modes"]] == ["vector", "text", "hybrid"]
    text = payload["modes"][1]
    assert text["mrr@10"] == 1.0 and text["recall@1"] == 1.0  # both found first by words
    assert json.loads(result.output.strip().splitlines()[-1]) == payload

    bad = CliRunner().invoke(app, ["eval", "--questions", str(questions), "--modes", "fuzzy"])
    assert bad.exit_code == 1 and "unknown modes" in bad.output
    missing = CliRunner().invoke(app, ["eval", "--questions", str(questions), "--org", "nope"])
    assert missing.exit_code == 1
