"""`ragline eval`'s metrics and question files (no database)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from ragline.dev import evaluate


def test_score_ranks_documents_and_recall_at_cutoffs() -> None:
    ranked = [{"id1", "intro"}, {"id2", "loops"}, {"id3", "errors"}]
    rank, recall = evaluate.score(ranked, ["errors", "id2"])
    assert rank == 2
    assert recall == {1: 0.0, 5: 1.0, 10: 1.0}
    assert evaluate.score(ranked, ["absent"]) == (None, {1: 0.0, 5: 0.0, 10: 0.0})


def test_load_questions_jsonl_and_pair_lists(tmp_path: Path) -> None:
    lines = tmp_path / "q.jsonl"
    lines.write_text(
        json.dumps({"question": "how?", "relevant": ["a", "b"]})
        + "\n\n"
        + json.dumps({"question": "why?", "relevant": ["c"]})
        + "\n"
    )
    assert evaluate.load_questions(lines) == [
        evaluate.Question("how?", ("a", "b")),
        evaluate.Question("why?", ("c",)),
    ]
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([["what is x?", "topic"]]))
    assert evaluate.load_questions(pairs) == [evaluate.Question("what is x?", ("topic",))]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "no relevant"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        evaluate.load_questions(bad)
    # Questions the search would refuse fail the load with their line, not the run midway.
    for question, why in (
        ("harbour \\ud800", "unicode"),
        ("   ", "non-blank"),
        ("x" * 2001, "2000"),
    ):
        bad.write_text(json.dumps({"question": "fine", "relevant": []}) + "\n")
        bad.write_text(bad.read_text() + f'{{"question": "{question}", "relevant": ["a"]}}\n')
        with pytest.raises(ValueError, match=rf"bad\.jsonl:2: .*{why}"):
            evaluate.load_questions(bad)


def test_evaluate_with_a_searcher_and_table() -> None:
    answers = {"q1": [("d1", "alpha"), ("d1", "alpha"), ("d2", "beta")], "q2": []}
    questions = [evaluate.Question("q1", ("beta",)), evaluate.Question("q2", ("alpha",))]
    reports = evaluate.evaluate(
        evaluate_org(), questions, ["vector"], searcher=lambda _o, q, _m: answers[q]
    )
    (report,) = reports
    assert report.mrr == pytest.approx(0.25)  # beta is the 2nd distinct document; q2 misses
    assert report.recall == {1: 0.0, 5: 0.5, 10: 0.5}
    assert report.as_dict()["mrr@10"] == 0.25
    assert "MRR@10" in evaluate.table(reports) and "vector" in evaluate.table(reports)


def evaluate_org() -> uuid.UUID:
    return uuid.UUID(int=1)
