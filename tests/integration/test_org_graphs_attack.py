"""Attacks on graphs of their own for large orgs (`retrieval.orggraphs`) and on the hybrid
trigram rescue: tenancy with several graphs, end users and filters on an org with a graph,
a stale process cache, an org that shrank or left, hostile query text, and the operator
side (plan, apply, CLI) fed empty databases and bad arguments."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ragline.db import engine as db
from ragline.db import tenancy
from ragline.dev.cli import app
from ragline.retrieval import orggraphs, search

from .test_org_graphs import graphs, name_of, owner
from .test_search import add_doc, make_org

__all__ = ["graphs"]  # the fixture, shared with test_org_graphs

TOPICS = [
    "harbour granite orchard",
    "lantern meadow copper",
    "violet thunder harbour",
    "granite lantern violet",
    "orchard copper thunder",
    "meadow harbour lantern",
    "copper violet granite",
    "thunder orchard meadow",
]
QUERIES = ["harbour granite", "violet thunder meadow", "copper", "lantern orchard"]


def build(min_chunks: int) -> orggraphs.Plan:
    with owner() as conn:
        todo = orggraphs.plan(conn, min_chunks)
    return orggraphs.apply(db.get_engine(app_role=False), todo)


def existing() -> dict[str, bool]:
    with owner() as conn:
        return orggraphs._read_existing(conn)


def org_with_docs(slug: str, count: int = 8, **fields: Any) -> tuple[uuid.UUID, list[uuid.UUID]]:
    org = make_org(slug)
    docs = [
        add_doc(org, f"{slug} {i}", f"Note {i} about {TOPICS[i % len(TOPICS)]}.", **fields)
        for i in range(count)
    ]
    return org, docs


def run(
    org: uuid.UUID,
    query: str,
    mode: search.Mode = "vector",
    top_k: int = 5,
    principals: set[str] | None = None,
    **filters: Any,
) -> search.SearchResult:
    req = search.SearchRequest(
        query=query, top_k=top_k, mode=mode, filters=search.Filters(**filters) if filters else None
    )
    with tenancy.tenant_session(org, principals=principals) as session:
        return search.search(session, req)


def shape(result: search.SearchResult) -> tuple[list[float], list[tuple[float, str]]]:
    """What must not change when a graph comes or goes: the scores, in order, and the
    chunks above the last score (which of several chunks at the cut-off score make the top
    k is arbitrary; equal scores may come in another order: sorted within a score)."""
    scores = [round(h.score, 5) for h in result.hits]
    cut = min(scores, default=0.0)
    above = sorted((-s, h.text) for s, h in zip(scores, result.hits, strict=True) if s > cut)
    return scores, above


def chunk_orgs() -> dict[uuid.UUID, uuid.UUID]:
    with owner() as conn:
        return {r.id: r.org_id for r in conn.execute(sa.text("SELECT id, org_id FROM chunk"))}


# --------------------------------------------------------------------------- tenancy


def test_interleaved_searches_of_orgs_with_and_without_graphs_stay_in_their_org(
    graphs: None,
) -> None:
    """Three orgs with the same texts (the same vectors: any leak would show): A and B with
    graphs, C just below the threshold without one. Interleaved searches in every mode give
    each org its own chunks only, the same results as before any graph existed."""
    orgs = {
        slug: org_with_docs(slug, n)[0] for slug, n in (("org-a", 8), ("org-b", 8), ("org-c", 5))
    }
    modes: tuple[search.Mode, ...] = ("vector", "hybrid", "text")
    before = {
        (s, q, m): shape(run(o, q, m)) for s, o in orgs.items() for q in QUERIES for m in modes
    }
    done = build(min_chunks=6)
    assert sorted(g.name for g, _ in done.build) == sorted(
        [name_of(orgs["org-a"]), name_of(orgs["org-b"])]
    )
    owners = chunk_orgs()
    for _round in range(2):
        for query in QUERIES:
            for slug in ("org-a", "org-c", "org-b", "org-a", "org-b", "org-c"):
                for mode in modes:
                    result = run(orgs[slug], query, mode)
                    assert {owners[h.chunk_id] for h in result.hits} == {orgs[slug]}, (slug, mode)
                    assert shape(result) == before[(slug, query, mode)], (slug, query, mode)
                    if mode == "vector":
                        expected = "exact" if slug == "org-c" else "hnsw"
                        assert result.plan["vector"] == expected
    # Org C's graph-less search never reads A's or B's graph: its plan is the counted one.
    with tenancy.tenant_session(orgs["org-c"]) as session:
        where = search._conditions(session, "hashing-v1", None)
        assert not search._owns_graph(session, where)


def test_owned_answers_for_exactly_the_graph_asked(graphs: None) -> None:
    """Graph names are the org's hex: a lookup for a random org never matches an existing
    graph, and `owned` answers for exactly the graph asked."""
    org, _ = org_with_docs("solo", 6)
    build(min_chunks=6)
    with owner() as conn:
        assert orggraphs.owned(conn, orggraphs.Graph("chunk", "org_id", org))
        assert not orggraphs.owned(conn, orggraphs.Graph("chunk", "org_id", uuid.uuid4()))
        # The same key on another table is another graph (an org id is not a space id).
        assert not orggraphs.owned(conn, orggraphs.Graph("chunk_vector_256", "space_id", org))


def test_end_users_and_filters_on_an_org_with_a_graph_see_only_what_they_may(
    graphs: None,
) -> None:
    """Principals and filters never take the org's graph (their candidates are not the
    whole org's): the same results with and without it, and never a restricted document."""
    org = make_org("acl-graph")
    public = [add_doc(org, f"pub {i}", f"Note {i} about {TOPICS[i]}.") for i in range(4)]
    secret = [
        add_doc(org, f"sec {i}", f"Secret {i} on {TOPICS[i]}.", acl=["group:x"], kind="spec")
        for i in range(4)
    ]
    cases: list[tuple[set[str] | None, dict[str, Any], set[uuid.UUID]]] = [
        (set(), {}, set(public)),
        ({"group:y"}, {}, set(public)),
        ({"group:x"}, {}, set(public) | set(secret)),
        (None, {"kind": "spec"}, set(secret)),
        (set(), {"kind": "spec"}, set()),
        (set(), {"document_ids": [str(d) for d in secret]}, set()),
        (None, {}, set(public) | set(secret)),
    ]
    modes: tuple[search.Mode, ...] = ("vector", "hybrid", "text")

    def observe() -> dict[tuple[int, str, str], tuple[list[tuple[float, str]], set[uuid.UUID]]]:
        out = {}
        for i, (principals, filters, allowed) in enumerate(cases):
            for query in QUERIES:
                for mode in modes:
                    r = run(org, query, mode, top_k=10, principals=principals, **filters)
                    docs = {h.document_id for h in r.hits}
                    assert docs <= allowed, (principals, filters, mode, query)
                    if mode != "text":
                        assert docs == allowed, (principals, filters, mode, query)
                    out[(i, query, mode)] = (shape(r), docs)
        return out

    before = observe()
    build(min_chunks=8)
    assert existing() == {name_of(org): True}
    assert observe() == before
    # Only the whole-org search (no principals, no filters) walks the graph.
    assert run(org, "copper", top_k=3).plan["vector"] == "hnsw"
    assert run(org, "copper", top_k=3, principals=set()).plan["vector"] == "exact"
    assert run(org, "copper", top_k=3, kind="spec").plan["vector"] == "exact"


