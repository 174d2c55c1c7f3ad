"""Search quality on several labelled sets, through `ragline eval`'s evaluator.

Builds the sets of bench/labelled.py (pydoc, stdlib, manpages and the held-out debian set),
ingests each into its own org with the configured embedder (MiniLM by default, inline
pipeline), and reports per set and mode MRR@10, recall@1/5/10 and p50/p95 latency. The
held-out set is reported separately: nothing in the search was chosen by looking at it.

    .venv/bin/python bench/search_quality.py [--sets pydoc,stdlib,manpages,debian]
        [--modes vector,text,hybrid] [--database-url URL]   # reuse a loaded database
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import exit_on_sigterm, record, scratch_database
from labelled import BUILDERS, LabelledSet, build


def say(message: str) -> None:
    print(f"[quality] {message}", file=sys.stderr, flush=True)


def ingest(labelled: LabelledSet) -> tuple[Any, int, float]:
    """The set's documents in org `q-<name>` (skipped when the org already has them)."""
    from ragline.db import engine as db
    from ragline.db import orgs, tenancy
    from ragline.db.models import Chunk, Document
    from ragline.ingest import documents, ingestion

    with db.owner_session() as s:
        org_id, _ = orgs.ensure_org(s, f"q-{labelled.name}")
    with tenancy.tenant_session(org_id) as s:
        have = tenancy.count(s, Document)
    started = time.monotonic()
    if have < len(labelled.documents):
        for i, (title, text) in enumerate(labelled.documents):
            with tenancy.tenant_session(org_id) as s:
                result = documents.create(s, documents.NewDocument(title=title, text=text))
            ingestion.start_pipeline(org_id, result)
            if i % 50 == 49:
                say(f"{labelled.name}: {i + 1}/{len(labelled.documents)} documents")
    elapsed = time.monotonic() - started
    with tenancy.tenant_session(org_id) as s:
        chunks = tenancy.count(s, Chunk)
    return org_id, chunks, elapsed


@contextmanager
def _database(url: str | None) -> Any:
    if url is None:
        with scratch_database() as scratch:
            yield scratch
        return
    from ragline.core.config import get_settings
    from ragline.db import engine as db
    from ragline.dev import migrate

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    db.reset_engines()
    migrate.upgrade("head")
    yield url


def run(sets: Sequence[str], modes: Sequence[str], url: str | None) -> dict[str, Any]:
    from ragline.core.config import get_settings
    from ragline.dev import evaluate

    os.environ.setdefault("QUEUE_BACKEND", "inline")
    out: dict[str, Any] = {}
    with _database(url):
        model = get_settings().embedding_provider
        for name in sets:
            labelled = build(name)
            say(f"{name}: {len(labelled.documents)} documents, {len(labelled.questions)} questions")
            org_id, chunks, elapsed = ingest(labelled)
            questions = [
                evaluate.Question(q["question"], tuple(q["relevant"])) for q in labelled.questions
            ]
            reports = evaluate.evaluate(org_id, questions, modes)
            print(f"\n{name}{' (held out)' if labelled.held_out else ''}", file=sys.stderr)
            print(evaluate.table(reports), file=sys.stderr)
            out[name] = {
                "held_out": labelled.held_out,
                "source": labelled.source,
                "documents": len(labelled.documents),
                "chunks": chunks,
                "questions": len(questions),
                "ingest_s": round(elapsed, 1),
                "embedding_provider": model,
                "modes": {r.mode: r.as_dict() for r in reports},
            }
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(BUILDERS))
    parser.add_argument("--modes", default="vector,text,hybrid")
    parser.add_argument("--database-url", default=None, help="reuse this database")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    sets = [s for s in args.sets.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    results = run(sets, modes, args.database_url)
    from ragline.retrieval import search

    payload = {
        "sets": {k: v for k, v in results.items() if not v["held_out"]},
        "held_out": {k: v for k, v in results.items() if v["held_out"]},
        "search": search.describe(),
    }
    if args.no_record:
        import json

        print(json.dumps(payload, indent=2))
    else:
        record("search_quality", payload)


if __name__ == "__main__":
    main()
