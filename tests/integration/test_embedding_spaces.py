"""Embedding spaces (issue 17) on the real test Postgres with two real spaces in one org: the
hashing embedder at 384 d (the legacy space, `chunk.embedding`) and at 256 d
(`chunk_vector_256`). Shadow build through the embed stage, ingest during a build, cutover
and rollback (also while searches run in a loop), guardrails, purge."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ragline.core.errors import EmbeddingError, EmbeddingSpaceError, ValidationError
from ragline.db import engine as db
from ragline.db import orgs, tenancy
from ragline.db.models import VECTOR_TABLES, Chunk, Document, EmbeddingSpace, Org
from ragline.guardrails import fairshare
from ragline.ingest import documents, ingestion, pipeline, queues, reembed
from ragline.ops import reconcile
from ragline.ops.retention import run_retention
from ragline.retrieval import search, spaces

TEXTS = {
    "sailing": "Sailing boats use a keel and a rudder to steer against the wind. " * 6,
    "baking": "Bread dough rises when yeast ferments sugars into carbon dioxide. " * 6,
    "stars": "Stars fuse hydrogen into helium in their cores and shine for billions of years. " * 6,
}
T256 = VECTOR_TABLES[256]


@pytest.fixture()
def hashing(configure: Callable[..., None]) -> Callable[..., None]:
    configure(queue_backend="inline", embedding_provider="hashing", embed_batch_chunks="2")
    return configure


def make_org(slug: str) -> uuid.UUID:
    with db.owner_session() as session:
        org_id, _ = orgs.ensure_org(session, slug)
    return org_id


def add_doc(org_id: uuid.UUID, title: str, text: str) -> uuid.UUID:
    with tenancy.tenant_session(org_id) as session:
        result = documents.create(session, documents.NewDocument(title=title, text=text))
    ingestion.start_pipeline(org_id, result)
    return result.document.id


def find(org_id: uuid.UUID, query: str, mode: search.Mode = "vector") -> search.SearchResult:
    req = search.SearchRequest(query=query, top_k=5, mode=mode)
    with tenancy.tenant_session(org_id) as session:
        return search.search(session, req)


def titles(result: search.SearchResult) -> list[str]:
    return [h.title for h in result.hits]


def counts(org_id: uuid.UUID) -> tuple[int, int, int]:
    """(chunks, chunks with a legacy vector, vectors in chunk_vector_256) of the org."""
    with tenancy.tenant_session(org_id) as s:
        chunks = tenancy.count(s, Chunk)
        legacy = tenancy.count(s, Chunk, Chunk.embedding.is_not(None))
        table = s.scalar(sa.select(sa.func.count()).select_from(T256)) or 0
    return chunks, legacy, int(table)


def org_with_docs(slug: str = "spaces") -> uuid.UUID:
    org = make_org(slug)
    for title, text in TEXTS.items():
        add_doc(org, title, text)
    return org


def shadow_only(org: uuid.UUID) -> spaces.Space:
    """A shadow space recorded without enqueuing its build (a build "in progress")."""
    with tenancy.tenant_session(org) as s:
        space, created = spaces.start_shadow(s, "hashing", "hashing-v1", 256)
    assert created
    return space


def test_org_without_spaces_searches_as_before(hashing: Any) -> None:
    org = org_with_docs()
    with tenancy.tenant_session(org) as s:
        embedder, space = spaces.for_search(s)
        assert space is None and embedder.dim == 384
        assert spaces.listing(s) == []
    assert titles(find(org, "keel rudder sailing"))[0] == "sailing"


def test_shadow_build_cutover_and_rollback(hashing: Any) -> None:
    org = org_with_docs()
    chunks, legacy, table = counts(org)
    assert chunks == legacy and table == 0
    before = find(org, "yeast bread dough")

    build = reembed.start(org, "hashing", "hashing-v1", 256)
    assert build.created and build.tasks > 0
    assert build.estimate["chunks"] == chunks and build.estimate["tokens"] > 0
    # Inline queue: the build ran through the embed stage; the legacy column is untouched.
    assert counts(org) == (chunks, chunks, chunks)
    status = {p["state"]: p for p in reembed.status(org)}
    assert status["shadow"]["missing"] == 0 and status["shadow"]["embedded"] == chunks
    assert status["active"]["storage"] == "chunk" and status["active"]["dimension"] == 384
    # Still searching the legacy space.
    assert [h.chunk_id for h in find(org, "yeast bread dough").hits] == [
        h.chunk_id for h in before.hits
    ]

    switch = reembed.cutover(org)
    assert (switch.active.dimension, switch.retired.dimension, switch.missing) == (256, 384, 0)
    with tenancy.tenant_session(org) as s:
        embedder, space = spaces.for_search(s)
        assert space is not None and space.id == build.space.id and embedder.dim == 256
    for mode in ("vector", "hybrid", "text"):
        assert titles(find(org, "yeast bread dough", mode))[0] == "baking", mode

    back = reembed.rollback(org)
    assert back.active.storage == "chunk" and back.retired.id == build.space.id
    assert [h.chunk_id for h in find(org, "yeast bread dough").hits] == [
        h.chunk_id for h in before.hits
    ]


def test_ingest_during_a_build_embeds_both_spaces_and_resume_fills_the_rest(
    hashing: Any,
) -> None:
    org = org_with_docs()
    shadow = shadow_only(org)
    chunks, _, table = counts(org)
    assert table == 0
    new = add_doc(org, "tides", "The moon's gravity raises tides in the oceans twice a day. " * 6)
    with tenancy.tenant_session(org) as s:
        new_chunks = tenancy.count(s, Chunk, Chunk.document_id == new)
        missing = spaces.missing_count(s, shadow)
    assert counts(org) == (chunks + new_chunks, chunks + new_chunks, new_chunks)
    assert missing == chunks
    # Resumable and idempotent: only the missing batches are enqueued, twice changes nothing.
    first = reembed.resume(org)
    assert first.tasks > 0
    again = reembed.resume(org)
    assert again.tasks == 0
    assert counts(org) == (chunks + new_chunks,) * 3
    reembed.cutover(org)
    assert titles(find(org, "moon gravity tides"))[0] == "tides"
    # After the cutover, a new document is embedded in the active space and becomes ready.
    late = add_doc(org, "late", "Volcanoes erupt when magma rises through the crust. " * 6)
    assert titles(find(org, "magma volcanoes crust"))[0] == "late"
    with tenancy.tenant_session(org) as s:
        late_chunks = tenancy.count(s, Chunk, Chunk.document_id == late)
        assert tenancy.count(s, Chunk, Chunk.document_id == late, Chunk.embedding.is_(None)) > 0
        assert documents.chunk_counts(s, late) == {"total": late_chunks, "embedded": late_chunks}


def test_cutover_refused_while_incomplete_unless_forced(hashing: Any) -> None:
    org = org_with_docs()
    shadow_only(org)
    chunks, _, _ = counts(org)
    with pytest.raises(EmbeddingSpaceError) as refused:
        reembed.cutover(org)
    assert refused.value.details["missing"] == chunks
    # Nothing switched: searches still answer from the legacy space.
    assert titles(find(org, "hydrogen helium stars"))[0] == "stars"
    forced = reembed.cutover(org, force=True)
    assert forced.missing == chunks
    # The fill was enqueued (inline: done): the new active space is complete.
    assert counts(org)[2] == chunks
    assert titles(find(org, "hydrogen helium stars"))[0] == "stars"


def test_two_builds_at_once_are_impossible(hashing: Any) -> None:
    org = org_with_docs()
    shadow_only(org)
    with tenancy.tenant_session(org) as s, pytest.raises(EmbeddingSpaceError):
        spaces.start_shadow(s, "hashing", "hashing-v1", 768)
    # The same build again is a resume, not a second one.
    with tenancy.tenant_session(org) as s:
        _, created = spaces.start_shadow(s, "hashing", "hashing-v1", 256)
        assert not created
    # Even a writer that skips the checks meets the partial unique index.
    with pytest.raises(sa_exc.IntegrityError), tenancy.tenant_session(org) as s:
        tenancy.add(
            s,
            EmbeddingSpace(
                provider="hashing",
                model="hashing-v1",
                dimension=768,
                state="shadow",
                storage="chunk_vector_768",
            ),
        )
        s.flush()


@pytest.mark.parametrize(
    ("dimension", "message"), [(3072, "at most 2000"), (512, "no vector table")]
)
def test_unsupported_dimensions_are_refused(hashing: Any, dimension: int, message: str) -> None:
    org = org_with_docs()
    with pytest.raises(ValidationError, match=message), tenancy.tenant_session(org) as s:
        spaces.start_shadow(s, "hashing", "hashing-v1", dimension)


def test_searches_never_fail_or_come_back_empty_during_build_cutover_and_rollback(
    hashing: Any,
) -> None:
    org = org_with_docs()
    stop = threading.Event()
    errors: list[str] = []
    empty: list[str] = []
    done = [0]

    def loop() -> None:
        modes: tuple[search.Mode, ...] = ("vector", "hybrid")
        while not stop.is_set():
            for mode in modes:
                try:
                    got = titles(find(org, "keel rudder sailing", mode))
                except Exception as exc:  # every failure is the finding
                    errors.append(f"{mode}: {type(exc).__name__}: {exc}")
                    continue
                if not got:
                    empty.append(mode)
                done[0] += 1

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        reembed.start(org, "hashing", "hashing-v1", 256)
        for _ in range(3):
            reembed.cutover(org)
            reembed.rollback(org)
            with tenancy.tenant_session(org) as s:  # the rolled-back space is a shadow again
                s.execute(
                    sa.update(EmbeddingSpace)
                    .where(EmbeddingSpace.org_id == org, EmbeddingSpace.state == "retired")
                    .values(state="shadow", retired_at=None)
                )
        reembed.cutover(org)
        reembed.rollback(org)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == [] and empty == []
    assert done[0] > 10


def test_retired_space_is_purged_by_retention_after_the_grace_period(hashing: Any) -> None:
    org = org_with_docs()
    build = reembed.start(org, "hashing", "hashing-v1", 256)
    reembed.cutover(org)
    reembed.rollback(org)  # the 256-d space is now the retired one
    chunks = counts(org)[0]
    report = run_retention(org=org)  # default grace: 7 days
    assert report.ok and report.totals()["embedding_spaces"] == 0
    assert counts(org)[2] == chunks
    with db.owner_session() as s:
        s.execute(
            sa.update(Org)
            .where(Org.id == org)
            .values(settings={"retention": {"embedding_space_days": 0}})
        )
    dry = run_retention(org=org, dry_run=True)
    assert dry.totals()["embedding_spaces"] == chunks + 1
    report = run_retention(org=org, batch_size=2)
    assert report.ok and report.complete
    assert report.totals()["embedding_spaces"] == chunks + 1  # vectors, then the space
    with tenancy.tenant_session(org) as s:
        assert spaces.get(s, build.space.id) is None
    assert counts(org) == (chunks, chunks, 0)
    assert titles(find(org, "keel rudder sailing"))[0] == "sailing"
    with pytest.raises(EmbeddingSpaceError):
        reembed.rollback(org)


def test_a_build_has_its_own_fair_share_slots(
    hashing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = org_with_docs()
    space = shadow_only(org)
    deferred: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(queues, "can_defer", lambda settings=None: True)
    monkeypatch.setattr(
        queues, "enqueue", lambda stage, payload, name, delay_s=0: deferred.append((stage, payload))
    )
    with tenancy.tenant_session(org) as s:
        doc_id = s.scalars(
            tenancy.scoped_select(s, Chunk).with_only_columns(Chunk.document_id)
        ).first()
    task = {"org_id": str(org), "document_id": str(doc_id), "batch": 0, "space": str(space.id)}
    # The org's one re-embed slot is taken: the build task waits, live embeds are not affected.
    held = fairshare.try_claim(org, pipeline.REEMBED_SLOTS, "other", limit="reembed_concurrency")
    assert held is not None
    outcome = pipeline.run_stage("embed", task, attempt=0, max_attempts=3)
    assert outcome.ok and outcome.detail.startswith("deferred")
    assert deferred and deferred[0][1]["space"] == str(space.id)
    assert fairshare.try_claim(org, "embed", "live") is not None
    fairshare.release(org, pipeline.REEMBED_SLOTS, held, "other")
    outcome = pipeline.run_stage("embed", task, attempt=0, max_attempts=3)
    assert outcome.detail == "done"
    with tenancy.tenant_session(org) as s:
        written = s.scalar(
            sa.select(sa.func.count()).select_from(T256).where(T256.c.space_id == space.id)
        )
        in_batch = tenancy.count(s, Chunk, Chunk.document_id == doc_id, Chunk.ord < 2)
    assert written == in_batch  # one batch (EMBED_BATCH_CHUNKS=2), nothing else


class _Down:
    """A remote provider that is down (the only kind of fake these tests use)."""

    name = "down"
    dim = 256

    def embed(self, texts: Any, *, kind: str = "document") -> list[list[float]]:
        raise EmbeddingError("provider unavailable")


def test_a_failed_build_batch_is_reported_never_skipped_and_never_fails_the_document(
    hashing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = org_with_docs()
    space = shadow_only(org)
    with tenancy.tenant_session(org) as s:
        doc_id = s.scalars(
            tenancy.scoped_select(s, Chunk).with_only_columns(Chunk.document_id)
        ).first()
    task = {"org_id": str(org), "document_id": str(doc_id), "batch": 0, "space": str(space.id)}
    with monkeypatch.context() as m:
        m.setattr(spaces, "embedder_for", lambda space, settings=None: _Down())
        outcome = pipeline.run_stage("embed", task, attempt=2, max_attempts=3)
    assert outcome.ok and outcome.detail.startswith("re-embed batch failed")
    (shadow,) = [p for p in reembed.status(org) if p["state"] == "shadow"]
    assert shadow["failed_batches"] == 1 and "provider unavailable" in shadow["last_error"]
    assert shadow["missing"] == counts(org)[0]
    with tenancy.tenant_session(org) as s:
        assert s.scalar(sa.select(Document.status).where(Document.id == doc_id)) == "ready"
    with pytest.raises(EmbeddingSpaceError):
        reembed.cutover(org)
    reembed.resume(org)
    (shadow,) = [p for p in reembed.status(org) if p["state"] == "shadow"]
    assert (shadow["failed_batches"], shadow["missing"]) == (0, 0)


def test_the_default_provider_finds_the_active_space_in_its_one_statement(
    hashing: Callable[..., None],
) -> None:
    org = org_with_docs()
    reembed.start(org, "hashing", "hashing-v1", 256)
    reembed.cutover(org)
    hashing(embedding_provider="minilm")  # the deployment default: its lookup already ran
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = db.get_engine()
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        with tenancy.tenant_session(org) as s:
            statements.clear()
            embedder, space = spaces.for_search(s)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert space is not None and space.dimension == 256 and embedder.dim == 256
    assert len(statements) == 1


def test_the_hnsw_plan_reads_the_active_space(
    hashing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = org_with_docs()
    for i in range(8):
        add_doc(org, f"filler {i}", f"Filler number {i} talks about gardens and lawns. " * 4)
    monkeypatch.setattr(search, "EXACT_MAX_ROWS", 3)  # this small org takes the HNSW branch
    legacy = find(org, "keel rudder sailing")
    assert legacy.plan["vector"] == "hnsw", legacy.plan
    assert titles(legacy)[0] == "sailing"
    reembed.start(org, "hashing", "hashing-v1", 256)
    reembed.cutover(org)
    got = find(org, "keel rudder sailing")
    assert got.plan["vector"] == "hnsw", got.plan
    assert titles(got)[0] == "sailing" and len(got.hits) == 5
    # Hybrid asks for 50 candidates, more than this org has: the exact scan completes it.
    hybrid = find(org, "keel rudder sailing", "hybrid")
    assert hybrid.plan["vector"] == "exact-fallback" and titles(hybrid)[0] == "sailing"


def _age_watch(space_id: uuid.UUID, seconds: int = 3600) -> None:
    """What time does to a build whose tasks were lost: no progress since the last look."""
    with db.owner_session() as s:
        s.execute(
            sa.update(EmbeddingSpace)
            .where(EmbeddingSpace.id == space_id)
            .values(
                watched_at=sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds),
                requeued_at=sa.case(
                    (
                        EmbeddingSpace.requeued_at.is_not(None),
                        sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds),
                    )
                ),
            )
        )


def test_reconcile_restarts_a_stalled_build_and_reports_it_when_requeues_are_spent(
    hashing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = org_with_docs()
    space = shadow_only(org)  # a build whose tasks were all lost
    chunks = counts(org)[0]
    seen = reconcile.run_reconcile(org=org, stall_s=60, max_requeues=1)
    assert seen.ok and seen.builds == []  # first look: noted, not stalled yet
    assert reconcile.run_reconcile(org=org, stall_s=60, max_requeues=1).builds == []
    _age_watch(space.id)
    lost: list[dict[str, Any]] = []
    monkeypatch.setattr(
        queues, "enqueue", lambda stage, payload, name, delay_s=0: lost.append(payload)
    )
    dry = reconcile.run_reconcile(org=org, stall_s=60, max_requeues=1, dry_run=True)
    assert [b.action for b in dry.builds] == ["requeued"] and lost == []
    (build,) = reconcile.run_reconcile(org=org, stall_s=60, max_requeues=1).builds
    assert (build.action, build.space_id, build.missing) == ("requeued", space.id, chunks)
    assert build.tasks == len(lost) > 0 and {p["space"] for p in lost} == {str(space.id)}
    assert reconcile.run_reconcile(org=org, stall_s=60, max_requeues=1).builds == []
    _age_watch(space.id)  # the re-enqueued tasks were lost too
    (spent,) = reconcile.run_reconcile(org=org, stall_s=60, max_requeues=1).builds
    assert (spent.action, spent.tasks) == ("stalled", 0)
    (shadow,) = [p for p in reembed.status(org) if p["state"] == "shadow"]
    assert shadow["failed_batches"] == 1 and shadow["last_error"].startswith("stalled")
    _age_watch(space.id)
    assert reconcile.run_reconcile(org=org, stall_s=60, max_requeues=1).builds == []
    with pytest.raises(EmbeddingSpaceError):
        reembed.cutover(org)
    monkeypatch.undo()
    reembed.resume(org)  # inline queue: the build completes
    (shadow,) = [p for p in reembed.status(org) if p["state"] == "shadow"]
    assert (shadow["missing"], shadow["failed_batches"]) == (0, 0)


def test_reconcile_completes_a_stalled_build_through_the_queue(hashing: Any) -> None:
    org = org_with_docs()
    space = shadow_only(org)
    reconcile.run_reconcile(org=org, stall_s=60)
    _age_watch(space.id)
    (build,) = reconcile.run_reconcile(org=org, stall_s=60).builds
    assert build.action == "requeued" and build.tasks > 0
    chunks = counts(org)[0]
    assert counts(org) == (chunks, chunks, chunks)  # inline queue: every vector written
    assert reconcile.run_reconcile(org=org, stall_s=60).builds == []
    assert reembed.cutover(org).missing == 0
