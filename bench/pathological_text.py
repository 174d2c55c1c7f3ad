"""Chunking time per MB on adversarial text (issue 11, finding 2): runs of every punctuation
and whitespace class, heading and underline storms, one giant word, and prose for reference.

Each input is split at two sizes; `s_per_mb` is the time at the larger size divided by its
size, `growth` the time ratio of the two sizes divided by their size ratio (about 1 for a
linear splitter; the backtracking regex this guards against gave ~4 per doubling).
`ok` when every class stays under `--max-s-per-mb` and `--max-growth`.

    .venv/bin/python bench/pathological_text.py [--mb 1] [--max-s-per-mb 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record

#: name → repeating unit. Every ASCII punctuation character alone, the sentence marks in
#: combinations, whitespace classes, Markdown/RST structure storms and a reference.
CLASSES: dict[str, str] = {
    **{f"run {c!r}": c for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
    "marks .!?": ".!?",
    "dots and quotes": '."',
    "dot space": ". ",
    "initials": "A. ",
    "abbreviation chain": "e.g.",
    "spaces": " ",
    "tabs": "\t",
    "newlines": "\n",
    "crlf": "\r\n",
    "unicode spaces": "\u3000\u00a0\u2003",
    "atx headings": "# h\n",
    "closing hashes": "# h #" + " #" * 20 + "\n",
    "setext underlines": "x\n===\n",
    "fences": "```\n",
    "indented lines": "   x\n",
    "one giant word": "a",
    "cjk": "\u6f22\u5b57",
    "prose": "The quick brown fox jumps over the lazy dog. ",
}
#: Inputs that grow one line (or one run) instead of repeating a unit: the shape that caught
#: the heading regex (`# a` + blanks + `x`).
GROWING: dict[str, Callable[[int], str]] = {
    "one heading line of blanks": lambda n: "# a" + " " * (n - 4) + "x",
    "one line of blanks and hashes": lambda n: "# a " + "# " * ((n - 4) // 2),
    "prose around a blank run": lambda n: "alpha" + " " * (n - 10) + "omega",
    "one-word paragraphs": lambda n: "a\n\n" * (n // 3),
}


def timed(text: str) -> tuple[float, int]:
    from ragline.ingest.chunking import split_document

    started = time.perf_counter()
    chunks = split_document(text)
    return time.perf_counter() - started, len(chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=1.0, help="larger size, in MB")
    parser.add_argument("--max-s-per-mb", type=float, default=10.0)
    parser.add_argument("--max-growth", type=float, default=2.5)
    args = parser.parse_args()
    big = int(args.mb * (1 << 20))
    small = big // 4
    rows = []
    makers: dict[str, Callable[[int], str]] = {
        name: (lambda n, unit=unit: unit * (n // len(unit))) for name, unit in CLASSES.items()
    }
    makers.update(GROWING)
    for name, make in makers.items():
        t_small, _ = timed(make(small))
        t_big, n_chunks = timed(make(big))
        # Below ~50 ms the ratio is timer noise, not growth: reported as 1.
        growth = (t_big / max(t_small, 1e-4)) / (big / small) if t_big >= 0.05 else 1.0
        rows.append(
            {
                "class": name,
                "s_per_mb": round(t_big / (big / (1 << 20)), 3),
                "growth": round(growth, 2),
                "chunks": n_chunks,
            }
        )
        print(
            f"[bench] {name:22} {rows[-1]['s_per_mb']:7.3f} s/MB  growth {growth:.2f}",
            file=sys.stderr,
            flush=True,
        )
    worst = max(rows, key=lambda r: r["s_per_mb"])
    record(
        "pathological_text",
        {
            "mb": args.mb,
            "classes": rows,
            "worst_class": worst["class"],
            "worst_s_per_mb": worst["s_per_mb"],
            "max_growth": max(r["growth"] for r in rows),
            "bound_s_per_mb": args.max_s_per_mb,
            "ok": all(
                r["s_per_mb"] <= args.max_s_per_mb and r["growth"] <= args.max_growth for r in rows
            ),
        },
    )


if __name__ == "__main__":
    main()
