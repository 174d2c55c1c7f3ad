"""Real MiniLM vectors for the search benchmark: a pool of real text chunks and real queries.

Chunks: paragraphs (~500 characters) of section-1 manual pages, Debian package descriptions,
standard-library docstrings and Python's reference topics, all on this machine. Queries: the
one-line summaries those texts carry (man NAME lines, package synopses, docstring summary
lines), embedded as queries. Both embedded with ragline's MiniLM (ONNX) and cached in
`bench/.cache/minilm_pool_<n>.npz`, since embedding runs ~20-40 chunks/s on 2 cores.

    .venv/bin/python bench/real_vectors.py --chunks 12000   # builds the cache once
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CACHE = Path(__file__).resolve().parent / ".cache"
CHUNK_CHARS = 500


def _paragraph_chunks(text: str) -> list[str]:
    out: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if len(para) < 40:
            continue
        if current and len(current) + len(para) > CHUNK_CHARS:
            out.append(current)
            current = ""
        current = f"{current} {para}".strip()
        while len(current) > 2 * CHUNK_CHARS:
            out.append(current[:CHUNK_CHARS])
            current = current[CHUNK_CHARS:]
    if current:
        out.append(current)
    return out


def texts(limit: int) -> tuple[list[str], list[str]]:
    """(chunks, queries) from the public text on this machine, deterministic."""
    import labelled

    chunks: list[str] = []
    queries: list[str] = []
    sets = [labelled.debian(), labelled.stdlib(), labelled.pydoc()]
    for s in sets:
        for _, body in s.documents:
            chunks.extend(_paragraph_chunks(body))
        queries.extend(q["question"] for q in s.questions)
    pages = sorted(p for p in Path("/usr/share/man/man1").glob("*.1*") if p.is_file())
    for path in labelled._spread(pages, 8000):
        if len(chunks) >= limit:
            break
        text = labelled._render_man(path)
        match = re.search(r"^NAME\n(.*?)\n\n", text, re.S | re.M)
        if match:
            _, sep, description = " ".join(match.group(1).split()).partition(" - ")
            if sep and len(description.split()) >= 3:
                queries.append(description)
        chunks.extend(_paragraph_chunks(text))
    return list(dict.fromkeys(chunks))[:limit], list(dict.fromkeys(queries))


def load_pool(limit: int) -> dict[str, Any]:
    """The cached pool (built when missing): vectors, texts, query vectors and texts."""
    path = CACHE / f"minilm_pool_{limit}.npz"
    if not path.exists():
        build(limit)
    data = np.load(path)
    meta = json.loads((CACHE / f"minilm_pool_{limit}.json").read_text())
    return {
        "vectors": data["vectors"],
        "query_vectors": data["query_vectors"],
        "texts": meta["texts"],
        "queries": meta["queries"],
        "model": meta["model"],
    }


def build(limit: int) -> None:
    from ragline.core.config import Settings
    from ragline.retrieval.embeddings import get_embedder

    chunks, queries = texts(limit)
    embedder = get_embedder(Settings(embedding_provider="minilm"))
    started = time.monotonic()
    vectors: list[list[float]] = []
    for i in range(0, len(chunks), 64):
        vectors.extend(embedder.embed(chunks[i : i + 64], kind="document"))
        if i % 1024 == 0:
            print(f"[real] embedded {i}/{len(chunks)}", file=sys.stderr, flush=True)
    query_vectors = embedder.embed(queries, kind="query")
    CACHE.mkdir(exist_ok=True)
    np.savez(
        CACHE / f"minilm_pool_{limit}.npz",
        vectors=np.asarray(vectors, dtype=np.float32),
        query_vectors=np.asarray(query_vectors, dtype=np.float32),
    )
    meta = {"texts": chunks, "queries": queries, "model": embedder.name}
    (CACHE / f"minilm_pool_{limit}.json").write_text(json.dumps(meta))
    print(
        f"[real] {len(chunks)} chunks + {len(queries)} queries in "
        f"{time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=12_000)
    build(parser.parse_args().chunks)
