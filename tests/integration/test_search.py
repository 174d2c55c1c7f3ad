"""Search through the library: filters, model isolation, text mode with its trigram fallback,
hybrid fusion, and hybrid quality on the labelled pydoc questions (real MiniLM)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ragline.db import engine as db
from ragline.db import orgs, tenancy
from ragline.db.models import Chunk
from ragline.ingest import documents, ingestion
from ragline.retrieval import search

QUESTIONS = Path(__file__).resolve().parents[1] / "data" / "pydoc_questions.json"
MODES: tuple[search.Mode, ...] = ("vector", "text", "hybrid")


@pytest.fixture()
def hashing(configure: Callable[..., None]) -> None:
    configure(queue_backend="inline", embedding_provider="hashing", embed_batch_chunks="8")


def make_org(slug: str) -> uuid.UUID:
    with db.owner_session() as session:
        org_id, _ = orgs.ensure_org(session, slug)
    return org_id


def add_doc(org_id: uuid.UUID, title: str, text: str, **fields: Any) -> uuid.UUID:
    """Create a document and run the (inline) pipeline on it, as the ingest function does."""
    with tenancy.tenant_session(org_id) as session:
        result = documents.create(session, documents.NewDocument(title=title, text=text, **fields))
    ingestion.start_pipeline(org_id, result)
    return result.document.id


def run(
    org_id: uuid.UUID,
    query: str,
    mode: search.Mode = "hybrid",
    top_k: int = 10,
    **filters: Any,
) -> search.SearchResult:
    req = search.SearchRequest(
        query=query, top_k=top_k, mode=mode, filters=search.Filters(**filters) if filters else None
    )
    with tenancy.tenant_session(org_id) as session:
        return search.search(session, req)


def doc_ids(result: search.SearchResult) -> set[uuid.UUID]:
    return {h.document_id for h in result.hits}


WIDGETS = {
    "alpha": (
        "Widgets are assembled from blue parts in the alpha plant.",
        "note",
        {"team": "red", "tier": 1},
    ),
    "beta": ("Widgets ship in boxes; the beta line tests every widget.", "spec", {"team": "blue"}),
    "gamma": ("Widget repairs: the gamma crew fixes broken widgets.", "note", {"team": "blue"}),
}


@pytest.fixture()
def two_orgs(hashing: None) -> dict[str, Any]:
    """Org A and org B with the same three documents (same text, kinds and metadata)."""
    out: dict[str, Any] = {}
    for org in ("a", "b"):
        org_id = make_org(f"search-{org}")
        ids = {
            title: add_doc(org_id, title, text, kind=kind, metadata=meta)
            for title, (text, kind, meta) in WIDGETS.items()
        }
        out[org] = (org_id, ids)
    return out


FILTER_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("no filter", {}, {"alpha", "beta", "gamma"}),
    ("kind", {"kind": "note"}, {"alpha", "gamma"}),
    ("metadata", {"metadata": {"team": "blue"}}, {"beta", "gamma"}),
    ("metadata, two keys", {"metadata": {"team": "red", "tier": 1}}, {"alpha"}),
    ("kind and metadata", {"kind": "note", "metadata": {"team": "blue"}}, {"gamma"}),
    ("unknown kind", {"kind": "other"}, set()),
]


@pytest.mark.parametrize("mode", MODES)
def test_filters_narrow_within_the_org(two_orgs: dict[str, Any], mode: search.Mode) -> None:
    org_a, ids_a = two_orgs["a"]
    for name, filters, expected in FILTER_CASES:
        result = run(org_a, "widgets", mode, **filters)
        assert doc_ids(result) == {ids_a[t] for t in expected}, name


@pytest.mark.parametrize("mode", MODES)
def test_document_ids_filter_never_reaches_another_org(
    two_orgs: dict[str, Any], mode: search.Mode
) -> None:
    (org_a, ids_a), (_org_b, ids_b) = two_orgs["a"], two_orgs["b"]
    mixed = [ids_a["beta"], ids_b["alpha"], ids_b["beta"]]
    assert doc_ids(run(org_a, "widgets", mode, document_ids=mixed)) == {ids_a["beta"]}
    only_b = [ids_b["alpha"], ids_b["gamma"]]
    result = run(org_a, "widgets", mode, document_ids=only_b)
    assert result.hits == []
    if mode != "text":  # text mode counts nothing: it only returns matches
        assert result.plan["candidates"] == 0


def test_other_embedding_models_are_never_mixed_in(hashing: None) -> None:
    org = make_org("models")
    keep = add_doc(org, "kept", "Sailing boats use a keel and a rudder to steer.")
    other = add_doc(org, "relabelled", "Sailing boats use a keel and a rudder to steer, too.")
    # As if `relabelled` had been embedded by another model (e.g. before a model change).
    with db.owner_session() as session:
        session.execute(
            sa.update(Chunk).where(Chunk.document_id == other).values(embedding_model="other-model")
        )
        kept_chunks = session.scalar(
            sa.select(sa.func.count()).select_from(Chunk).where(Chunk.document_id == keep)
        )
    for mode in MODES:
        result = run(org, "sailing boats keel rudder", mode)
        assert doc_ids(result) == {keep}, mode
        if mode != "text":
            assert result.plan["candidates"] == kept_chunks


def test_text_mode_and_trigram_fallback_for_a_misspelled_word(hashing: None) -> None:
    org = make_org("typos")
    target = add_doc(org, "errors", "An exception is raised when an error is detected at runtime.")
    add_doc(org, "loops", "A for loop iterates over the items of a sequence in order.")
    exact = run(org, "exception", "text")
    assert [h.document_id for h in exact.hits] == [target]
    assert exact.hits[0].text_rank == 1 and exact.hits[0].vector_rank is None
    # No full-text match for the misspelling: the trigram fallback still finds the word.
    with tenancy.tenant_session(org) as session:
        assert not session.scalar(
            sa.select(sa.func.count())
            .select_from(Chunk)
            .where(Chunk.tsv.op("@@")(sa.func.websearch_to_tsquery("english", "exeption")))
        )
    fuzzy = run(org, "exeption", "text")
    assert [h.document_id for h in fuzzy.hits] == [target]
    assert fuzzy.hits[0].score < min(h.score for h in exact.hits)  # ranked below real matches
    assert run(org, "exeption", "hybrid").hits[0].document_id == target


def test_hybrid_trigram_rescue_scores_the_shown_candidates_only(hashing: None) -> None:
    """A short query no candidate matches in full: the shown candidates (the vector top
    `top_k`) whose words closely match it make the text list; the others are not scored."""
    org = make_org("typos-hybrid")
    target = add_doc(org, "errors", "An exception is raised when an error is detected at runtime.")
    # Closer to the query by vector (the shared word, without the rest): ranked first.
    decoys = {add_doc(org, f"decoy {i}", text) for i, text in enumerate(["raised raised raised"])}
    query = "raised exeption"  # no chunk holds both words: no full-text match at all
    vector = run(org, query, "vector")
    assert [h.document_id for h in vector.hits] == [*decoys, target]
    found = run(org, query, "hybrid", top_k=2)
    ranks = {h.document_id: h.text_rank for h in found.hits}
    assert ranks == {target: 1, **dict.fromkeys(decoys)}  # the decoy is below 0.5 similarity
    # top_k 1: only the decoy is shown, and it is not similar enough: no text list at all.
    alone = run(org, query, "hybrid", top_k=1)
    assert [(h.document_id, h.text_rank) for h in alone.hits] == [(*decoys, None)]


def test_hybrid_fuses_cosine_and_all_terms_text_scores(two_orgs: dict[str, Any]) -> None:
    org_a, _ids = two_orgs["a"]
    query = "the gamma crew fixes broken widgets"
    result = run(org_a, query, "hybrid")
    vector = run(org_a, query, "vector", top_k=50)
    assert result.hits and result.complete
    assert any(h.vector_rank and h.text_rank for h in result.hits)
    cosine = {h.chunk_id: h.score for h in vector.hits}
    low, top = min(cosine.values()), max(cosine.values())
    for hit in result.hits:
        assert hit.vector_rank is not None or hit.text_rank is not None
        # Only the gamma chunk has every term: it alone is on the text list (score 1 there).
        expected_text = 1.0 if hit.text_rank else 0.0
        expected_vec = (cosine[hit.chunk_id] - low) / (top - low) if top > low else 1.0
        w = search.HYBRID_VECTOR_WEIGHT
        assert hit.score == pytest.approx(w * expected_vec + (1 - w) * expected_text)
        assert {"vector_rank", "text_rank"} & set(hit.as_dict())
    assert sum(1 for h in result.hits if h.text_rank) == 1
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert all(h.vector_rank and h.text_rank is None for h in vector.hits)


@pytest.mark.parametrize("mode", MODES)
def test_rerank_reorders_with_the_configured_cross_encoder(
    two_orgs: dict[str, Any], configure: Callable[..., None], tmp_path: Path, mode: search.Mode
) -> None:
    from ragline.retrieval.rerank import reset_rerankers

    from ..unit.test_rerank import build_tiny_cross_encoder

    org_a, ids_a = two_orgs["a"]
    folder = build_tiny_cross_encoder(tmp_path, liked="gamma")
    configure(rerank_provider="onnx", rerank_onnx_path=str(folder), rerank_model="tiny")
    reset_rerankers()
    try:
        plain = run(org_a, "widgets", mode)
        req = search.SearchRequest(query="widgets", mode=mode, rerank=True)
        with tenancy.tenant_session(org_a) as session:
            reranked = search.search(session, req)
    finally:
        reset_rerankers()
    assert {h.chunk_id for h in reranked.hits} == {h.chunk_id for h in plain.hits}
    assert reranked.hits[0].document_id == ids_a["gamma"]  # title and text say "gamma"
    assert reranked.hits[0].score == 2.0
    assert reranked.plan["rerank"] == "tiny"
    assert not search.SearchRequest(query="x").rerank  # off unless asked for


def mrr_at_10(
    org_id: uuid.UUID, titles: dict[str, uuid.UUID], questions: list[list[str]], mode: search.Mode
) -> float:
    """Document-level mean reciprocal rank of the labelled topic in the top 10 chunks."""
    total = 0.0
    for question, topic in questions:
        ranked: list[uuid.UUID] = []
        for hit in run(org_id, question, mode).hits:
            if hit.document_id not in ranked:
                ranked.append(hit.document_id)
        if titles[topic] in ranked:
            total += 1.0 / (ranked.index(titles[topic]) + 1)
    return total / len(questions)


@pytest.mark.slow
def test_hybrid_beats_either_list_alone_on_labelled_questions(
    configure: Callable[..., None],
) -> None:
    """Real MiniLM on the pydoc topics the questions target (measured on all 79 topics:
    MRR@10 vector 0.664, text 0.286, hybrid 0.689)."""
    from pydoc_data.topics import topics

    configure(queue_backend="inline", embedding_provider="minilm")
    questions: list[list[str]] = json.loads(QUESTIONS.read_text())
    org = make_org("pydoc")
    titles = {
        topic: add_doc(org, topic, topics[topic], kind="pydoc")
        for topic in sorted({t for _, t in questions})
    }
    scores = {mode: mrr_at_10(org, titles, questions, mode) for mode in MODES}
    assert scores["hybrid"] >= scores["vector"], scores
    assert scores["hybrid"] >= scores["text"], scores
    assert scores["hybrid"] >= 0.5, scores


def _prepared() -> list[Any]:
    """This connection's prepared statements with their generic and custom plan counts (the
    pool of the test engine holds one or two connections)."""
    with tenancy.tenant_session(make_org("plans-probe")) as session:
        return list(
            session.execute(
                sa.text("select statement, generic_plans, custom_plans from pg_prepared_statements")
            )
        )


def _plans_by_statement() -> dict[str, tuple[int, int]]:
    """(generic, custom) plan counts of the prepared statements, by their first words."""
    out: dict[str, tuple[int, int]] = {}
    for statement, generic, custom in _prepared():
        key = "vector" if _kind(statement) != "other" else statement[:40]
        g, c = out.get(key, (0, 0))
        out[key] = (g + generic, c + custom)
    return out


def test_only_the_whole_org_vector_statement_runs_on_a_generic_plan(hashing: None) -> None:
    """A generic plan is made with the estimates of the org bound when it is made; reused for
    a statement whose best index depends on its values, a plan made at a small org scanned a
    large one (text scores: 223 ms instead of 1 ms at 100 000 chunks, issue 14). Only the
    gated vector statement of an unfiltered search, which is safe on any plan, may use one."""
    db.reset_engines()
    org = make_org("plans")
    add_doc(org, "boats", "Sailing boats use a keel and a rudder to steer.", kind="note")
    for mode in MODES:
        run(org, "sailing boats keel rudder", mode)
    plans = _plans_by_statement()
    generic, custom = plans["vector"]
    assert generic > 0 and custom == 0, plans
    displayed = next(v for k, v in plans.items() if k.startswith(search._DISPLAYED[:40]))
    assert displayed[0] == 0 and displayed[1] > 0, plans  # hybrid's display of its top k
    # (The transaction-local settings, which read no table, run on whatever plan is set.)
    others = {k: v for k, v in plans.items() if k != "vector" and "set_config" not in k}
    assert [k for k, (generic, _) in others.items() if generic] == [], plans
    db.reset_engines()
    run(org, "sailing boats keel rudder", "hybrid", kind="note")  # filtered: custom plans
    generic, custom = _plans_by_statement()["vector"]
    assert generic == 0 and custom > 0


def test_large_tables_get_a_deeper_hnsw_walk(
    hashing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ef_search follows the searched table's row estimate (pg_class, after ANALYZE): the
    default below LARGE_TABLE_ROWS, LARGE_TABLE_EF_SEARCH from it; the estimate is read
    once per TABLE_ROWS_TTL_S."""
    org = make_org("deep-walk")
    for i in range(3):
        add_doc(org, f"doc {i}", f"Paragraph {i} about lighthouses and their keepers. " * 40)
    with db.owner_session() as session:
        session.execute(sa.text("ANALYZE chunk"))
        rows = session.scalar(sa.text("SELECT reltuples FROM pg_class WHERE relname = 'chunk'"))
    assert rows is not None and rows > 0
    search._table_rows.clear()
    with tenancy.tenant_session(org) as session:
        where = search._conditions(session, "hashing-v1", None)
        assert search._estimated_rows(session, "chunk") == rows
        assert search.base_ef_search(session, where) == search.HNSW_EF_SEARCH
        monkeypatch.setattr(search, "LARGE_TABLE_ROWS", int(rows))
        assert search.base_ef_search(session, where) == search.LARGE_TABLE_EF_SEARCH
        monkeypatch.setattr(search, "LARGE_TABLE_ROWS", int(rows) + 1)
        search._table_rows["chunk"] = (rows + 1, 0.0)  # expired: read again
        assert search.base_ef_search(session, where) == search.HNSW_EF_SEARCH
    search._table_rows.clear()