def test_documents_not_ready_and_other_models_stay_out_of_a_graph_search(graphs: None) -> None:
    """The graph holds every vector of the org; the search's own conditions (ready
    documents, this embedding model) still decide what comes back."""
    org, docs = org_with_docs("mixed", 8)
    with owner() as conn:
        conn.execute(
            sa.text("UPDATE document SET status = 'failed' WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": [str(d) for d in docs[:2]]},
        )
        conn.execute(
            sa.text(
                "UPDATE chunk SET embedding_model = 'other-model' "
                "WHERE document_id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": [str(d) for d in docs[2:4]]},
        )
    modes: tuple[search.Mode, ...] = ("vector", "hybrid")
    before = {(q, m): shape(run(org, q, m, top_k=8)) for q in QUERIES for m in modes}
    build(min_chunks=8)
    assert existing() == {name_of(org): True}
    for query in QUERIES:
        for mode in modes:
            result = run(org, query, mode, top_k=8)
            assert {h.document_id for h in result.hits} <= set(docs[4:]), (query, mode)
            assert len(result.hits) == 4 and result.complete
            assert shape(result) == before[(query, mode)]


# --------------------------------------------------------------------------- stale state


def test_a_graph_dropped_behind_the_cache_still_gives_correct_results(graphs: None) -> None:
    org, _ = org_with_docs("stale", 8)
    modes: tuple[search.Mode, ...] = ("vector", "hybrid")
    before = {(q, m): shape(run(org, q, m)) for q in QUERIES for m in modes}
    build(min_chunks=8)
    assert run(org, "copper").plan["vector"] == "hnsw"  # the cache now says: a graph
    with owner() as conn:
        conn.execute(sa.text(f"DROP INDEX {name_of(org)}"))  # no forget(): the cache is stale
    with owner() as conn:
        assert orggraphs.owned(conn, orggraphs.Graph("chunk", "org_id", org))  # still cached
    for query in QUERIES:
        for mode in modes:
            result = run(org, query, mode)
            assert shape(result) == before[(query, mode)], (query, mode)
            assert result.complete and len(result.hits) == 5
    # The other way round: a graph built behind the cache (cache says none).
    orggraphs.forget()
    assert run(org, "copper").plan["vector"] == "exact"
    with owner() as conn:
        conn.execute(sa.text(orggraphs.Graph("chunk", "org_id", org).create_sql()))
    for query in QUERIES:
        for mode in modes:
            assert shape(run(org, query, mode)) == before[(query, mode)]


