"""Re-embedding throughput against plain ingestion of the same chunks (issue 17).

In a scratch embedded database, with the inline queue (stages run in-process, as one worker):

- plain: an org whose active space is the target model ingests the documents (chunk, embed,
  finalize: what a new org pays);
- re-embed: another org ingests the same documents with the base model (not measured), then
  `reembed.start` builds the target space from the stored chunks (embed tasks carrying the
  space: no parse, no chunking).

Both sides embed the same chunks with the same model into the same vector table, so the ratio
(re-embed chunks/s ÷ plain chunks/s, goal ≥ 0.9) is the cost of the build's own plumbing.

    .venv/bin/python bench/reembed.py [--chunks 600] [--provider hashing --model hashing-v1
        --dimension 256] [--base-provider hashing --base-model hashing-v1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import exit_on_sigterm, record, scratch_database


def say(message: str) -> None:
    print(f"[reembed] {message}", file=sys.stderr, flush=True)


def corpus(target_chunks: int) -> list[tuple[str, str]]:
    """Python's reference topics, then "Variant k." copies, until ~`target_chunks` chunks."""
    from ragline.core.config import get_settings
    from ragline.dev.corpus import pydoc_topics
    from ragline.ingest.chunking import split_document

    s = get_settings()
    docs: list[tuple[str, str]] = []
    total, copy = 0, 0
    while total < target_chunks:
        for title, text in pydoc_topics():
            body = text if copy == 0 else f"Variant {copy}.\n\n{text}"
            total += len(
                split_document(
                    body, max_tokens=s.chunk_tokens, overlap_tokens=s.chunk_overlap_tokens
                )
            )
            docs.append((f"{title} {copy}", body))
            if total >= target_chunks:
                break
        copy += 1
    return docs


def ingest(org_id: uuid.UUID, docs: list[tuple[str, str]]) -> None:
    from ragline.db import tenancy
    from ragline.ingest import documents, ingestion

    for title, text in docs:
        with tenancy.tenant_session(org_id) as session:
            made = documents.create(session, documents.NewDocument(title=title, text=text))
        ingestion.start_pipeline(org_id, made)


def chunk_count(org_id: uuid.UUID) -> int:
    from ragline.db import tenancy
    from ragline.db.models import Chunk

    with tenancy.tenant_session(org_id) as session:
        return tenancy.count(session, Chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=600)
    parser.add_argument("--provider", default="hashing")
    parser.add_argument("--model", default="hashing-v1")
    parser.add_argument("--dimension", type=int, default=256)
    parser.add_argument("--base-provider", default="hashing")
    parser.add_argument("--base-model", default="hashing-v1")
    args = parser.parse_args()
    exit_on_sigterm()
    os.environ.update({"QUEUE_BACKEND": "inline", "EMBEDDING_PROVIDER": args.base_provider})
    if "hashing" in (args.provider, args.base_provider):
        os.environ["ENVIRONMENT"] = "test"  # the hashing embedder is a test double
    if args.base_provider == "minilm":
        os.environ["MINILM_VARIANT"] = args.base_model

    with scratch_database():
        from ragline.db import orgs
        from ragline.db.engine import owner_session
        from ragline.db.tenancy import tenant_session
        from ragline.ingest import reembed
        from ragline.retrieval import spaces

        with owner_session() as session:
            plain_org, _ = orgs.ensure_org(session, "plain")
            rebuilt_org, _ = orgs.ensure_org(session, "rebuilt")
        docs = corpus(args.chunks)
        # Warm both models (their load is not what is measured).
        with tenant_session(plain_org) as session:
            space, _ = spaces.start_shadow(session, args.provider, args.model, args.dimension)
        spaces.embedder_for(space).embed(["warm up"])
        reembed.cutover(plain_org)  # an empty org: nothing missing; the target is active

        say(f"plain ingestion of {len(docs)} documents with {args.provider}/{args.model}")
        started = time.perf_counter()
        ingest(plain_org, docs)
        plain_s = time.perf_counter() - started
        chunks = chunk_count(plain_org)

        say(f"base ingestion with {args.base_provider}/{args.base_model} (not measured)")
        ingest(rebuilt_org, docs)
        assert chunk_count(rebuilt_org) == chunks
        say("re-embedding the stored chunks")
        started = time.perf_counter()
        build = reembed.start(rebuilt_org, args.provider, args.model, args.dimension)
        reembed_s = time.perf_counter() - started
        (status,) = [p for p in reembed.status(rebuilt_org) if p["state"] == "shadow"]
        assert status["missing"] == 0, status

    result: dict[str, Any] = {
        "provider": f"{args.provider}/{args.model}",
        "dimension": args.dimension,
        "base": f"{args.base_provider}/{args.base_model}",
        "documents": len(docs),
        "chunks": chunks,
        "embed_tasks": build.tasks,
        "plain_s": round(plain_s, 3),
        "reembed_s": round(reembed_s, 3),
        "plain_chunks_per_s": round(chunks / plain_s, 1),
        "reembed_chunks_per_s": round(chunks / reembed_s, 1),
        "ratio": round(plain_s / reembed_s, 3),
        "goal": 0.9,
    }
    record("reembed", result)


if __name__ == "__main__":
    main()