def _statements() -> list[str]:
    return [row.statement for row in _prepared()]


def _kind(statement: str) -> str:
    """Which vector statement this is: the gated one with the count (`counted`), or one
    branch alone for an org of a remembered size (`large`, `small`)."""
    if statement.startswith("WITH n AS"):
        return "counted"
    if statement.startswith("SELECT nearest") and " AS candidates" in statement:
        return "small" if "'exact' AS plan" in statement else "large"
    return "other"


def _kinds() -> set[str]:
    return {_kind(s) for s in _statements()} - {"other"}


def numbered(statement: str) -> str:
    """`statement` with `$1`, `$2`... for its `:name` parameters (`EXPLAIN (GENERIC_PLAN)`)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"(?<![:\w]):([a-z_]+)", number, statement)


def test_an_org_known_to_be_large_is_searched_without_the_count(
    hashing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a search found more than EXACT_MAX_ROWS candidates, the process goes straight to
    HNSW for that org (no count) for ORG_SIZE_TTL_S; the results are the same, and an org
    that shrank meanwhile still gets all it has (the exact fallback)."""
    monkeypatch.setattr(search, "EXACT_MAX_ROWS", 3)
    search._org_sizes.clear()
    db.reset_engines()
    org = make_org("large-org")
    for i in range(4):
        add_doc(org, f"keepers {i}", f"Lighthouse keeper number {i} trims the lamp wick.")
    first = run(org, "lighthouse keeper", "vector", top_k=3)
    assert first.plan["vector"].startswith("hnsw") and first.plan["candidates"] == 4
    assert _kinds() == {"counted"}
    second = run(org, "lighthouse keeper", "vector", top_k=3)
    assert [h.chunk_id for h in second.hits] == [h.chunk_id for h in first.hits]
    assert _kinds() == {"counted", "large"}
    # Another org, and a filtered search of this one, are not remembered.
    assert len(search._org_sizes) == 1
    run(org, "lighthouse keeper", "vector", top_k=3, kind="text")
    assert len(search._org_sizes) == 1
    with db.owner_session() as session:
        session.execute(  # their chunks go with them (ON DELETE CASCADE)
            sa.text("DELETE FROM document WHERE org_id = :org AND title <> 'keepers 0'"),
            {"org": org},
        )
    shrunk = run(org, "lighthouse keeper", "vector", top_k=3)
    assert shrunk.plan["vector"] == "exact-fallback" and len(shrunk.hits) == 1
    search._org_sizes.clear()