def test_an_org_that_shrank_below_top_k_or_to_nothing(graphs: None) -> None:
    org, docs = org_with_docs("shrunk", 8)
    build(min_chunks=8)
    assert run(org, "copper").plan["vector"] == "hnsw"
    with owner() as conn:
        conn.execute(
            sa.text("DELETE FROM document WHERE id <> ALL(CAST(:keep AS uuid[]))"),
            {"keep": [str(d) for d in docs[:2]]},
        )
    for mode in ("vector", "hybrid", "text"):
        result = run(org, "harbour granite lantern", mode, top_k=5)  # type: ignore[arg-type]
        assert {h.document_id for h in result.hits} == set(docs[:2]), mode
        assert result.complete
    with owner() as conn:
        conn.execute(sa.text("DELETE FROM document WHERE org_id = :o"), {"o": org})
    for mode in ("vector", "hybrid", "text"):
        result = run(org, "harbour", mode, top_k=5)  # type: ignore[arg-type]
        assert result.hits == [] and result.complete
    # The graph of the emptied org: planned for dropping.
    with owner() as conn:
        assert orggraphs.plan(conn, 8).drop == [name_of(org)]


def test_an_org_deleted_with_its_graph_still_cached(graphs: None) -> None:
    gone, _ = org_with_docs("gone", 8)
    other, other_docs = org_with_docs("other", 8)
    build(min_chunks=8)
    assert run(gone, "copper").plan["vector"] == "hnsw"
    with owner() as conn:
        conn.execute(sa.text("DELETE FROM org WHERE id = :id"), {"id": gone})
    for mode in ("vector", "hybrid", "text"):
        assert run(gone, "copper", mode).hits == []  # type: ignore[arg-type]
        hits = run(other, "copper", mode).hits  # type: ignore[arg-type]
        assert hits and {h.document_id for h in hits} <= set(other_docs)
    with owner() as conn:
        todo = orggraphs.plan(conn, 8)
    assert todo.drop == [name_of(gone)] and todo.keep == [name_of(other)]
    orggraphs.apply(db.get_engine(app_role=False), todo)
    assert existing() == {name_of(other): True}


