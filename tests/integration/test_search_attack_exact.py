"""Attacks on the exact scan of migration 0013 and the per-process org sizes of `search`:
tenancy and ACLs through the index-only scan and the remembered counts, stale sizes,
concurrent deletes, ties, hostile query text and the generic plans of whole-org statements."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pydantic
import pytest
import sqlalchemy as sa

from ragline.db import engine as db
from ragline.db import tenancy
from ragline.ingest import documents
from ragline.retrieval import hnswcheck, orggraphs, search

from .test_search import HOSTILE_QUERIES, MODES, add_doc, make_org, numbered

MODEL = "hashing-v1"
FAR = 1e12  # a remembered size that never expires during a test


def forget_all() -> None:
    for forget in (search._org_sizes.clear, orggraphs.forget, hnswcheck.clear, db.reset_engines):
        forget()


@pytest.fixture()
def env(configure: Callable[..., None]) -> Iterator[None]:
    configure(queue_backend="inline", embedding_provider="hashing", embed_batch_chunks="8")
    forget_all()
    yield
    forget_all()


def run(org: uuid.UUID, query: str, mode: search.Mode = "vector", top_k: int = 10, **kw: Any):
    principals = kw.pop("principals", None)
    filters = search.Filters(**kw) if kw else None
    req = search.SearchRequest(query=query, top_k=top_k, mode=mode, filters=filters)
    with tenancy.tenant_session(org, principals=principals) as session:
        return search.search(session, req)


def docs_of(result: search.SearchResult) -> set[uuid.UUID]:
    return {h.document_id for h in result.hits}


def key_of(org: uuid.UUID) -> tuple[Any, ...]:
    with tenancy.tenant_session(org) as session:
        return search._vectors_key(search._conditions(session, MODEL, None))


def remember(org: uuid.UUID, size: int) -> None:
    search._org_sizes[key_of(org)] = (size, FAR)


def clone_chunks(doc: uuid.UUID, ids: list[uuid.UUID]) -> None:
    """Copies of the document's first chunk (same text and vector) with these ids, inserted
    in this order (so the physical order is the list's)."""
    with db.owner_session() as session:
        session.execute(
            sa.text(
                "INSERT INTO chunk (id, org_id, document_id, ord, text, section_label, "
                "token_count, start_offset, end_offset, page, embedding, embedding_model) "
                "SELECT n.id, c.org_id, c.document_id, 1000 + n.i, c.text, c.section_label, "
                "c.token_count, c.start_offset, c.end_offset, c.page, c.embedding, "
                "c.embedding_model FROM (SELECT * FROM chunk WHERE document_id = :doc "
                "ORDER BY ord LIMIT 1) c, unnest(CAST(:ids AS uuid[])) WITH ORDINALITY n(id, i) "
                "ORDER BY n.i"
            ),
            {"doc": doc, "ids": [str(i) for i in ids]},
        )


def owner_exec(sql: str, **params: Any) -> None:
    with db.owner_session() as session:
        session.execute(sa.text(sql), params)


def test_sizes_and_exact_scans_never_cross_orgs_or_acls(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "EXACT_MAX_ROWS", 4)
    a, b = make_org("atk-a"), make_org("atk-b")
    public = {add_doc(a, f"pub {i}", f"Copper lantern note {i}.") for i in range(2)}
    hidden = {
        add_doc(a, f"hr {i}", f"Copper lantern salaries secret {i}.", acl=["group:hr"])
        for i in range(3)
    }
    only_b = {add_doc(b, "b doc", "Copper lantern in org B.")}
    q = "copper lantern salaries secret"
    first = run(a, q)  # 5 candidates: remembered as large
    assert first.plan["candidates"] == 5 and docs_of(first) == public | hidden
    assert run(b, q).plan == {"vector": "exact", "candidates": 1}  # not A's size
    for poisoned in (None, 1, 99):  # A's remembered size never reaches an end user or B
        if poisoned is not None:
            remember(a, poisoned)
            remember(b, poisoned)
        for mode in MODES:
            it = run(a, q, mode, top_k=100, principals={"group:it"})
            assert it.hits and docs_of(it) <= public, (poisoned, mode)
            if mode == "text":
                continue
            assert len(it.hits) == 2 and it.plan["candidates"] == 2, (poisoned, mode, it.plan)
            hr = run(a, q, mode, top_k=100, principals={"group:hr"})
            assert docs_of(hr) == public | hidden, (poisoned, mode)
            assert docs_of(run(a, q, mode, top_k=100)) == public | hidden, (poisoned, mode)
            assert docs_of(run(a, q, mode, top_k=100, kind="text")) == public | hidden
            assert docs_of(run(b, q, mode, top_k=100)) == only_b, (poisoned, mode)
        if poisoned is None:  # no size kept for end users or filters
            assert set(search._org_sizes) == {key_of(a), key_of(b)}


def test_the_index_only_scan_still_applies_the_acl_policy(env: None) -> None:
    """The whole-org exact statement run as an end user, forced onto the index-only scan of
    ix_chunk_exact_scan (whose INCLUDEd acl the restrictive policy reads): no hidden chunk."""
    org = make_org("atk-ios")
    public = {add_doc(org, f"pub {i}", f"Violet meadow {i}.") for i in range(2)}
    add_doc(org, "secret", "Violet meadow secret.", acl=["group:hr"])
    other = make_org("atk-ios-other")
    add_doc(other, "other", "Violet meadow elsewhere.")
    with db.get_engine(app_role=False).connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM chunk"))
    with tenancy.tenant_session(org, principals={"group:it"}) as session:
        where = replace(search._conditions(session, MODEL, None), docs=None)
        embedder = search.spaces.for_search(session)[0]
        vector = search.spaces.vector_literal(embedder.embed(["violet meadow"])[0])
        params = {**where.params, "vector": vector, "limit": 50, "bound": 3, "max_exact": 5}
        for name in ("enable_seqscan", "enable_bitmapscan"):
            session.execute(sa.text(f"SET LOCAL {name} = off"))
        for build in (search._small_sql, search._fallback_sql, search._vector_sql):
            statement = build(where)
            shown = session.execute(sa.text("EXPLAIN " + statement), params).all()
            plan = "\n".join(r[0] for r in shown)
            assert "Index Only Scan using ix_chunk_exact_scan" in plan, plan
            rows = session.execute(sa.text(statement), params).all()
            assert {r.document_id for r in rows} == public, build.__name__


def test_stale_sizes_return_ready_chunks_only_and_all_of_them(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "EXACT_MAX_ROWS", 3)
    org = make_org("atk-stale")
    docs = [add_doc(org, f"g {i}", f"Granite orchard number {i} blooms.") for i in range(2)]
    assert run(org, "granite orchard").plan == {"vector": "exact", "candidates": 2}
    docs += [add_doc(org, f"g {i}", f"Granite orchard number {i} blooms.") for i in range(2, 6)]
    assert docs_of(run(org, "granite orchard", top_k=100)) == set(docs)  # grew past 3
    owner_exec("UPDATE document SET status = 'embedding' WHERE id = :d", d=docs[0])
    owner_exec("UPDATE document SET status = 'failed' WHERE id = :d", d=docs[1])
    with tenancy.tenant_session(org) as session:
        assert documents.delete(session, docs[2])
    ready = set(docs[3:])
    for gone in (False, True):
        if gone:
            owner_exec("DELETE FROM document WHERE org_id = :o", o=org)
        for size in (2, 7, None):  # remembered small, remembered large, counted again
            for mode in MODES:
                search._org_sizes.clear()
                if size is not None:
                    remember(org, size)
                found = run(org, "granite orchard blooms", mode, top_k=100)
                want = set() if gone else ready
                assert docs_of(found) == want and len(found.hits) == len(want), (size, mode)
    owner_exec("DELETE FROM org WHERE id = :o", o=org)  # the org itself, size remembered
    for mode in MODES:
        remember(org, 7)
        assert run(org, "granite orchard", mode).hits == [], mode


def test_concurrent_deletes_neither_block_nor_leak(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = make_org("atk-conc")
    docs = [add_doc(org, f"c {i}", f"Thunder harbour copper {i} {'x ' * i}") for i in range(5)]
    assert run(org, "thunder harbour").plan["vector"] == "exact"  # remembered small
    with db.get_engine(app_role=False).connect() as conn:
        conn.execute(sa.text("SET lock_timeout = '2s'"))
        conn.execute(sa.text("DELETE FROM document WHERE id = :d"), {"d": docs[0]})
        for mode in MODES:  # not committed yet: still there, and no lock waited on
            assert docs[0] in docs_of(run(org, "thunder harbour copper", mode, top_k=10)), mode
        conn.commit()
    for mode in MODES:
        assert docs_of(run(org, "thunder harbour copper", mode)) == set(docs[1:]), mode
    # Between hybrid's candidates and its display read, every document goes: the fused top
    # hit is outside the shown (vector top 1) rows, so it is read again, and is gone.
    raced_org = make_org("atk-race")
    for title, text in (("x", "alpha"), ("y", "beta gamma alpha delta"), ("z", "omega")):
        add_doc(raced_org, title, text)
    calm = run(raced_org, "alpha beta", "hybrid", top_k=1)
    original, seen = search._displayed, {}

    def racing(session: Any, hits: list[search.Hit], shown: dict[uuid.UUID, Any]) -> Any:
        owner_exec("DELETE FROM document WHERE org_id = :o", o=raced_org)
        seen.update(hits=[h.chunk_id for h in hits], shown=set(shown))
        return original(session, hits, shown)

    monkeypatch.setattr(search, "_displayed", racing)
    raced = run(raced_org, "alpha beta", "hybrid", top_k=1)
    assert seen["hits"] == [h.chunk_id for h in calm.hits]
    assert not set(seen["hits"]) & seen["shown"]  # read by `_displayed`, after the delete
    assert raced.hits == []


def tied_org(slug: str, order: range) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """One document (a random id) and 7 copies of its chunk (equal distances and text
    ranks) with ids 1-7, inserted in `order` after it."""
    org = make_org(slug)
    doc = add_doc(org, "same", "Quiet harbour lanterns glow.")
    clone_chunks(doc, [uuid.UUID(int=k) for k in order])
    with db.owner_session() as session:
        ids = list(session.scalars(sa.text("SELECT id FROM chunk WHERE org_id = :o"), {"o": org}))
    return org, sorted(ids)


def test_equal_distances_pick_the_same_chunks_on_every_exact_path_and_mode(env: None) -> None:
    org, ids = tied_org("atk-ties", range(7, 0, -1))  # smallest id last
    q = "quiet harbour lanterns glow"
    for top_k in (1, 3):
        want = ids[:top_k]  # equal scores by chunk id: as `_combine` and `_vector_rows` do
        search._org_sizes.clear()
        got = {
            "counted": run(org, q, top_k=top_k),
            "small": run(org, q, top_k=top_k),
            "hybrid": run(org, q, "hybrid", top_k=top_k),
            "text": run(org, q, "text", top_k=top_k),
        }
        assert got["small"].plan["vector"] == "exact"
        picked = {name: [h.chunk_id for h in r.hits] for name, r in got.items()}
        assert all(p == want for p in picked.values()), (want, picked)


EXTRA_QUERIES = [
    "'; DROP TABLE chunk; --",
    "$1 $2 :org %(org)s %s {0} \\x00 \\",
    "a:* & !b <-> <2> (c | d) ) (",
    "the of and to is",
    ",.;:!?¿¡…—«»",
    "😀" * 2000,
    "漢" * 2000,
    "\u202e\u200b\ufeff widget \u0301\u0301",
    "ß" * 1999 + " ",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES + EXTRA_QUERIES)
def test_hostile_queries_on_small_orgs_in_every_mode(env: None, query: str) -> None:
    org = make_org("atk-hostile")
    docs = {add_doc(org, f"w {i}", f"Widgets ship in boxes number {i}.") for i in range(3)}
    for size in (None, 3):  # counted, then remembered small
        search._org_sizes.clear()
        if size:
            remember(org, size)
        for mode in MODES:
            for top_k in (1, 100):
                result = run(org, query, mode, top_k=top_k)
                assert docs_of(result) <= docs
                assert all(math.isfinite(h.score) for h in result.hits), (mode, result.hits)
                json.dumps(result.as_dict(), allow_nan=False)
                if mode != "text":
                    assert len(result.hits) == min(top_k, 3) and result.complete, (mode, top_k)


@pytest.mark.parametrize(
    "query", ["", "   ", "\x00", "a\x00b", "x" * 2001, "\n\t", "harbour \ud800", "\udfff"]
)
def test_invalid_queries_are_validation_errors(query: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        search.SearchRequest(query=query)


def nodes(plan: Any) -> Iterator[dict[str, Any]]:
    if isinstance(plan, dict):
        if "Node Type" in plan:
            yield plan
        for value in plan.values():
            yield from nodes(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from nodes(value)


def test_generic_plans_read_only_the_org_and_exact_never_walks_hnsw(env: None) -> None:
    small = make_org("atk-gen-a")
    add_doc(small, "ferns", "Ferns grow in the shade of old oaks.")
    for i in range(4):  # many orgs: the generic estimate of org_id = $1 is a small share
        add_doc(make_org(f"atk-gen-{i}"), "x", f"Filler text {i} about oaks.")
    big = make_org("atk-gen-big")
    clone_chunks(
        add_doc(big, "big", "Oaks and ferns, a big org."), [uuid.uuid4() for _ in range(600)]
    )
    owner_exec("ANALYZE chunk")
    owner_exec("ANALYZE document")
    with tenancy.tenant_session(small) as session:
        where = search._conditions(session, MODEL, None)
        for light in (False, True):
            for build in (search._small_sql, search._fallback_sql, search._vector_sql):
                search._set_local(session, search._GENERIC)
                explained = session.execute(
                    sa.text("EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + numbered(build(where, light)))
                ).scalar()
                plan = explained if isinstance(explained, list) else json.loads(explained)
                on_chunk = [n for n in nodes(plan) if n.get("Relation Name") == "chunk"]
                label = (build.__name__, light, [n["Node Type"] for n in on_chunk])
                assert on_chunk and all(n["Node Type"] != "Seq Scan" for n in on_chunk), label
                hnsw = [n for n in on_chunk if "hnsw" in n.get("Index Name", "")]
                # Exact statements never walk a graph; `_vector_sql` only in its gated branch.
                assert len(hnsw) == (build is search._vector_sql), label
                for n in on_chunk:  # every other read of chunk is bounded by the org
                    if n not in hnsw and n.get("Index Name") != "pk_chunk":
                        assert "org_id" in json.dumps(n), (label, n)
