"""How the hybrid fusion was chosen (issue 14): candidate fusions scored on the labelled sets.

Needs a database loaded by bench/search_quality.py (`--database-url`, orgs `q-<set>`). Per
question it fetches the lists once — vector top 50 (cosine), full text with every term
(`strict`, ts_rank_cd) and the any-term fill (`loose`) — then scores each candidate fusion
offline: document-level MRR@10 of the fused top 10 chunks. The held-out set (debian) is
printed apart and was not looked at to choose.

    .venv/bin/python bench/fusion_tuning.py --database-url URL [--sets pydoc,stdlib,manpages]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from labelled import HELD_OUT, build

DEPTH = 50
TOP_K = 10


def _lists(org_id: uuid.UUID, query: str) -> dict[str, Any]:
    from ragline.db import tenancy
    from ragline.retrieval import search
    from ragline.retrieval.embeddings import get_embedder

    embedder = get_embedder()
    with tenancy.tenant_session(org_id) as session:
        where = search._conditions(session, embedder.name, None)
        search._settings(session, search.HNSW_EF_SEARCH)
        vector = embedder.embed([query], kind="query")[0]
        vec, _, _ = search.vector_hits(session, vector, where, DEPTH)
        strict = search.text_hits(session, query, where, DEPTH, strong_only=True)
        full = search.text_hits(session, query, where, DEPTH)
    return {"vector": vec, "strict": strict, "full": full}


def _docs(hits: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for h in hits[:TOP_K]:
        if h.title not in out:
            out.append(h.title)
    return out


def _rr(ranked: list[str], relevant: Sequence[str]) -> float:
    for i, title in enumerate(ranked, start=1):
        if title in relevant:
            return 1.0 / i
    return 0.0


def candidates() -> dict[str, Callable[[dict[str, Any]], list[Any]]]:
    from ragline.retrieval import search

    out: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
        "vector": lambda x: x["vector"],
        "text": lambda x: x["full"],
        "rrf(vector, full) [old default]": lambda x: search.fuse_rrf(x["vector"], x["full"], 50),
        "rrf(vector, strict)": lambda x: search.fuse_rrf(x["vector"], x["strict"], 50),
    }
    for w in (0.5, 0.3):
        out[f"rrf w_text={w} (vector, full)"] = lambda x, w=w: search.fuse_rrf(
            x["vector"], x["full"], 50, text_weight=w
        )
    for alpha in (0.9, 0.8, 0.7, 0.6, 0.5):
        out[f"convex a={alpha} (vector, full)"] = lambda x, a=alpha: search.fuse_convex(
            x["vector"], x["full"], 50, alpha=a
        )
        out[f"convex a={alpha} (vector, strict)"] = lambda x, a=alpha: search.fuse_convex(
            x["vector"], x["strict"], 50, alpha=a
        )
    for alpha in (0.8, 0.7, 0.6):
        # Text scores only for chunks the vector list already holds (no text-only additions):
        # what a large org can afford under RLS, where the GIN index is unusable.
        out[f"convex a={alpha} (vector, strict within vector top 50)"] = lambda x, a=alpha: (
            search.fuse_convex(
                x["vector"],
                [h for h in x["strict"] if h.chunk_id in {v.chunk_id for v in x["vector"]}],
                50,
                alpha=a,
            )
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--sets", default="pydoc,stdlib,manpages,debian")
    args = parser.parse_args(argv)
    os.environ["DATABASE_URL"] = args.database_url
    from ragline.core.config import get_settings
    from ragline.db import engine as db
    from ragline.db import orgs

    get_settings.cache_clear()
    db.reset_engines()
    fusions = candidates()
    table: dict[str, dict[str, float]] = {}
    for name in args.sets.split(","):
        labelled = build(name)
        with db.owner_session() as s:
            org_id = orgs.org_id_by_slug(s, f"q-{name}")
        assert org_id is not None, f"load {name} with bench/search_quality.py first"
        lists = [_lists(org_id, q["question"]) for q in labelled.questions]
        for fusion, fn in fusions.items():
            scores = [
                _rr(_docs(fn(item)), q["relevant"])
                for item, q in zip(lists, labelled.questions, strict=True)
            ]
            table.setdefault(fusion, {})[name] = round(sum(scores) / len(scores), 4)
    sets = args.sets.split(",")
    tuned = [s for s in sets if s not in HELD_OUT]
    width = max(len(f) for f in table)
    print(f"{'fusion'.ljust(width)}  " + "  ".join(f"{s:>8}" for s in sets) + "  mean(tuned)")
    for fusion, row in table.items():
        mean = sum(row[s] for s in tuned) / len(tuned)
        cells = "  ".join(f"{row[s]:8.3f}" for s in sets)
        print(f"{fusion.ljust(width)}  {cells}  {mean:8.3f}")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
