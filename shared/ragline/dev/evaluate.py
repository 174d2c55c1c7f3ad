"""`ragline eval`: retrieval quality of an org's search on a labelled question set.

Questions are JSON lines `{"question": str, "relevant": [document title or id, ...]}`. Each
question is searched (top 10 chunks, like the API's default) in every requested mode through
`ragline.retrieval.search.search` in a tenant session (RLS on); the ranked chunks become a
ranked list of distinct documents, and per mode we report:

- `mrr@10`: mean reciprocal rank of the first relevant document (0 when none is found);
- `recall@1/5/10`: share of a question's relevant documents among the first k documents,
  averaged over questions;
- `p50_ms`/`p95_ms`: client-side latency of the tenant transaction + search.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

TOP_K = 10
CUTOFFS = (1, 5, 10)


@dataclass(frozen=True)
class Question:
    question: str
    relevant: tuple[str, ...]


@dataclass
class ModeReport:
    mode: str
    questions: int
    mrr: float
    recall: dict[int, float]
    p50_ms: float
    p95_ms: float
    ranks: list[int | None] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "questions": self.questions}
        out["mrr@10"] = round(self.mrr, 4)
        out.update({f"recall@{k}": round(v, 4) for k, v in self.recall.items()})
        out.update({"p50_ms": round(self.p50_ms, 2), "p95_ms": round(self.p95_ms, 2)})
        return out


def load_questions(path: Path) -> list[Question]:
    """JSON lines of {"question", "relevant"}; also accepts a JSON list of [question, title]
    pairs (tests/data/pydoc_questions.json)."""
    text = path.read_text()
    if text.lstrip().startswith("["):
        return [Question(q, (t,)) for q, t in json.loads(text)]
    out: list[Question] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        relevant = item.get("relevant")
        if not isinstance(item.get("question"), str) or not isinstance(relevant, list):
            raise ValueError(f"{path}:{number}: expected {{'question': str, 'relevant': [...]}}")
        _check_question(item["question"], f"{path}:{number}")
        out.append(Question(item["question"], tuple(str(r) for r in relevant)))
    return out


def _check_question(question: str, where: str) -> None:
    """A question the search would refuse (blank, too long, NUL, a lone surrogate that a
    JSON escape decodes to) fails the load with its line, not the run midway."""
    from pydantic import ValidationError

    from ragline.retrieval.search import SearchRequest

    try:
        SearchRequest(query=question)
    except ValidationError as exc:
        raise ValueError(f"{where}: {exc.errors()[0]['msg']}") from None


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def score(
    ranked_docs: Sequence[set[str]], relevant: Sequence[str]
) -> tuple[int | None, dict[int, float]]:
    """Rank (1-based) of the first relevant document and recall at each cutoff. Each ranked
    document is the set of names it answers to (its id and its title)."""
    wanted = set(relevant)
    first: int | None = None
    found_at: dict[str, int] = {}
    for rank, names in enumerate(ranked_docs, start=1):
        hit = names & wanted
        if hit and first is None:
            first = rank
        for name in hit:
            found_at.setdefault(name, rank)
    recall = {
        k: len({n for n, r in found_at.items() if r <= k}) / max(1, len(wanted)) for k in CUTOFFS
    }
    return first, recall


Searcher = Callable[[uuid.UUID, str, str], list[tuple[str, str]]]


def library_searcher(engine: Engine | None = None, *, rerank: bool = False) -> Searcher:
    """Search through the library; returns (document id, title) per chunk, best first.
    `rerank`: with the configured reranker (RERANK_PROVIDER)."""
    from ragline.db import tenancy
    from ragline.retrieval import search

    def run(org_id: uuid.UUID, query: str, mode: str) -> list[tuple[str, str]]:
        req = search.SearchRequest(query=query, top_k=TOP_K, mode=mode, rerank=rerank)
        with tenancy.tenant_session(org_id, engine=engine) as session:
            result = search.search(session, req)
        return [(str(h.document_id), h.title) for h in result.hits]

    return run


def evaluate(
    org_id: uuid.UUID,
    questions: Sequence[Question],
    modes: Sequence[str],
    searcher: Searcher | None = None,
) -> list[ModeReport]:
    searcher = searcher or library_searcher()
    reports: list[ModeReport] = []
    for mode in modes:
        latencies: list[float] = []
        ranks: list[int | None] = []
        recalls: dict[int, list[float]] = {k: [] for k in CUTOFFS}
        for q in questions:
            started = time.perf_counter()
            chunks = searcher(org_id, q.question, mode)
            latencies.append((time.perf_counter() - started) * 1000)
            docs: list[set[str]] = []
            seen: set[str] = set()
            for doc_id, title in chunks:
                if doc_id not in seen:
                    seen.add(doc_id)
                    docs.append({doc_id, title})
            rank, recall = score(docs, q.relevant)
            ranks.append(rank)
            for k in CUTOFFS:
                recalls[k].append(recall[k])
        n = len(questions)
        reports.append(
            ModeReport(
                mode=mode,
                questions=n,
                mrr=sum(1.0 / r for r in ranks if r) / n if n else 0.0,
                recall={k: statistics.fmean(v) if v else 0.0 for k, v in recalls.items()},
                p50_ms=statistics.median(latencies) if latencies else 0.0,
                p95_ms=_percentile(latencies, 0.95) if latencies else 0.0,
                ranks=ranks,
            )
        )
    return reports


def table(reports: Sequence[ModeReport]) -> str:
    """A plain-text table, one row per mode."""
    head = ["mode", "questions", "MRR@10", "R@1", "R@5", "R@10", "p50 ms", "p95 ms"]
    rows = [
        [
            r.mode,
            str(r.questions),
            f"{r.mrr:.3f}",
            *(f"{r.recall[k]:.3f}" for k in CUTOFFS),
            f"{r.p50_ms:.1f}",
            f"{r.p95_ms:.1f}",
        ]
        for r in reports
    ]
    widths = [max(len(c) for c in col) for col in zip(head, *rows, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in [head, *rows]
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
