"""Tenant-safe hybrid search: vector (pgvector) + full text (tsvector, pg_trgm), fused by RRF.

Recall under the tenant filter does not depend on the planner's mood: the plan is chosen per
query from the number of candidate chunks. Up to `EXACT_MAX_ROWS` candidates get an exact scan
(btree on org_id, distance computed for every row); above it, HNSW with iterative scans
(pgvector >= 0.8), a generous `ef_search`, and the rows re-sorted by true distance.
Custom plans are forced, so a driver's cached generic plan cannot silently switch strategy.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.orm import Session

from ragline.db import tenancy
from ragline.db.models import Chunk, Document
from ragline.retrieval.embeddings import Embedder, for_org

Mode = Literal["hybrid", "vector", "text"]
RRF_K = 60
#: Candidate counts up to this use an exact scan (~20 ms at 10 000 rows on 2 cores).
EXACT_MAX_ROWS = 20_000
#: Each list feeds this many candidates into the fusion.
FUSION_DEPTH = 50


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(default=None, max_length=64)
    document_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)
    metadata: dict[str, Any] | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=10, ge=1, le=100)
    mode: Mode = "hybrid"
    filters: Filters | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip() or "\x00" in v:
            raise ValueError("query must be non-blank text without NUL")
        return v


@dataclass
class Hit:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    title: str
    section_label: str | None
    text: str
    score: float = 0.0
    vector_rank: int | None = None
    text_rank: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chunk_id": str(self.chunk_id),
            "document_id": str(self.document_id),
            "title": self.title,
            "section_label": self.section_label,
            "text": self.text,
            "score": round(self.score, 6),
        }
        if self.vector_rank is not None:
            out["vector_rank"] = self.vector_rank
        if self.text_rank is not None:
            out["text_rank"] = self.text_rank
        return out


@dataclass
class SearchResult:
    hits: list[Hit]
    complete: bool
    took_ms: float
    plan: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": [h.as_dict() for h in self.hits],
            "complete": self.complete,
            "took_ms": round(self.took_ms, 2),
        }


def _conditions(session: Session, model_name: str, filters: Filters | None) -> list[Any]:
    """WHERE clauses shared by both lists: this org, ready documents, this model, filters."""
    org = tenancy.current_org(session)
    where: list[Any] = [
        Chunk.org_id == org,
        Document.org_id == org,
        Document.status == "ready",
        Chunk.embedding_model == model_name,
    ]
    if filters:
        if filters.kind:
            where.append(Document.kind == filters.kind)
        if filters.document_ids is not None:
            where.append(Chunk.document_id.in_(filters.document_ids))
        if filters.metadata:
            where.append(Document.metadata_.contains(filters.metadata))
    return where


def _base(where: list[Any]) -> Any:
    return (
        sa.select(Chunk.id, Chunk.document_id, Document.title, Chunk.section_label, Chunk.text)
        .join(Document, Document.id == Chunk.document_id)
        .where(*where)
    )


def _hit(row: Any) -> Hit:
    return Hit(row.id, row.document_id, row.title, row.section_label, row.text)


def count_candidates(session: Session, where: list[Any]) -> int:
    stmt = (
        sa.select(sa.func.count())
        .select_from(Chunk)
        .join(Document, Document.id == Chunk.document_id)
        .where(*where)
    )
    return int(session.scalar(stmt) or 0)


def vector_hits(
    session: Session, vector: list[float], where: list[Any], limit: int, candidates: int
) -> tuple[list[Hit], str]:
    """Nearest chunks by cosine distance; exact for small candidate sets, HNSW otherwise."""
    distance = Chunk.embedding.cosine_distance(vector)
    if candidates <= EXACT_MAX_ROWS:
        # `+ 0` makes the ORDER BY an expression the HNSW index cannot serve: exact scan.
        inner = _base(where).add_columns((distance + 0).label("distance"))
        stmt = inner.order_by(sa.text("distance")).limit(limit)
        plan = "exact"
    else:
        ef = min(1000, max(200, limit * 4))
        session.execute(sa.text(f"SET LOCAL hnsw.ef_search = {int(ef)}"))
        session.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        session.execute(sa.text("SET LOCAL hnsw.max_scan_tuples = 200000"))
        inner_q = (
            (_base(where).add_columns(distance.label("distance")).order_by(distance).limit(limit))
            .cte("nearest")
            .prefix_with("MATERIALIZED")
        )
        # relaxed_order may return rows slightly out of order: re-sort by true distance.
        stmt = sa.select(inner_q).order_by(inner_q.c.distance)
        plan = "hnsw"
    rows = session.execute(stmt).all()
    hits = []
    for row in rows:
        hit = _hit(row)
        hit.score = 1.0 - float(row.distance)
        hits.append(hit)
    return hits, plan


def text_hits(session: Session, query: str, where: list[Any], limit: int) -> list[Hit]:
    """Full-text matches ranked by ts_rank_cd; trigram similarity rescues short or misspelled
    queries that full text misses."""
    english: Any = sa.literal_column("'english'::regconfig")
    # All terms first (web search syntax: quotes, OR, -word); then any term, so a question
    # in plain language still finds the passages that share most of its words.
    strict = sa.func.websearch_to_tsquery(english, query)
    loose = sa.cast(
        sa.func.replace(sa.cast(sa.func.plainto_tsquery(english, query), sa.Text), "&", "|"),
        TSQUERY,
    )
    hits: list[Hit] = []
    seen: set[uuid.UUID] = set()
    for tsq, weight in ((strict, 1.0), (loose, 0.5)):
        if len(hits) >= limit:
            break
        rank = sa.func.ts_rank_cd(Chunk.tsv, tsq)
        stmt = (
            _base(where)
            .add_columns(rank.label("rank"))
            .where(Chunk.tsv.op("@@")(tsq))
            .order_by(rank.desc(), Chunk.id)
            .limit(limit)
        )
        for row in session.execute(stmt).all():
            if row.id in seen or len(hits) >= limit:
                continue
            seen.add(row.id)
            hit = _hit(row)
            hit.score = float(row.rank) * weight
            hits.append(hit)
    if len(hits) < limit and len(query.split()) <= 3:
        sim = sa.func.word_similarity(query, Chunk.text)
        fuzzy = (
            _base(where)
            .add_columns(sim.label("sim"))
            .where(sim > 0.5)
            .order_by(sim.desc(), Chunk.id)
            .limit(limit)
        )
        for row in session.execute(fuzzy).all():
            if row.id not in seen and len(hits) < limit:
                seen.add(row.id)
                hit = _hit(row)
                hit.score = float(row.sim) * 0.1  # below any real full-text match
                hits.append(hit)
    return hits


def fuse(vector: list[Hit], text: list[Hit], top_k: int) -> list[Hit]:
    """Reciprocal rank fusion (k = 60) of the two ranked lists."""
    fused: dict[uuid.UUID, Hit] = {}
    for rank, hit in enumerate(vector, start=1):
        entry = fused.setdefault(hit.chunk_id, Hit(**{**hit.__dict__, "score": 0.0}))
        entry.vector_rank = rank
        entry.score += 1.0 / (RRF_K + rank)
    for rank, hit in enumerate(text, start=1):
        entry = fused.setdefault(hit.chunk_id, Hit(**{**hit.__dict__, "score": 0.0}))
        entry.text_rank = rank
        entry.score += 1.0 / (RRF_K + rank)
    return sorted(fused.values(), key=lambda h: (-h.score, str(h.chunk_id)))[:top_k]


def search(session: Session, req: SearchRequest, embedder: Embedder | None = None) -> SearchResult:
    """Run one search inside a tenant session (RLS active)."""
    started = time.monotonic()
    embedder = embedder or for_org(session)
    # Never let a cached generic plan decide between exact and HNSW.
    session.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    where = _conditions(session, embedder.name, req.filters)
    candidates = count_candidates(session, where)
    depth = req.top_k if req.mode != "hybrid" else max(req.top_k, FUSION_DEPTH)
    plan: dict[str, Any] = {"candidates": candidates}
    vec: list[Hit] = []
    txt: list[Hit] = []
    if req.mode in ("vector", "hybrid") and candidates:
        vector = embedder.embed([req.query], kind="query")[0]
        vec, plan["vector"] = vector_hits(session, vector, where, depth, candidates)
    if req.mode in ("text", "hybrid") and candidates:
        txt = text_hits(session, req.query, where, depth)
    if req.mode == "vector":
        hits = vec[: req.top_k]
        for i, h in enumerate(hits, start=1):
            h.vector_rank = i
    elif req.mode == "text":
        hits = txt[: req.top_k]
        for i, h in enumerate(hits, start=1):
            h.text_rank = i
    else:
        hits = fuse(vec, txt, req.top_k)
    # The guarantee: as many results as asked for, whenever the org has that many candidates
    # (text mode returns only matching chunks, which is complete by definition).
    want = min(req.top_k, candidates)
    complete = len(hits) >= want if req.mode != "text" else True
    if req.mode == "hybrid":
        complete = len(vec) >= min(depth, candidates)
    return SearchResult(hits, complete, (time.monotonic() - started) * 1000, plan)
