"""Graphs of their own for large orgs (`retrieval.orggraphs`): what the operator job builds,
keeps and drops, how it recovers from an interrupted build, and that a search uses the
org's graph, and only its own org's (recall on a large org: test_search_recall.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ragline.db import engine as db
from ragline.db import tenancy
from ragline.dev.cli import app
from ragline.retrieval import orggraphs, search

from .test_search import _prepared, add_doc, make_org, numbered

WORDS = ["harbour", "granite", "orchard", "lantern", "meadow", "copper", "violet", "thunder"]


@pytest.fixture()
def graphs(configure: Callable[..., None]) -> Iterator[None]:
    """Inline pipeline, hashing embedder, fresh process caches; every own graph dropped
    afterwards (the per-test truncation empties the tables, not their indexes)."""
    configure(queue_backend="inline", embedding_provider="hashing", embed_batch_chunks="8")
    orggraphs.forget()
    search._org_sizes.clear()
    yield
    with owner() as conn:
        for name in orggraphs._read_existing(conn):
            conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
    orggraphs.forget()
    search._org_sizes.clear()


def owner() -> sa.Connection:
    return db.get_engine(app_role=False).connect().execution_options(isolation_level="AUTOCOMMIT")


def org_with_docs(slug: str, count: int) -> uuid.UUID:
    org = make_org(slug)
    for i in range(count):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(5))
        add_doc(org, f"{slug} {i}", f"Note {i} about {words}.")
    return org


def name_of(org: uuid.UUID) -> str:
    return orggraphs.Graph("chunk", "org_id", org).name


def vector_search(org: uuid.UUID, query: str, top_k: int = 5) -> search.SearchResult:
    req = search.SearchRequest(query=query, top_k=top_k, mode="vector")
    with tenancy.tenant_session(org) as session:
        return search.search(session, req)


def plan(min_chunks: int) -> orggraphs.Plan:
    with owner() as conn:
        return orggraphs.plan(conn, min_chunks)


def test_large_orgs_get_a_graph_that_their_searches_use(graphs: None) -> None:
    big, small = org_with_docs("big", 8), org_with_docs("small", 3)
    before = {q: vector_search(big, q) for q in ("harbour granite", "violet thunder meadow")}
    assert all(r.plan["vector"] == "exact" for r in before.values())

    todo = plan(min_chunks=6)
    assert [(g.name, n) for g, n in todo.build] == [(name_of(big), 8)]
    assert todo.drop == [] and todo.keep == []
    lines: list[str] = []
    orggraphs.apply(db.get_engine(app_role=False), todo, progress=lines.append)
    assert lines[0].startswith(f"building {name_of(big)}") and lines[1].startswith("built")

    for query, exact in before.items():
        walked = vector_search(big, query)
        assert walked.plan["vector"] == "hnsw"  # its own graph: no count, the HNSW statement
        # The exact top k (the same distances; equal ones may come in another order).
        assert [round(h.score, 5) for h in walked.hits] == [round(h.score, 5) for h in exact.hits]
        assert walked.complete
    assert vector_search(small, "harbour granite").plan["vector"] == "exact"
    # Hybrid asks for 50 candidates, more than the org has: the walk comes back short and
    # the exact scan completes it, on the same custom plan settings.
    req = search.SearchRequest(query="harbour granite", top_k=5, mode="hybrid")
    with tenancy.tenant_session(big) as session:
        hybrid = search.search(session, req)
    assert hybrid.plan["vector"] == "exact-fallback" and len(hybrid.hits) == 5

    # The statement names the org by a literal (`_pinned`): even its generic plan, the one it
    # runs on, walks the org's own index. With the org as a parameter only, it could not.
    with tenancy.tenant_session(big) as session:
        where = search._conditions(session, "hashing-v1", None)
        graph = search._own_graph(session, where)
        assert graph is not None and graph.name == name_of(big)
        session.execute(sa.text("SET LOCAL enable_sort = off"))
        walks = {
            pinned: "\n".join(
                row[0]
                for row in session.execute(
                    sa.text("EXPLAIN (GENERIC_PLAN) " + numbered(search._large_sql(statement)))
                )
            )
            for pinned, statement in ((True, search._pinned(where, graph)), (False, where))
        }
    assert name_of(big) in walks[True]
    assert name_of(big) not in walks[False] and "ix_chunk_embedding_hnsw" in walks[False]

    # Planned again: kept while the org stays above half the threshold, dropped below it.
    assert plan(min_chunks=6).keep == [name_of(big)]
    assert plan(min_chunks=16).keep == [name_of(big)]
    assert plan(min_chunks=18).drop == [name_of(big)]


def test_beyond_the_pinned_limit_an_org_walks_its_graph_on_custom_plans(
    graphs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more graphs than PINNED_GRAPHS_MAX, no statement names an org by a literal (the
    prepared statements would churn): the org stays a parameter, planned per search, and
    the walk is still its own graph's, with the same results."""
    big = org_with_docs("unpinned", 8)
    exact = vector_search(big, "harbour granite")
    orggraphs.apply(db.get_engine(app_role=False), plan(min_chunks=6))
    db.reset_engines()
    monkeypatch.setattr(search, "PINNED_GRAPHS_MAX", 0)
    walked = vector_search(big, "harbour granite")
    assert walked.plan["vector"] == "hnsw"
    assert [round(h.score, 5) for h in walked.hits] == [round(h.score, 5) for h in exact.hits]
    prepared = _prepared()
    assert not any(str(big) in row.statement for row in prepared)
    vector = [row for row in prepared if "'hnsw' AS plan" in row.statement]
    assert vector and all(row.generic_plans == 0 and row.custom_plans > 0 for row in vector)
    monkeypatch.setattr(search, "PINNED_GRAPHS_MAX", 1)
    assert vector_search(big, "harbour granite").plan["vector"] == "hnsw"
    assert any(str(big) in row.statement for row in _prepared())


