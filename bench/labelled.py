"""Labelled retrieval sets built from public text that ships with this machine (no network).

Each builder returns `LabelledSet(documents=[(title, text)], questions=[{"question",
"relevant": [title]}])`. In every new set the question is a one-line summary written by the
text's own authors and the document is the rest of the text *without* that line, so a
question never appears verbatim in its answer:

- `pydoc`: Python's reference topics (`pydoc_data.topics`, the demo corpus) and the
  hand-written questions of tests/data/pydoc_questions.json. The fusion was first tuned on it.
- `stdlib`: docstrings of Python standard-library functions and classes: question = the
  docstring's summary line, document = the rest of the docstring, title = qualified name.
- `manpages`: section-1 manual pages under /usr/share/man: question = the NAME line's
  description ("list directory contents"), document = the rendered page without NAME,
  title = the command.
- `debian` (**held out**: never used to choose anything): Debian package descriptions from
  /var/lib/dpkg/status: question = the synopsis, document = the long description, title =
  the package.

Deterministic: the same machine gives the same sets. `python bench/labelled.py OUT_DIR`
writes `<name>.jsonl` (questions) and `<name>.docs.jsonl` (documents) for `ragline eval`.
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYDOC_QUESTIONS = ROOT / "tests" / "data" / "pydoc_questions.json"
HELD_OUT = ("debian",)
#: Cap per set: embedding runs ~20 chunks/s on 2 cores.
MAX_QUESTIONS = 150
MAX_DOC_CHARS = 3000


@dataclass
class LabelledSet:
    name: str
    documents: list[tuple[str, str]]
    questions: list[dict[str, Any]]
    source: str

    @property
    def held_out(self) -> bool:
        return self.name in HELD_OUT


def _spread(items: list[Any], count: int) -> list[Any]:
    """`count` items evenly spaced over a sorted list (deterministic, covers the whole range)."""
    if len(items) <= count:
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def _words(text: str) -> int:
    return len(re.findall(r"[A-Za-z]{2,}", text))


def pydoc() -> LabelledSet:
    from pydoc_data.topics import topics

    pairs: list[list[str]] = json.loads(PYDOC_QUESTIONS.read_text())
    return LabelledSet(
        "pydoc",
        [(t, topics[t]) for t in sorted(topics)],
        [{"question": q, "relevant": [t]} for q, t in pairs],
        "pydoc_data.topics + tests/data/pydoc_questions.json",
    )


STDLIB_MODULES = (  # noqa: SIM905 (one string reads better)
    "argparse bisect calendar collections contextlib copy csv datetime decimal difflib "
    "email.utils fnmatch fractions functools gettext glob gzip hashlib heapq hmac html "
    "inspect ipaddress itertools json logging mimetypes operator os os.path pathlib pickle "
    "platform pprint queue random re secrets shlex shutil socket sqlite3 statistics string "
    "struct subprocess tarfile tempfile textwrap threading timeit tokenize traceback "
    "typing unicodedata urllib.parse urllib.request uuid warnings weakref zipfile zlib"
).split()


def stdlib() -> LabelledSet:
    seen_summaries: set[str] = set()
    entries: list[tuple[str, str, str]] = []
    for module_name in STDLIB_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, obj in sorted(vars(module).items()):
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            doc = inspect.getdoc(obj) or ""
            summary, _, body = doc.partition("\n")
            summary, body = summary.strip(), body.strip()
            if _words(summary) < 4 or _words(body) < 25 or summary in seen_summaries:
                continue
            seen_summaries.add(summary)
            entries.append((f"{module_name}.{name}", summary, body[:MAX_DOC_CHARS]))
    chosen = _spread(entries, MAX_QUESTIONS)
    return LabelledSet(
        "stdlib",
        [(title, body) for title, _, body in chosen],
        [{"question": summary, "relevant": [title]} for title, summary, _ in chosen],
        f"docstrings of {len(STDLIB_MODULES)} standard-library modules (Python "
        f"{sys.version_info.major}.{sys.version_info.minor}): summary line → rest",
    )


def _render_man(path: Path) -> str:
    source = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    out = subprocess.run(
        ["groff", "-mandoc", "-Tutf8", "-P-cbou", "-rLL=100n"],
        input=source,
        capture_output=True,
        timeout=20,
        check=False,
    )
    return out.stdout.decode("utf-8", "replace")


def manpages(folder: Path = Path("/usr/share/man/man1")) -> LabelledSet:
    candidates = sorted(
        p for p in folder.glob("*.1*") if p.is_file() and 2_000 < p.stat().st_size < 40_000
    )
    seen: set[str] = set()
    entries: list[tuple[str, str, str]] = []
    for path in _spread(candidates, MAX_QUESTIONS * 3):
        text = _render_man(path)
        match = re.search(r"^NAME\n(.*?)\n\n(?=[A-Z])", text, re.S | re.M)
        if not match:
            continue
        name_line = " ".join(match.group(1).split())
        command, sep, description = name_line.partition(" - ")
        description = description.strip()
        if not sep or _words(description) < 3 or description.lower() in seen:
            continue
        body = (text[: match.start()] + text[match.end() :]).strip()
        body = re.sub(r"\n{3,}", "\n\n", body)
        if _words(body) < 60:
            continue
        seen.add(description.lower())
        title = command.split(",")[0].strip()
        entries.append((title, description, body[:MAX_DOC_CHARS]))
    chosen = _spread(entries, MAX_QUESTIONS)
    return LabelledSet(
        "manpages",
        [(title, body) for title, _, body in chosen],
        [{"question": d, "relevant": [t]} for t, d, _ in chosen],
        "section-1 manual pages in /usr/share/man (groff): NAME description → rest of the page",
    )


def debian(status: Path = Path("/var/lib/dpkg/status")) -> LabelledSet:
    entries: list[tuple[str, str, str]] = []
    seen_synopsis: set[str] = set()
    seen_body: set[str] = set()
    for block in status.read_text(errors="replace").split("\n\n"):
        package = re.search(r"^Package: (.+)$", block, re.M)
        description = re.search(r"^Description: (.*)\n((?: .*\n?)*)", block, re.M)
        if not package or not description:
            continue
        synopsis = description.group(1).strip()
        lines = [line[1:] for line in description.group(2).splitlines()]
        body = "\n".join("" if line.strip() == "." else line for line in lines).strip()
        if _words(synopsis) < 3 or _words(body) < 25:
            continue
        if synopsis.lower() in seen_synopsis or body in seen_body:
            continue
        seen_synopsis.add(synopsis.lower())
        seen_body.add(body)
        entries.append((package.group(1).strip(), synopsis, body[:MAX_DOC_CHARS]))
    entries.sort()
    chosen = _spread(entries, MAX_QUESTIONS)
    return LabelledSet(
        "debian",
        [(title, body) for title, _, body in chosen],
        [{"question": s, "relevant": [t]} for t, s, _ in chosen],
        "Debian package descriptions in /var/lib/dpkg/status: synopsis → long description",
    )


BUILDERS = {"pydoc": pydoc, "stdlib": stdlib, "manpages": manpages, "debian": debian}


def build(name: str) -> LabelledSet:
    return BUILDERS[name]()


def write(labelled: LabelledSet, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    questions = folder / f"{labelled.name}.jsonl"
    docs = folder / f"{labelled.name}.docs.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in labelled.questions))
    docs.write_text(
        "".join(json.dumps({"title": t, "text": x}) + "\n" for t, x in labelled.documents)
    )
    return questions, docs


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "labelled")
    for set_name in BUILDERS:
        built = build(set_name)
        write(built, out)
        print(set_name, len(built.documents), "documents", len(built.questions), "questions")
