"""`make bench`: every benchmark at sizes that finish in about 15 minutes on 2 cores, then
bench/results/plot.png and the results tables of bench/README.md.

Each benchmark runs as its own process and appends one JSON object to
bench/results/<name>.jsonl; the tables and the plot are made from the newest object of each.

    .venv/bin/python bench/run_all.py             # the default pass (about 10 to 13 min on 2 cores)
    .venv/bin/python bench/run_all.py --quick     # tiny sizes: checks the plumbing (~3 min)
    .venv/bin/python bench/run_all.py --report    # only redraw the plot and tables
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH / "README.md"
BEGIN = "<!-- results:begin (written by bench/run_all.py) -->"
END = "<!-- results:end -->"

#: (script, arguments) of the default pass; sized for ~15 minutes on 2 shared cores.
DEFAULT = [
    ("search.py", ["--sizes", "10,100,1000,10000,100000", "--queries", "30", "--scaling"]),
    ("ingest.py", ["--chunks", "500"]),
    ("coldstart.py", ["--starts", "3", "--imports", "3"]),
    ("pathological_text.py", ["--mb", "1"]),
    ("attack.py", []),
]
QUICK = [
    (
        "search.py",
        [
            "--sizes",
            "10,100,1000",
            "--queries",
            "10",
            "--scaling",
            "--scaling-totals",
            "5000",
            "--peer-add-sample",
            "50",
        ],
    ),
    ("ingest.py", ["--chunks", "40"]),
    ("coldstart.py", ["--starts", "1", "--imports", "1", "--only", "health,search"]),
    ("pathological_text.py", ["--mb", "0.25"]),
    ("attack.py", ["--quick"]),
]


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def latest(name: str) -> dict[str, Any] | None:
    """The newest result of `name`; for search, the newest of the default shape (synthetic
    vectors, no filler orgs): the real-vector and 1M-row runs are recorded beside it; for
    coldstart, the newest measured in the package virtualenvs, when there is one."""
    path = RESULTS / f"{name}.jsonl"
    if not path.exists():
        return None
    results = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if name == "search":
        results = [
            r
            for r in results
            if r.get("vectors", "synthetic") == "synthetic" and not r.get("filler_orgs")
        ]
    if name == "coldstart":
        results = [r for r in results if r.get("venv") == "package"] or results
    return results[-1] if results else None


# --------------------------------------------------------------------------- tables


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def search_tables(res: dict[str, Any]) -> list[str]:
    out = [
        f"### Search (`search.jsonl`, {res['at']}, {res.get('pass', '?')} pass, "
        f"{res['queries_per_org']} queries per org, "
        f"{res['data']['rows']} chunks in one table)",
        "",
        "| org chunks | plan | ragline vector recall@10 | p50 ms | p95 ms | text p95 | hybrid p95 "
        "| peer (json) recall | peer (json) p95 | peer (column) recall | peer (column) p95 "
        "| p95 ragline ÷ peer (json) | HTTP text p50 | HTTP overhead p50 |",
        "|" + "---|" * 14,
    ]
    for org in res["orgs"]:
        lib = org["ragline"]
        peer = org.get("peer", {})
        pj, pc = peer.get("vector_json", {}), peer.get("vector_column", {})
        http = org.get("http", {}).get("text", {})
        plan = ",".join(lib["vector"].get("plans", {}))
        ratio = org.get("ratios", {}).get("vector_p95_ragline_over_peer_json")
        out.append(
            f"| {org['size']:,} | {plan} | {_f(lib['vector']['recall@10'])} "
            f"| {_f(lib['vector']['p50_ms'], 1)} | {_f(lib['vector']['p95_ms'], 1)} "
            f"| {_f(lib['text']['p95_ms'], 1)} | {_f(lib['hybrid']['p95_ms'], 1)} "
            f"| {_f(pj.get('recall@10'))} | {_f(pj.get('p95_ms'), 1)} "
            f"| {_f(pc.get('recall@10'))} | {_f(pc.get('p95_ms'), 1)} | {_f(ratio)} "
            f"| {_f(http.get('p50_ms'), 1)} | {_f(http.get('overhead_p50_ms'), 1)} |"
        )
    summaries = [org["summary"] for org in res["orgs"] if "summary" in org]
    if summaries:
        out += [
            "",
            f"#### Against hand-tuned plain pgvector ({res.get('vectors', 'synthetic')} vectors, "
            f"{res.get('table_rows', res['data']['rows']):,} rows in the table)",
            "",
            "| org chunks | plan | ragline p95 | plain p95 | ratio p95 | recall mean | recall min "
            "| plain recall mean | plain recall min | hybrid p95 | peer p95 |",
            "|" + "---|" * 11,
        ]
        for row in summaries:
            out.append(
                f"| {row['size']:,} | {row['plan']} | {_f(row['ragline_p95_ms'], 1)} "
                f"| {_f(row['plain_p95_ms'], 1)} | {_f(row['ratio_p95'])} "
                f"| {_f(row['recall_mean'])} | {_f(row['recall_min'])} "
                f"| {_f(row['plain_recall_mean'])} | {_f(row['plain_recall_min'])} "
                f"| {_f(row['hybrid_p95_ms'], 1)} | {_f(row['peer_p95_ms'], 1)} |"
            )
    peer = res.get("peer")
    if peer:
        add = peer.get("add_embeddings") or {}
        load = peer.get("load") or {}
        out += [
            "",
            f"Peer: langchain-postgres {peer.get('version')}. Its `add_embeddings` ran "
            f"{_f(add.get('rows_per_s'), 0)} rows/s on a {add.get('rows')}-row sample "
            f"(≈ {_f(add.get('extrapolated_full_load_s'), 0)} s for this table), so the table "
            f"was bulk-loaded with COPY; HNSW build {_f(load.get('hnsw_index_s'), 1)} s "
            f"(ragline: {_f(res['load'].get('ix_chunk_embedding_hnsw_s'), 1)} s).",
        ]
    if res.get("scaling"):
        out += [
            "",
            "#### Vector search as the table grows (`--scaling`)",
            "",
            "| chunks in table | org chunks | plan | recall@10 | p50 ms | p95 ms |",
            "|---|---|---|---|---|---|",
        ]
        for entry in res["scaling"]:
            for size, stats in entry["orgs"].items():
                out.append(
                    f"| {entry['total_chunks']:,} | {int(size):,} "
                    f"| {','.join(stats.get('plans', {}))} | {_f(stats['recall@10'])} "
                    f"| {_f(stats['p50_ms'], 1)} | {_f(stats['p95_ms'], 1)} |"
                )
    return out


def ingest_table(res: dict[str, Any]) -> list[str]:
    pipe, bare = res["pipeline"], res["bare_embedder"]
    stages = pipe["stages_ms"]
    return [
        f"### Ingestion (`ingest.jsonl`, {res['at']}, {res.get('pass', '?')} pass, "
        f"{res['embedder']})",
        "",
        "| documents | chunks | pipeline s | pipeline chunks/s | bare embedder chunks/s "
        "| pipeline ÷ bare | chunk_ms sum | embed_ms sum | total_ms median |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {res['documents']} | {res['chunks']} | {_f(pipe['seconds'], 1)} "
        f"| {_f(pipe['chunks_per_s'])} | {_f(bare['chunks_per_s'])} "
        f"| {_f(res['ratio_pipeline_over_bare'])} | {_f(stages['chunk_ms']['sum'], 0)} "
        f"| {_f(stages['embed_ms']['sum'], 0)} | {_f(stages['total_ms']['median'], 0)} |",
    ]


def coldstart_table(res: dict[str, Any]) -> list[str]:
    out = [
        f"### Cold start (`coldstart.jsonl`, {res['at']}, {res.get('pass', '?')} pass, "
        f"median of {res['starts']} starts, "
        f"{res['imports']} imports, {res.get('venv', 'current')} venv)",
        "",
        "| function | first request | first response s | ÷ hello-world | import s "
        "| ÷ hello-world | heaviest imports (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in res["functions"].items():
        heavy = ", ".join(f"{n} {ms:.0f}" for n, ms in row["heaviest_imports_ms"][:3])
        out.append(
            f"| {name} | {row['request']} → {','.join(map(str, row['status']))} "
            f"| {_f(row['first_response_s'])} | {_f(row.get('first_response_ratio_vs_hello'))} "
            f"| {_f(row['import_s'])} | {_f(row.get('import_ratio_vs_hello'))} | {heavy} |"
        )
    return out


def write_readme() -> None:
    parts: list[str] = []
    for name, render in (
        ("search", search_tables),
        ("ingest", ingest_table),
        ("coldstart", coldstart_table),
    ):
        res = latest(name)
        parts += (render(res) if res else [f"### {name}: no result yet"]) + [""]
    block = "\n".join([BEGIN, "", *parts, END])
    text = README.read_text() if README.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n## Results\n\n" + block + "\n"
    README.write_text(text)


# --------------------------------------------------------------------------- plot


def write_plot() -> Path | None:
    res = latest("search")
    if res is None:
        return None
    try:
        import matplotlib
    except ImportError:  # `make bench` installs it; --report works without it
        say("matplotlib missing: plot not redrawn")
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    sizes = [o["size"] for o in res["orgs"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    series: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
        ("ragline vector", lambda o: o["ragline"]["vector"], "C0", "-"),
        ("ragline hybrid", lambda o: o["ragline"]["hybrid"], "C0", ":"),
        ("ragline text", lambda o: o["ragline"]["text"], "C0", "--"),
        ("peer vector (org in JSON)", lambda o: o.get("peer", {}).get("vector_json"), "C3", "-"),
        ("peer vector (org column)", lambda o: o.get("peer", {}).get("vector_column"), "C1", "-"),
        ("peer hybrid (org column)", lambda o: o.get("peer", {}).get("hybrid_column"), "C1", ":"),
    ]
    for label, pick, color, style in series:
        stats = [pick(o) for o in res["orgs"]]
        if any(s is None for s in stats):
            continue
        if "vector" in label and "hybrid" not in label:
            left.plot(
                sizes, [s["recall@10"] for s in stats], style, color=color, marker="o", label=label
            )
        right.plot(sizes, [s["p95_ms"] for s in stats], style, color=color, marker="o", label=label)
    left.set(
        xscale="log",
        ylim=(0, 1.05),
        xlabel="org size (chunks, one shared table)",
        ylabel="recall@10 vs exact",
        title="Vector recall@10 within the org",
    )
    right.set(
        xscale="log",
        yscale="log",
        xlabel="org size (chunks, one shared table)",
        ylabel="p95 latency (ms)",
        title="p95 latency per query",
    )
    right.yaxis.set_major_formatter(ScalarFormatter())
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"ragline vs langchain-postgres — synthetic 384-d data, {res['data']['rows']:,} chunks, "
        f"{res['at']}",
        fontsize=10,
    )
    fig.tight_layout()
    out = RESULTS / "plot.png"
    tmp = RESULTS / "plot.png.tmp"
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out


# --------------------------------------------------------------------------- main


def _forward_to(proc: subprocess.Popen[bytes]) -> Callable[[int, Any], None]:
    def handler(_signum: int, _frame: Any) -> None:
        proc.terminate()

    return handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check plumbing")
    parser.add_argument("--report", action="store_true", help="only redraw plot and tables")
    parser.add_argument("--only", default="", help="comma-separated: search,ingest,coldstart")
    args = parser.parse_args()

    started = time.monotonic()
    steps: list[dict[str, Any]] = []
    if not args.report:
        plan = QUICK if args.quick else DEFAULT
        pass_name = "quick" if args.quick else "default"
        for script, script_args in plan:
            name = script.removesuffix(".py")
            if args.only and name not in args.only.split(","):
                continue
            say(f"{script} {' '.join(script_args)}")
            began = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, str(BENCH / script), *script_args],
                stdout=subprocess.DEVNULL,  # each script records its own result
                env={**os.environ, "PYTHONUNBUFFERED": "1", "BENCH_PASS": pass_name},
            )
            # A SIGTERM to this runner reaches the benchmark, which stops its servers.
            signal.signal(signal.SIGTERM, _forward_to(proc))
            proc.wait()
            steps.append(
                {
                    "script": script,
                    "seconds": round(time.monotonic() - began, 1),
                    "exit": proc.returncode,
                }
            )
            say(f"{script}: exit {proc.returncode} after {steps[-1]['seconds']} s")
    plot = write_plot()
    write_readme()
    total = round(time.monotonic() - started, 1)
    summary = {
        "steps": steps,
        "total_s": total,
        "plot": str(plot) if plot else None,
        "readme": str(README),
    }
    print(json.dumps(summary, indent=2))
    if total > 900 and not args.report:
        say(f"took {total:.0f}s, over the 15-minute budget: lower the sizes in DEFAULT")
    if any(s["exit"] for s in steps):
        sys.exit(1)


if __name__ == "__main__":
    main()