def test_an_org_known_to_be_small_is_searched_exactly_without_the_count(
    hashing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An org counted at most EXACT_MAX_ROWS goes straight to the exact scan for
    ORG_SIZE_TTL_S, in every mode that reads vectors: the same results as the counted
    statement. One that grew past the threshold meanwhile is still searched exactly (every
    candidate, the new ones included) until the memory expires; then it is counted again."""
    monkeypatch.setattr(search, "EXACT_MAX_ROWS", 3)
    search._org_sizes.clear()
    db.reset_engines()
    org = make_org("small-org")
    for i in range(2):
        add_doc(org, f"gardens {i}", f"Gardener number {i} prunes the roses by the wall.")
    first = {}
    for mode in ("vector", "hybrid"):
        search._org_sizes.clear()
        first[mode] = run(org, "gardener roses", mode, top_k=3)
    assert _kinds() == {"counted"}
    assert first["vector"].plan == {"vector": "exact", "candidates": 2}
    second = {mode: run(org, "gardener roses", mode, top_k=3) for mode in ("vector", "hybrid")}
    assert _kinds() == {"counted", "small"}
    for mode in ("vector", "hybrid"):
        assert second[mode].hits == first[mode].hits
        assert second[mode].plan == first[mode].plan
    add_doc(org, "gardens 2", "Gardener number 2 waters the roses at dawn.")
    add_doc(org, "gardens 3", "Gardener number 3 cuts the roses for the table.")
    grown = run(org, "gardener roses", "vector", top_k=10)
    assert grown.plan["vector"] == "exact" and len(grown.hits) == 4  # the new ones too
    (key,) = search._org_sizes
    search._org_sizes[key] = (2, 0.0)  # expired
    recounted = run(org, "gardener roses", "vector", top_k=10)
    # Counted: above the threshold, so HNSW, which comes back short of 10 (exact fallback).
    assert recounted.plan == {"vector": "exact-fallback", "candidates": 4}
    assert [h.chunk_id for h in recounted.hits] == [h.chunk_id for h in grown.hits]
    search._org_sizes.clear()


def test_exact_statements_never_walk_the_hnsw_index_on_their_generic_plan(hashing: None) -> None:
    """The exact scan's rows are ordered by their distance (hybrid's window ranks them), and
    under `enable_sort = off` a generic plan may serve that order from an index: the shared
    HNSW graph, walked over the whole table (150 ms at a 10-chunk org of 111 110 rows, found
    by the benchmark). Every exact statement keeps its distances `+ 0`: no index can."""
    org = make_org("exact-plans")
    add_doc(org, "ferns", "Ferns grow in the shade of old oaks.")
    with tenancy.tenant_session(org) as session:
        where = search._conditions(session, "hashing-v1", None)
        search._set_local(session, search._GENERIC)
        for light in (False, True):
            for build in (search._small_sql, search._fallback_sql):
                shown = session.execute(
                    sa.text("EXPLAIN (GENERIC_PLAN) " + numbered(build(where, light)))
                ).all()
                plan = "\n".join(row[0] for row in shown)
                assert "hnsw" not in plan, (build.__name__, light, plan)


def test_the_miss_check_compares_with_a_sample_of_the_org_only(
    two_orgs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample comes from the caller's org (RLS and the org condition), is read once and
    reused, separately per set of principals; a result that lacks a closer sampled chunk
    is a miss, the exact top-k is not."""
    from ragline.retrieval import hnswcheck

    monkeypatch.setattr(hnswcheck, "SAMPLE_PERCENT", 100.0)  # every page: the whole org
    hnswcheck.clear()
    org_a, _ = two_orgs["a"]
    with tenancy.tenant_session(org_a) as session:
        vector = search.spaces.for_search(session)[0].embed(["widget repairs"], kind="query")[0]
        where = search._conditions(session, "hashing-v1", None)
        params = {**where.params, "vector": search.spaces.vector_literal(vector), "limit": 3}
        exact = search._vector_rows(session, search._exact_sql(where, where.sql), params)
        assert len(exact) == 3
        assert not search._missed(session, where, vector, exact)
        assert search._missed(session, where, vector, exact[1:])  # the nearest is left out
        (sample,) = hnswcheck._samples.values()
    with db.owner_session() as session:
        own = set(session.scalars(sa.select(Chunk.id).where(Chunk.org_id == org_a)))
    assert set(sample.ids) == own  # all of org A's chunks, none of org B's
    with tenancy.tenant_session(org_a) as session:
        search._missed(session, search._conditions(session, "hashing-v1", None), vector, exact)
    assert len(hnswcheck._samples) == 1  # reused
    with tenancy.tenant_session(org_a, principals={"group:x"}) as session:
        search._missed(session, search._conditions(session, "hashing-v1", None), vector, exact)
    assert len(hnswcheck._samples) == 2  # an end user's sample is their own
    hnswcheck.clear()


