"""Pure parts of the answer and health code: no database, no processes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ragline.ops import health
from ragline.retrieval import answer as answers
from ragline.retrieval.search import Hit


def test_extract_picks_overlapping_sentences_weighted_by_rank() -> None:
    def hit(text: str) -> Hit:
        return Hit(uuid.uuid4(), uuid.uuid4(), "t", None, text)

    hits = [
        hit("Widgets are blue. The frobnicator calls the widget twice. Nothing else here."),
        hit("The frobnicator calls the widget twice. Gadgets frobnicate widgets loudly today."),
        hit("Unrelated words only, nothing shared at all."),
    ]
    text, citations = answers.extract("Why does the frobnicator call widgets?", hits, 3)
    # The same sentence in passages 1 and 2 is quoted once, from the better-ranked passage.
    assert text.startswith("The frobnicator calls the widget twice. [1]")
    assert text.count("The frobnicator calls the widget twice.") == 1
    assert [c.ref for c in citations] == [1, 2]
    assert all(c.hit is hits[c.ref - 1] for c in citations)
    assert "Unrelated" not in text


def test_stemming_and_stopwords() -> None:
    assert answers.content_terms("The calls were called by calling") == {"call"}
    assert answers.cited_refs("a [2] b [1, 3] c [2][9] [x]", 3) == [2, 1, 3]


def test_head_from_files_follows_the_chain(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('revision: str = "0001"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text("revision = '0002'\ndown_revision: str | None = '0001'\n")
    from ragline.dev.migrate import head_from_files

    assert head_from_files(tmp_path) == "0002"
    (tmp_path / "c.py").write_text('revision = "0003"\ndown_revision = "0001"\n')
    with pytest.raises(Exception, match="one migration head"):
        head_from_files(tmp_path)


@pytest.mark.parametrize(
    ("version", "ok", "detail"),
    [
        ("0.8.0", True, "pgvector 0.8.0"),
        ("0.10.1", True, "pgvector 0.10.1"),
        ("0.7.4", True, "exact plans are used"),
        (None, False, "not installed"),
    ],
)
def test_vector_check(version: str | None, ok: bool, detail: str) -> None:
    got_ok, got_detail = health.vector_check(version)
    assert got_ok is ok and detail in got_detail
