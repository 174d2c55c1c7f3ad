"""Extraction throughput: ragline.ingest.extract against the bare library calls and the other
candidates, on the same files (issue 13).

Files: generated ones (ragline.testing.documents: a PDF with an outline, a DOCX and an HTML
page with nested headings) and real ones when this machine has them (PDFs under
/usr/share/doc, the Node.js and Valgrind HTML manuals). Each (format, candidate) runs in a
fresh process, so its import time and peak RSS are its own; the time is the median of
`--repeats` passes over all files of the format. Prints one JSON object and appends it to
bench/results/extract.jsonl.

    .venv/bin/python bench/extract.py [--repeats 3] [--pdf-pages 120]
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record

REAL = {
    "pdf": ["/usr/share/doc/**/*.pdf"],
    "html": ["/usr/share/doc/nodejs/api/*.html", "/usr/share/doc/valgrind/html/*.html"],
    "docx": ["/usr/share/doc/**/*.docx"],
}
MAX_REAL_FILES = 40  # per format
MAX_REAL_BYTES = 5 * 1024 * 1024  # per file (the HTML limit)

# --- candidates: (format, name) → (import, run on bytes → (text, pages)) -------------------------


def _pdfium(data: bytes) -> tuple[str, int]:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    texts = []
    for index in range(len(pdf)):
        page = pdf[index]
        textpage = page.get_textpage()
        texts.append(textpage.get_text_range())
        textpage.close()
        page.close()
    count = len(pdf)
    pdf.close()
    return "\n".join(texts), count


def _pypdf(data: bytes) -> tuple[str, int]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def _selectolax(data: bytes) -> tuple[str, int]:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(data)
    tree.strip_tags(["script", "style", "noscript"])
    body = tree.body
    return (body.text(separator="\n") if body is not None else ""), 0


def _trafilatura(data: bytes) -> tuple[str, int]:
    import trafilatura

    text = trafilatura.extract(
        data, output_format="markdown", include_formatting=True, include_tables=True
    )
    return text or "", 0


def _python_docx(data: bytes) -> tuple[str, int]:
    import docx

    document = docx.Document(io.BytesIO(data))
    return "\n".join(paragraph.text for paragraph in document.paragraphs), 0


def _mammoth(data: bytes) -> tuple[str, int]:
    import mammoth

    return mammoth.convert_to_markdown(io.BytesIO(data)).value, 0


def _ragline(fmt_name: str) -> Callable[[bytes], tuple[str, int]]:
    def run(data: bytes) -> tuple[str, int]:
        from ragline.ingest.extract import Format, extract, page_ranges, probe

        fmt = Format(fmt_name)
        if fmt is not Format.PDF:
            return extract(data, fmt).text, 0
        # As the pipeline will: count the pages, then extract them range by range.
        count = probe(data, fmt).page_count or 0
        texts = [extract(data, fmt, pages=pages).text for pages in page_ranges(count)]
        return "\n\n".join(texts), count

    return run


IMPORTS = {
    "pypdfium2": "pypdfium2",
    "pypdf": "pypdf",
    "selectolax": "selectolax.lexbor",
    "trafilatura": "trafilatura",
    "python-docx": "docx",
    "mammoth": "mammoth",
    "ragline": "ragline.ingest.extract",
}
CANDIDATES: dict[str, dict[str, Callable[[bytes], tuple[str, int]]]] = {
    "pdf": {"ragline": _ragline("pdf"), "pypdfium2": _pdfium, "pypdf": _pypdf},
    "html": {"ragline": _ragline("html"), "selectolax": _selectolax, "trafilatura": _trafilatura},
    "docx": {"ragline": _ragline("docx"), "python-docx": _python_docx, "mammoth": _mammoth},
}
# What ragline's path calls underneath, so its import time includes the parser.
RAGLINE_PARSER = {"pdf": "pypdfium2", "html": "selectolax.lexbor", "docx": "docx"}


_HEADING_RE = re.compile(r"^#{1,6}[ \t]", re.MULTILINE)


def _headings(text: str) -> int:
    """Heading lines that would label sections in chunking (quality, not speed)."""
    return len(_HEADING_RE.findall(text))


def worker(fmt: str, name: str, folder: Path, repeats: int) -> dict[str, Any]:
    """Run one candidate over the files of one format (in its own process)."""
    files = sorted(folder.glob(f"*.{fmt}"))
    blobs = [path.read_bytes() for path in files]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    __import__(IMPORTS[name])
    if name == "ragline":
        __import__(RAGLINE_PARSER[fmt])
    import_s = time.perf_counter() - started
    run = CANDIDATES[fmt][name]
    times: list[float] = []
    chars = pages = headings = failures = 0
    for _ in range(repeats):
        chars = pages = headings = failures = 0
        started = time.perf_counter()
        for data in blobs:
            try:
                text, count = run(data)
            except Exception:
                failures += 1
                continue
            chars += len(text)
            pages += count
            headings += _headings(text)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    size = sum(len(data) for data in blobs)
    return {
        "files": len(blobs),
        "mb": round(size / 1e6, 3),
        "pages": pages or None,
        "seconds": round(seconds, 4),
        "mb_per_s": round(size / 1e6 / seconds, 2),
        "pages_per_s": round(pages / seconds, 1) if pages else None,
        "chars": chars,
        "heading_lines": headings,
        "failures": failures,
        "import_s": round(import_s, 3),
        "peak_rss_mb_over_start": round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1
        ),
    }


def write_files(folder: Path, pdf_pages: int) -> dict[str, dict[str, int]]:
    from ragline.testing import documents

    generated = {
        "generated-guide.pdf": documents.pdf_with_headings(pages=pdf_pages, fillers=6),
        "generated-handbook.docx": documents.docx_with_headings(repeat=40),
        "generated-guide.html": documents.html_page(script_kb=64, repeat=40),
    }
    for name, data in generated.items():
        (folder / name).write_bytes(data)
    counts: dict[str, dict[str, int]] = {}
    for fmt, patterns in REAL.items():
        found = sorted(
            {path for pattern in patterns for path in glob.glob(pattern, recursive=True)}
        )
        kept = [path for path in found if Path(path).stat().st_size <= MAX_REAL_BYTES]
        for index, path in enumerate(kept[:MAX_REAL_FILES]):
            (folder / f"real-{index:03d}.{fmt}").write_bytes(Path(path).read_bytes())
        counts[fmt] = {"real_files": min(len(kept), MAX_REAL_FILES), "generated_files": 1}
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pdf-pages", type=int, default=120)
    parser.add_argument("--worker", nargs=3, metavar=("FORMAT", "CANDIDATE", "FOLDER"))
    args = parser.parse_args()
    if args.worker:
        fmt, name, folder = args.worker
        print(json.dumps(worker(fmt, name, Path(folder), args.repeats)))
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rlx-") as tmp:
        folder = Path(tmp)
        files = write_files(folder, args.pdf_pages)
        for fmt, candidates in CANDIDATES.items():
            results[fmt] = {"files": files[fmt], "candidates": {}}
            for name in candidates:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--repeats",
                        str(args.repeats),
                        "--worker",
                        fmt,
                        name,
                        tmp,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[fmt]["candidates"][name] = json.loads(out.stdout.strip().splitlines()[-1])
            ours = results[fmt]["candidates"]["ragline"]
            bare_name = next(name for name in candidates if name != "ragline")
            bare = results[fmt]["candidates"][bare_name]
            results[fmt]["ragline_vs_bare"] = {
                "bare": bare_name,
                "throughput_ratio": round(ours["mb_per_s"] / bare["mb_per_s"], 2),
            }
    record("extract", {"repeats": args.repeats, "pdf_pages_generated": args.pdf_pages, **results})


if __name__ == "__main__":
    main()