def test_hybrid_hits_show_their_own_chunk(two_orgs: dict[str, Any]) -> None:
    """Hybrid reads what a hit shows for the vector top k in its first statement and any
    other fused hit in a second one (`_displayed`): either way each hit carries its own
    chunk's text, title and offsets, and the ranking is the same as from full rows."""
    org_a, _ = two_orgs["a"]
    with db.owner_session() as session:
        rows = session.execute(
            sa.text(
                "SELECT c.id, d.title, c.text, c.start_offset, c.end_offset FROM chunk c "
                "JOIN document d ON d.id = c.document_id WHERE c.org_id = :org"
            ),
            {"org": org_a},
        ).all()
    truth = {r.id: (r.title, r.text, r.start_offset, r.end_offset) for r in rows}
    for top_k in (1, 2, 3):
        for query in ("widget repairs", "blue parts plant", "boxes"):
            result = run(org_a, query, "hybrid", top_k=top_k)
            assert result.hits
            for hit in result.hits:
                assert (hit.title, hit.text, hit.start, hit.end) == truth[hit.chunk_id]
    with tenancy.tenant_session(org_a) as session:
        stubs = [search.Hit(i, uuid.uuid4(), "", None, "", score=1.0) for i in truth]
        shown = search._displayed(session, stubs, {})  # all through the second statement
    assert [(h.title, h.text, h.start, h.end) for h in shown] == [truth[i] for i in truth]


HOSTILE_QUERIES = [
    '"unclosed quote widget',
    "-",
    "!!! ??? ((( )))",
    "widget & boxes | (repairs",
    "the of and a",  # stopwords only: an empty tsquery
    "widgets:* <-> boxes",
    "x" * 2000,
    "ünïcödé widgets 😀 漢字",
    "' OR 1=1 --",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hybrid_takes_any_query_text(two_orgs: dict[str, Any], query: str) -> None:
    """The query text reaches websearch_to_tsquery and word_similarity inside the hybrid
    statement as a bind parameter: nothing a user types breaks it or leaves the org."""
    org_a, ids_a = two_orgs["a"]
    for top_k in (1, 10):
        result = run(org_a, query, "hybrid", top_k=top_k)
        assert result.complete
        assert 1 <= len(result.hits) <= top_k
        assert doc_ids(result) <= set(ids_a.values())
        assert all(h.text and h.title for h in result.hits)