# --------------------------------------------------------------------------- hostile text

HOSTILE = [
    '"',
    '"harbour granite',
    "-harbour",
    "-harbour -granite -copper",
    "OR",
    "harbour OR granite",
    "OR OR OR",
    "!!! ??? ...",
    "... --- ,,,",
    "ünïcödé härbour 漢字",
    "😀",
    "harbour😀granite",
    "x" * 2000,
    "harbourgranite" * 140,
    "' OR 1=1 --",
    "%_\\",
    ":query :want",
    "harbour & granite | !copper",
    "granite:* <-> copper",
    "\u3000harbour\u3000granite\u3000copper\u3000lantern",
    "the of and",
    "harbor",
    "lantren meadw",
    "lantren meadw coper violte",
]


def test_hostile_hybrid_queries_on_an_org_with_a_graph(graphs: None) -> None:
    """Whatever the text (quotes, -word, OR, unicode, punctuation only, 2000 characters of
    one word), a hybrid search of an org with a graph returns the same as without one, from
    its own org only, complete."""
    org, docs = org_with_docs("hostile", 8)
    other, _ = org_with_docs("neighbour", 8)
    before = {(q, k): shape(run(org, q, "hybrid", top_k=k)) for q in HOSTILE for k in (1, 5)}
    build(min_chunks=8)
    assert existing() == {name_of(org): True, name_of(other): True}
    for query in HOSTILE:
        for top_k in (1, 5):
            result = run(org, query, "hybrid", top_k=top_k)
            assert result.complete, query
            assert len(result.hits) == top_k, query
            assert {h.document_id for h in result.hits} <= set(docs), query
            assert all(h.text and h.title for h in result.hits), query
            assert shape(result) == before[(query, top_k)], query
            assert result.plan["vector"] in ("hnsw", "exact-fallback"), query


def test_the_rescue_on_an_org_with_a_graph(graphs: None) -> None:
    """A misspelled short query finds its chunk by trigrams through the graph's statement;
    four words never take the rescue; a full-text match anywhere among the candidates turns
    it off."""
    org, _ = org_with_docs("rescue", 7)
    target = add_doc(org, "errors", "An exception is raised when an error is detected at runtime.")
    build(min_chunks=8)
    found = run(org, "exeption", "hybrid", top_k=8)
    assert found.plan["vector"] in ("hnsw", "exact-fallback")
    ranked = [(h.document_id, h.text_rank) for h in found.hits if h.text_rank]
    assert ranked == [(target, 1)]
    assert found.hits[0].document_id == target
    # Four words: no trigram list at all.
    long = run(org, "exeption exeption exeption exeption", "hybrid", top_k=8)
    assert all(h.text_rank is None for h in long.hits)
    # "harbour" matches in full: the misspelling next to it is not rescued by trigrams.
    assert all(
        h.document_id != target or h.text_rank is None
        for h in run(org, "harbour", "hybrid", top_k=8).hits
    )


# --------------------------------------------------------------------------- operator side


