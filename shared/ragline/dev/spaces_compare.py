"""Compare two embedding spaces of an org on questions before a cutover (issue 17):
overlap@k of their vector results and, with labels, MRR/recall of each. Without a file, the
org's recent search queries (the query log, unlabelled: overlap only)."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from ragline.core.errors import EmbeddingSpaceError
from ragline.db import tenancy
from ragline.dev import evaluate
from ragline.retrieval import querylog, search, spaces


def logged_questions(org_id: uuid.UUID, limit: int = 200) -> list[evaluate.Question]:
    """The org's recent search queries as unlabelled questions (newest first)."""
    with tenancy.tenant_session(org_id) as session:
        texts = querylog.recent(session, limit)
    if not texts:
        raise EmbeddingSpaceError(
            "no logged search queries for this org yet: pass --questions FILE"
        )
    return [evaluate.Question(text, ()) for text in texts]


def _pair(org_id: uuid.UUID) -> tuple[spaces.Space, spaces.Space]:
    """The active space and the shadow (else the most recently retired one)."""
    with tenancy.tenant_session(org_id) as session:
        rows = spaces.listing(session)
    by_state: dict[str, list[Any]] = {"active": [], "shadow": [], "retired": []}
    for r in sorted(rows, key=lambda r: r.retired_at or r.created_at, reverse=True):
        by_state[r.state].append(r)
    other = by_state["shadow"] or by_state["retired"]
    if not by_state["active"] or not other:
        raise EmbeddingSpaceError("nothing to compare: the org needs a shadow or retired space")
    a, b = by_state["active"][0], other[0]
    return (
        spaces.Space(a.id, a.provider, a.model, a.dimension, a.state, a.storage),
        spaces.Space(b.id, b.provider, b.model, b.dimension, b.state, b.storage),
    )


Run = Callable[[uuid.UUID, str], list[search.Hit]]


def _runner(space: spaces.Space, k: int) -> Run:
    """Vector search of `k` chunks in `space`, with the space's own query embedder."""
    embedder = spaces.embedder_for(space)

    def run(org_id: uuid.UUID, query: str) -> list[search.Hit]:
        req = search.SearchRequest(query=query, top_k=k, mode="vector")
        with tenancy.tenant_session(org_id) as session:
            return search.search(session, req, embedder, space=space).hits

    return run


def compare(
    org_id: uuid.UUID, questions: Sequence[evaluate.Question], *, k: int = 10
) -> dict[str, Any]:
    """overlap@k (shared chunks ÷ k, averaged) and per-space evaluation in vector mode."""
    a, b = _pair(org_id)
    runs = {name: _runner(space, k) for name, space in (("a", a), ("b", b))}
    overlaps: list[float] = []
    for q in questions:
        got = [{h.chunk_id for h in runs[name](org_id, q.question)} for name in ("a", "b")]
        overlaps.append(len(got[0] & got[1]) / k)
    report: dict[str, Any] = {
        "questions": len(questions),
        "k": k,
        "overlap": round(statistics.fmean(overlaps), 4) if overlaps else None,
    }
    labelled = any(q.relevant for q in questions)
    report["labelled"] = labelled
    for name, space in (("a", a), ("b", b)):
        run = runs[name]
        about = {"space_id": str(space.id), "state": space.state}
        about["model"] = f"{space.provider}/{space.model}"
        if not labelled:  # logged queries: nothing to score, overlap says it
            report[name] = about
            continue

        def docs(org: uuid.UUID, query: str, mode: str, run: Run = run) -> list[tuple[str, str]]:
            return [(str(h.document_id), h.title) for h in run(org, query)]

        (ev,) = evaluate.evaluate(org_id, questions, ["vector"], docs)
        report[name] = {**about, **ev.as_dict()}
    return report
