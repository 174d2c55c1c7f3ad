"""Search quality on a labelled set: questions about Python whose answer topic is known.

Ingests `pydoc_data.topics` with the default embedder (inline pipeline), then reports, per
mode, the document-level MRR@10 and hit@1/@5 of the labelled questions.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record, scratch_database

QUESTIONS = Path(__file__).resolve().parents[1] / "tests" / "data" / "pydoc_questions.json"


def evaluate(org_id: Any, titles: dict[str, str], questions: list[list[str]]) -> dict[str, Any]:
    from ragline.db import tenancy
    from ragline.retrieval import search

    out: dict[str, Any] = {}
    for mode in ("vector", "text", "hybrid"):
        rr, hit1, hit5 = [], 0, 0
        for question, topic in questions:
            with tenancy.tenant_session(org_id) as s:
                res = search.search(s, search.SearchRequest(query=question, top_k=10, mode=mode))
            docs: list[str] = []
            for h in res.hits:
                if str(h.document_id) not in docs:
                    docs.append(str(h.document_id))
            target = titles[topic]
            rank = docs.index(target) + 1 if target in docs else None
            rr.append(1.0 / rank if rank else 0.0)
            hit1 += rank == 1
            hit5 += rank is not None and rank <= 5
        n = len(questions)
        out[mode] = {"mrr@10": round(sum(rr) / n, 4), "hit@1": hit1 / n, "hit@5": hit5 / n}
    return out


def ingest_corpus(org_slug: str = "bench") -> tuple[Any, dict[str, str], float, int]:
    from ragline.db import engine as db
    from ragline.db import orgs, tenancy
    from ragline.db.models import Chunk
    from ragline.dev.corpus import pydoc_topics
    from ragline.ingest import documents, ingestion

    with db.owner_session() as s:
        org_id, _ = orgs.ensure_org(s, org_slug)
    titles: dict[str, str] = {}
    started = time.monotonic()
    for title, text in pydoc_topics():
        with tenancy.tenant_session(org_id) as s:
            result = documents.create(s, documents.NewDocument(title=title, text=text))
        ingestion.start_pipeline(org_id, result)
        titles[title] = str(result.document.id)
    elapsed = time.monotonic() - started
    with tenancy.tenant_session(org_id) as s:
        chunks = tenancy.count(s, Chunk)
    return org_id, titles, elapsed, chunks


def main() -> None:
    import os

    os.environ.setdefault("QUEUE_BACKEND", "inline")
    with scratch_database():
        org_id, titles, elapsed, chunks = ingest_corpus()
        questions = json.loads(QUESTIONS.read_text())
        quality = evaluate(org_id, titles, questions)
    record(
        "search_quality",
        {
            "corpus": "pydoc_data.topics",
            "documents": len(titles),
            "chunks": chunks,
            "questions": len(questions),
            "ingest_inline_s": round(elapsed, 1),
            "modes": quality,
        },
    )


if __name__ == "__main__":
    main()