def test_plan_and_apply_on_an_empty_database(graphs: None) -> None:
    with owner() as conn:
        for threshold in (orggraphs.ORG_GRAPH_MIN_CHUNKS, 2, 1, 0):
            todo = orggraphs.plan(conn, threshold)
            assert todo == orggraphs.Plan(), threshold
    lines: list[str] = []
    orggraphs.apply(db.get_engine(app_role=False), orggraphs.Plan(), progress=lines.append)
    assert lines == [] and existing() == {}
    dry = CliRunner().invoke(app, ["org-graphs", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: 0 to build, 0 to drop" in dry.output
    done = CliRunner().invoke(app, ["org-graphs"])
    assert done.exit_code == 0, done.output
    assert "0 built, 0 dropped, 0 kept" in done.output


def test_apply_the_same_plan_twice(graphs: None) -> None:
    org, _ = org_with_docs("twice", 6)
    with owner() as conn:
        todo = orggraphs.plan(conn, 6)
    engine = db.get_engine(app_role=False)
    orggraphs.apply(engine, todo)
    orggraphs.apply(engine, todo)  # stale plan: IF NOT EXISTS / IF EXISTS
    assert existing() == {name_of(org): True}


@pytest.mark.parametrize(
    "value",
    ["1TB", "abc", "1GB; DROP TABLE chunk", "-1MB", "1.5GB", "1 GB'", "1gb", "GB", "1GB\n"],
)
def test_apply_refuses_a_malformed_maintenance_work_mem(graphs: None, value: str) -> None:
    org_with_docs("mwm", 6)
    with owner() as conn:
        todo = orggraphs.plan(conn, 6)
    with pytest.raises(ValueError, match="maintenance_work_mem"):
        orggraphs.apply(db.get_engine(app_role=False), todo, maintenance_work_mem=value)
    assert existing() == {}  # nothing done
    with owner() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM chunk")) == 6  # the table is there


@pytest.mark.parametrize("value", ["0kB", "1kB", "99999999GB"])
def test_apply_with_a_maintenance_work_mem_the_server_refuses(graphs: None, value: str) -> None:
    """Well-formed but out of the server's range: refused before anything is dropped or
    built, as a ValueError like the malformed ones (the CLI turns those into a clean
    error)."""
    org_with_docs("mwm-range", 6)
    with owner() as conn:
        todo = orggraphs.plan(conn, 6)
    with pytest.raises(ValueError, match="maintenance_work_mem"):
        orggraphs.apply(db.get_engine(app_role=False), todo, maintenance_work_mem=value)
    assert existing() == {}


def test_cli_with_a_maintenance_work_mem_the_server_refuses(graphs: None) -> None:
    org_with_docs("cli-mwm", 4)
    result = CliRunner().invoke(
        app, ["org-graphs", "--min-chunks", "4", "--maintenance-work-mem", "1kB"]
    )
    assert result.exit_code != 0
    # A clean refusal (typer.Exit), not an escaped database exception with its traceback.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "maintenance_work_mem" in result.output
    assert existing() == {}


def test_apply_leaves_no_maintenance_work_mem_on_pooled_connections(graphs: None) -> None:
    """The build's memory setting is for the build: a later use of the owner engine's pool
    (a migration, another operator job in the same process) runs with the server's value."""
    org_with_docs("mwm-leak", 6)
    engine = db.get_engine(app_role=False)
    with engine.connect() as conn:
        default = conn.scalar(sa.text("SHOW maintenance_work_mem"))
    assert default != "77MB"
    with owner() as conn:
        todo = orggraphs.plan(conn, 6)
    orggraphs.apply(engine, todo, maintenance_work_mem="77MB")
    seen = set()
    conns = [engine.connect() for _ in range(engine.pool.size())]  # type: ignore[attr-defined]
    try:
        for conn in conns:
            seen.add(conn.scalar(sa.text("SHOW maintenance_work_mem")))
    finally:
        for conn in conns:
            conn.close()
        engine.dispose()  # no pooled connection keeps the setting for later tests
    assert seen == {default}


@pytest.mark.parametrize("value", ["0", "1", "-5", "abc"])
def test_cli_refuses_a_min_chunks_below_two(graphs: None, value: str) -> None:
    org_with_docs("cli-min", 3)
    result = CliRunner().invoke(app, ["org-graphs", "--min-chunks", value])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "min-chunks" in result.output
    assert existing() == {}


def test_plan_with_a_tiny_threshold_through_the_api(graphs: None) -> None:
    """The API takes any threshold (the CLI refuses below 2): 0 or 1 plans a graph for
    every org with a vector, none for an org without."""
    with_vectors, _ = org_with_docs("tiny", 1)
    make_org("empty")
    with owner() as conn:
        for threshold in (0, 1):
            todo = orggraphs.plan(conn, threshold)
            assert [(g.name, n) for g, n in todo.build] == [(name_of(with_vectors), 1)]