def test_an_interrupted_build_is_never_used_and_is_built_again(graphs: None) -> None:
    big = org_with_docs("interrupted", 6)
    graph = orggraphs.Graph("chunk", "org_id", big)
    # A writer's open transaction holds the build after its catalog entry is committed (a
    # concurrent build waits for writers): cancelled there, it leaves an invalid index.
    with db.get_engine(app_role=False).connect() as writer, owner() as conn:
        writer.execute(sa.text("LOCK TABLE chunk IN ROW EXCLUSIVE MODE"))
        conn.execute(sa.text("SET statement_timeout = '300ms'"))
        with pytest.raises(sa.exc.DBAPIError):
            conn.execute(sa.text(graph.create_sql()))
        conn.execute(sa.text("SET statement_timeout = 0"))
        writer.rollback()
        assert orggraphs._read_existing(conn) == {graph.name: False}
    orggraphs.forget()
    assert vector_search(big, "harbour granite").plan["vector"] == "exact"  # not the invalid one

    todo = plan(min_chunks=4)
    assert todo.drop == [graph.name] and [g.name for g, _ in todo.build] == [graph.name]
    orggraphs.apply(db.get_engine(app_role=False), todo)
    with owner() as conn:
        assert orggraphs._read_existing(conn) == {graph.name: True}
    assert vector_search(big, "harbour granite").plan["vector"] == "hnsw"


def test_graphs_of_orgs_that_are_gone_are_dropped(graphs: None) -> None:
    gone = org_with_docs("gone", 4)
    orggraphs.apply(db.get_engine(app_role=False), plan(min_chunks=4))
    with owner() as conn:
        conn.execute(sa.text("DELETE FROM org WHERE id = :id"), {"id": gone})
    assert plan(min_chunks=4).drop == [name_of(gone)]


def test_cli_lists_then_builds(graphs: None) -> None:
    big = org_with_docs("cli", 4)
    dry = CliRunner().invoke(app, ["org-graphs", "--dry-run", "--min-chunks", "4"])
    assert dry.exit_code == 0, dry.output
    assert f"build  {name_of(big)} on chunk (4 vectors)" in dry.output
    assert "dry run: 1 to build, 0 to drop" in dry.output
    with owner() as conn:
        assert orggraphs._read_existing(conn) == {}
    bad = CliRunner().invoke(
        app, ["org-graphs", "--min-chunks", "4", "--maintenance-work-mem", "1GB; DROP TABLE x"]
    )
    assert bad.exit_code == 1 and "maintenance_work_mem" in bad.output
    done = CliRunner().invoke(app, ["org-graphs", "--min-chunks", "4"])
    assert done.exit_code == 0, done.output
    assert "1 built, 0 dropped, 0 kept" in done.output
    again = CliRunner().invoke(app, ["org-graphs", "--min-chunks", "4"])
    assert f"keep   {name_of(big)}" in again.output and "0 built" in again.output


def test_an_embedding_space_gets_a_graph_on_its_vector_table(graphs: None) -> None:
    from ragline.ingest import reembed

    org = org_with_docs("spaced", 6)
    reembed.start(org, "hashing", "hashing-v1", 256)
    space = reembed.cutover(org).active
    exact = vector_search(org, "orchard lantern")
    assert exact.plan["vector"] == "exact"

    todo = plan(min_chunks=6)
    own = orggraphs.Graph("chunk_vector_256", "space_id", space.id)
    assert own.name == f"ix_cv256_own_{space.id.hex}"
    assert sorted((g.name, n) for g, n in todo.build) == sorted([(name_of(org), 6), (own.name, 6)])
    orggraphs.apply(db.get_engine(app_role=False), todo)
    walked = vector_search(org, "orchard lantern")
    assert walked.plan["vector"] == "hnsw"
    assert [round(h.score, 5) for h in walked.hits] == [round(h.score, 5) for h in exact.hits]


def test_graph_keys_must_be_uuids() -> None:
    with pytest.raises(TypeError):
        orggraphs.Graph("chunk", "org_id", "x' OR 1=1 --")  # type: ignore[arg-type]
