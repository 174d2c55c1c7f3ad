"""The fusions of hybrid search (`ragline.retrieval.search`), on hits built by hand."""

from __future__ import annotations

import uuid

import pytest

from ragline.retrieval import search
from ragline.retrieval.search import Hit


def hit(n: int, score: float, text: str = "") -> Hit:
    return Hit(uuid.UUID(int=n), uuid.UUID(int=1000 + n), f"doc {n}", None, text, score=score)


def test_convex_fusion_normalises_each_list_and_sums_the_weights() -> None:
    vector = [hit(1, 0.9), hit(2, 0.7), hit(3, 0.5)]  # min-max: 1, 0.5, 0
    text = [hit(3, 4.0), hit(4, 2.0)]  # min-max: 1, 0
    fused = search.fuse_convex(vector, text, 10, alpha=0.7)
    assert [(h.chunk_id.int, round(h.score, 9)) for h in fused] == [
        (1, 0.7),
        (2, 0.35),
        (3, 0.3),
        (4, 0.0),
    ]
    # Each hit says where it stood in each list; the inputs are left as they were.
    assert [(h.vector_rank, h.text_rank) for h in fused] == [
        (1, None),
        (2, None),
        (3, 1),
        (None, 2),
    ]
    assert all(h.score in (0.9, 0.7, 0.5) for h in vector) and text[0].text_rank is None
    assert fused[0].title == "doc 1" and fused[0] is not vector[0]


def test_equal_scores_rank_by_chunk_id_and_top_k_cuts() -> None:
    """Ties go to the smaller chunk id (as text and as a number: the same order), so a
    result never depends on the order the candidates came in."""
    ids = [uuid.UUID("ffffffff-0000-0000-0000-000000000000"), uuid.UUID(int=5), uuid.UUID(int=7)]
    for order in (ids, ids[::-1]):
        vector = [Hit(i, i, "", None, "", score=0.5) for i in order]
        fused = search.fuse_convex(vector, [], 2, alpha=0.7)
        assert [h.chunk_id for h in fused] == sorted(ids, key=str)[:2]
        assert [h.score for h in fused] == [0.7, 0.7]  # a flat list normalises to 1


@pytest.mark.parametrize("weight", [1.0, 0.25])
def test_rrf_adds_one_over_k_plus_rank_per_list(weight: float) -> None:
    vector, text = [hit(1, 0.9), hit(2, 0.8)], [hit(2, 3.0), hit(3, 1.0)]
    fused = search.fuse_rrf(vector, text, 3, text_weight=weight)
    scores = {h.chunk_id.int: h.score for h in fused}
    assert scores == pytest.approx({1: 1 / 61, 2: 1 / 62 + weight / 61, 3: weight / 62}, rel=1e-12)
    assert fused[0].chunk_id.int == 2 and (fused[0].vector_rank, fused[0].text_rank) == (2, 1)
