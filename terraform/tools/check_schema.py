"""Check terraform/ against the provider schema offline (what `terraform validate` would catch).

`terraform validate` needs the provider binaries, which cannot be downloaded in the
development sandbox. This checker reads the `.tf` files with python-hcl2 and the schema that
`extract_schema.py` took from the cdktf provider packages (`provider_schema.json`, committed),
and reports:

- resource and data source types missing from the schema (unknown or not yet extracted);
- unknown arguments and blocks, at any depth, also inside `dynamic` blocks;
- an argument written as a block, or a block written as an argument;
- a single block (max one) written more than once;
- missing required arguments and blocks (a `dynamic` block counts as present);
- references to attributes a resource or data source does not export (nested blocks
  included, e.g. `service_config[0].uri`), or to resources and data sources not declared;
- references to undeclared `var.`, `local.` and `module.` names and to module outputs that do
  not exist; module calls with unknown or missing (required) variables;
- `required_providers` constraints that do not admit the extracted version, and a root module
  that does not pin exactly that version.

Usage: `python terraform/tools/check_schema.py [terraform_dir]` (exit status 1 on errors).
tests/unit/test_terraform_schema.py runs it in `make test`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

TOOLS_DIR = Path(__file__).resolve().parent
TERRAFORM_DIR = TOOLS_DIR.parent
DEFAULT_SCHEMA = TOOLS_DIR / "provider_schema.json"

#: Arguments and blocks Terraform itself handles, per block kind.
META_ARGUMENTS = {
    "resource": {"count", "for_each", "depends_on", "provider"},
    "data": {"count", "for_each", "depends_on", "provider"},
    "module": {"source", "version", "count", "for_each", "depends_on", "providers"},
}
META_BLOCKS = {
    "resource": {"lifecycle", "provisioner", "connection"},
    "data": {"lifecycle"},
}
#: Reference roots that need no declaration.
BUILTIN_ROOTS = {"each", "count", "path", "self", "terraform"}
KEYWORDS = {"true", "false", "null", "for", "in", "if", "endfor", "endif", "else"}

_TRAVERSAL = re.compile(
    r"(?<![\w.\]\)\-])([A-Za-z_][\w-]*)"
    r"((?:\s*\.\s*(?:[A-Za-z_][\w-]*|\*|\d+)|\s*\[[^\[\]]*\])*)"
)
_STEP = re.compile(r"\.\s*([A-Za-z_][\w-]*|\*|\d+)|\[([^\[\]]*)\]")
_FOR_VARS = re.compile(r"\bfor\s+([A-Za-z_]\w*)(?:\s*,\s*([A-Za-z_]\w*))?\s+in\b")


# --- reading ----------------------------------------------------------------------------------


def _unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


@cache
def load_file(path: Path) -> dict[str, Any]:
    return load_text(path.read_text(encoding="utf-8"))


def load_text(text: str) -> dict[str, Any]:
    """python-hcl2 (>= 7) output with `__is_block__` markers and quoted strings kept."""
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(explicit_blocks=True, with_comments=False)
    data: dict[str, Any] = hcl2.loads(text, serialization_options=options)
    return data


def is_block_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def is_dynamic_list(value: Any) -> bool:
    """`dynamic "label" {…}` entries: python-hcl2 gives [{'"label"': {…}}] without a marker."""
    return isinstance(value, list) and all(
        isinstance(v, dict) and all(isinstance(b, dict) for _, b in body_items(v)) for v in value
    )


def body_items(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in body.items():
        if not key.startswith("__"):
            yield key, value


@dataclass
class Module:
    """The declarations of one Terraform module directory."""

    path: Path
    files: dict[str, dict[str, Any]]
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, tuple[str, Any]] = field(default_factory=dict)
    outputs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    modules: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    resources: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    providers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    required_providers: list[tuple[str, str, str]] = field(default_factory=list)


def read_module(path: Path, texts: dict[str, str] | None = None) -> Module:
    """Read `*.tf` of a directory (or the given file name -> text mapping)."""
    if texts is None:
        files = {p.name: load_file(p) for p in sorted(path.glob("*.tf"))}
    else:
        files = {name: load_text(text) for name, text in sorted(texts.items())}
    module = Module(path, files)
    for name, data in files.items():
        for entry in data.get("variable", []):
            for label, body in entry.items():
                module.variables[_unquote(label)] = body
        for entry in data.get("locals", []):
            for key, value in body_items(entry):
                module.locals[key] = (name, value)
        for entry in data.get("output", []):
            for label, body in entry.items():
                module.outputs[_unquote(label)] = (name, body)
        for entry in data.get("module", []):
            for label, body in entry.items():
                module.modules[_unquote(label)] = (name, body)
        for kind, target in (("resource", module.resources), ("data", module.data)):
            for entry in data.get(kind, []):
                for tf_type, named in entry.items():
                    for label, body in named.items():
                        target[(_unquote(tf_type), _unquote(label))] = (name, body)
        for entry in data.get("provider", []):
            for label, body in entry.items():
                module.providers.append((_unquote(label), body))
        for terraform in data.get("terraform", []):
            for block in terraform.get("required_providers", []):
                for local, spec in body_items(block):
                    if isinstance(spec, dict):
                        version = _unquote(str(spec.get("version", "")))
                        module.required_providers.append((name, local, version))
    return module


def used_types(terraform_dir: Path = TERRAFORM_DIR) -> set[tuple[str, str]]:
    """(kind, type) of every resource and data source in terraform_dir and its modules."""
    found: set[tuple[str, str]] = set()
    for path in module_dirs(terraform_dir):
        module = read_module(path)
        found |= {("resource", t) for t, _ in module.resources}
        found |= {("data", t) for t, _ in module.data}
    return found


def module_dirs(root: Path) -> list[Path]:
    """root and every local module it calls, transitively."""
    seen: list[Path] = []
    todo = [root.resolve()]
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.append(path)
        for _, body in read_module(path).modules.values():
            source = _unquote(str(body.get("source", "")))
            if source.startswith(("./", "../")):
                todo.append((path / source).resolve())
    return seen


# --- expressions ------------------------------------------------------------------------------


def code_of(text: str) -> str:
    """Expression text with string literals blanked and template interpolations kept."""
    if text.startswith("${") and text.endswith("}") and not text.startswith('"'):
        text = text[2:-1]
    out: list[str] = []
    _scan_code(text, 0, out, stop_at_brace=False)
    return "".join(out)


def _scan_code(text: str, i: int, out: list[str], *, stop_at_brace: bool) -> int:
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i = _scan_string(text, i + 1, out)
            continue
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            if depth == 0 and stop_at_brace and ch == "}":
                return i + 1
            depth -= 1
        out.append(ch)
        i += 1
    return i


def _scan_string(text: str, i: int, out: list[str]) -> int:
    out.append(" ")
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            out.append(" ")
            return i + 1
        if text.startswith("$${", i) or text.startswith("%%{", i):
            i += 3
            continue
        if text.startswith("${", i) or text.startswith("%{", i):
            out.append(" (")
            i = _scan_code(text, i + 2, out, stop_at_brace=True)
            out.append(") ")
            continue
        i += 1
    return i


@dataclass(frozen=True)
class Reference:
    root: str
    steps: tuple[tuple[str, str], ...]  # ("attr", name) or ("index", expression)

    def __str__(self) -> str:
        parts = [self.root]
        for kind, value in self.steps:
            parts.append(f".{value}" if kind == "attr" else f"[{value}]")
        return "".join(parts)


def references(value: Any, bound: frozenset[str] = frozenset()) -> Iterator[Reference]:
    """Every traversal in a python-hcl2 value (strings, lists, dicts, nested)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not key.startswith("__"):
                yield from references(item, bound)
        return
    if isinstance(value, list):
        for item in value:
            yield from references(item, bound)
        return
    if not isinstance(value, str):
        return
    code = code_of(value)
    local_names = set(bound)
    for match in _FOR_VARS.finditer(code):
        local_names |= {n for n in match.groups() if n}
    for match in _TRAVERSAL.finditer(code):
        root, rest = match.group(1), match.group(2)
        after = code[match.end() :].lstrip()
        if root in KEYWORDS or root in local_names:
            continue
        if not rest and (after.startswith("(") or re.match(r"=(?![=>])", after)):
            continue  # a function call or an object key
        if not rest and after.startswith(":") and root not in BUILTIN_ROOTS:
            continue
        steps = tuple(
            ("attr", m.group(1)) if m.group(1) is not None else ("index", m.group(2).strip())
            for m in _STEP.finditer(rest)
        )
        yield Reference(root, steps)


# --- schema -----------------------------------------------------------------------------------


def load_schema(path: Path = DEFAULT_SCHEMA) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def exported(block: dict[str, Any]) -> dict[str, Any]:
    """Attribute name -> nested block schema (or None) of everything a block exports."""
    names: dict[str, Any] = dict.fromkeys(block.get("arguments", {}))
    for name, nested in block.get("blocks", {}).items():
        names[name] = nested
    for name, nested in block.get("attributes", {}).items():
        names[name] = {"attributes": nested} if isinstance(nested, dict) else None
    return names


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def version_allows(constraint: str, version: str) -> bool:
    """Terraform version constraint check (=, !=, >, >=, <, <=, ~>), comma = and."""
    have = _version_tuple(version)
    for part in filter(None, (p.strip() for p in constraint.split(","))):
        match = re.fullmatch(r"(=|!=|>=|<=|>|<|~>)?\s*([\d.]+)", part)
        if not match:
            return False
        op, text = match.group(1) or "=", match.group(2)
        want = _version_tuple(text)
        padded = want + (0,) * (3 - len(want))
        if op == "~>":
            upper = list(want[:-1]) if len(want) > 1 else [want[0]]
            upper[-1] += 1
            if not (have >= padded and have < tuple(upper) + (0,) * (3 - len(upper))):
                return False
            continue
        ok = {
            "=": have == padded,
            "!=": have != padded,
            ">": have > padded,
            ">=": have >= padded,
            "<": have < padded,
            "<=": have <= padded,
        }[op]
        if not ok:
            return False
    return True


# --- checking ---------------------------------------------------------------------------------


@dataclass
class Checker:
    schema: dict[str, Any]
    errors: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    # blocks ------------------------------------------------------------------------------------

    def check_body(
        self, where: str, body: dict[str, Any], block: dict[str, Any], kind: str | None
    ) -> None:
        """Arguments and nested blocks of one block instance against its schema."""
        arguments: dict[str, bool] = block.get("arguments", {})
        blocks: dict[str, dict[str, Any]] = block.get("blocks", {})
        meta_args = META_ARGUMENTS.get(kind or "", set())
        meta_blocks = META_BLOCKS.get(kind or "", set())
        counts: dict[str, int] = {}
        for key, value in body_items(body):
            if key == "dynamic" and is_dynamic_list(value):
                for entry in value:
                    for label, dyn in body_items(entry):
                        self._check_dynamic(where, _unquote(label), dyn, blocks, counts)
                continue
            written_as_block = is_block_list(value)
            if key in meta_args or key in meta_blocks:
                continue
            if key in arguments:
                if written_as_block:
                    self.error(where, f"argument {key!r} is written as a block ({key} {{…}})")
                continue
            if key in blocks:
                if not written_as_block:
                    self.error(where, f"block {key!r} is written as an argument ({key} = …)")
                    counts[key] = counts.get(key, 0) + 1
                    continue
                counts[key] = counts.get(key, 0) + len(value)
                for i, instance in enumerate(value):
                    self.check_body(f"{where}.{key}[{i}]", instance, blocks[key], None)
                continue
            what = "block" if written_as_block else "argument"
            self.error(where, f"unknown {what} {key!r}")
        for name, nested in blocks.items():
            if counts.get(name, 0) > 1 and not nested.get("repeated"):
                self.error(where, f"block {name!r} allows one instance, found {counts[name]}")
            if nested.get("required") and not counts.get(name):
                self.error(where, f"missing required block {name!r}")
        for name, required in arguments.items():
            if required and name not in body:
                self.error(where, f"missing required argument {name!r}")

    def _check_dynamic(
        self,
        where: str,
        name: str,
        dyn: dict[str, Any],
        blocks: dict[str, dict[str, Any]],
        counts: dict[str, int],
    ) -> None:
        if name not in blocks:
            self.error(where, f"unknown block {name!r} (dynamic)")
            return
        counts[name] = counts.get(name, 0) + 1
        for key, _ in body_items(dyn):
            if key not in ("for_each", "iterator", "labels", "content"):
                self.error(where, f"dynamic {name!r}: unknown argument {key!r}")
        content = dyn.get("content")
        if not is_block_list(content):
            self.error(where, f"dynamic {name!r} has no content block")
            return
        assert isinstance(content, list)
        for instance in content:
            self.check_body(f"{where}.dynamic.{name}", instance, blocks[name], None)

    # references --------------------------------------------------------------------------------

    def check_references(
        self, module: Module, where: str, value: Any, bound: frozenset[str] = frozenset()
    ) -> None:
        for ref in references(value, bound):
            self._check_reference(module, where, ref)

    def _check_reference(self, module: Module, where: str, ref: Reference) -> None:
        attrs = [v for k, v in ref.steps if k == "attr"]
        if ref.root in BUILTIN_ROOTS:
            return
        if ref.root == "var":
            if attrs and attrs[0] not in module.variables:
                self.error(where, f"undeclared variable var.{attrs[0]}")
            return
        if ref.root == "local":
            if attrs and attrs[0] not in module.locals:
                self.error(where, f"undeclared local value local.{attrs[0]}")
            return
        if ref.root == "module":
            self._check_module_reference(module, where, ref)
            return
        if ref.root == "data":
            if len(attrs) < 2:
                return
            tf_type, name = attrs[0], attrs[1]
            if (tf_type, name) not in module.data:
                self.error(where, f"undeclared data source data.{tf_type}.{name}")
                return
            self._check_attributes(where, "data", tf_type, name, ref.steps[2:])
            return
        if ref.root in self.schema["resource"] or (ref.root, "") in {
            (t, "") for t, _ in module.resources
        }:
            if not attrs:
                return
            if (ref.root, attrs[0]) not in module.resources:
                self.error(where, f"undeclared resource {ref.root}.{attrs[0]}")
                return
            self._check_attributes(where, "resource", ref.root, attrs[0], ref.steps[1:])
            return
        if ref.steps and self._looks_like_resource(ref.root):
            self.error(where, f"reference to unknown resource type {ref.root!r} ({ref})")

    def _looks_like_resource(self, root: str) -> bool:
        prefixes = tuple(f"{p}_" for p in self.schema.get("providers", {}))
        return root.startswith(prefixes)

    def _check_attributes(
        self, where: str, kind: str, tf_type: str, name: str, steps: tuple[tuple[str, str], ...]
    ) -> None:
        block = self.schema[kind].get(tf_type)
        if block is None:
            return  # reported where the type is declared
        label = f"{'data.' if kind == 'data' else ''}{tf_type}.{name}"
        path = label
        current: dict[str, Any] | None = block
        for step_kind, value in steps:
            if step_kind == "index":
                continue
            if current is None:
                return  # a map, list or object argument: keys are not in the schema
            names = exported(current)
            if value == "*":
                continue
            if value not in names:
                self.error(where, f"{path} exports no attribute {value!r}")
                return
            path = f"{path}.{value}"
            current = names[value]

    def _check_module_reference(self, module: Module, where: str, ref: Reference) -> None:
        attrs = [v for k, v in ref.steps if k == "attr"]
        if not attrs:
            return
        if attrs[0] not in module.modules:
            self.error(where, f"undeclared module module.{attrs[0]}")
            return
        if len(attrs) < 2:
            return
        source = _unquote(str(module.modules[attrs[0]][1].get("source", "")))
        if not source.startswith(("./", "../")):
            return
        target = read_module((module.path / source).resolve())
        if attrs[1] not in target.outputs:
            self.error(where, f"module.{attrs[0]} has no output {attrs[1]!r}")

    # modules -----------------------------------------------------------------------------------

    def check_module(self, module: Module, *, root: bool) -> None:
        rel = module.path.name if not root else "."
        for (tf_type, name), (file, body) in module.resources.items():
            self._check_declared(
                module, f"{rel}/{file}: resource {tf_type}.{name}", "resource", tf_type, body
            )
        for (tf_type, name), (file, body) in module.data.items():
            self._check_declared(
                module, f"{rel}/{file}: data {tf_type}.{name}", "data", tf_type, body
            )
        for key, (file, value) in module.locals.items():
            self.check_references(module, f"{rel}/{file}: local.{key}", value)
        for key, (file, body) in module.outputs.items():
            self.check_references(module, f"{rel}/{file}: output {key}", body)
        for key, body in module.variables.items():
            for validation in body.get("validation", []):
                self.check_references(module, f"{rel}: variable {key} validation", validation)
        for label, body in module.providers:
            self.check_references(module, f"{rel}: provider {label}", body)
        for key, (file, body) in module.modules.items():
            self._check_module_call(module, f"{rel}/{file}: module {key}", body)
        self._check_versions(module, rel, root=root)

    def _check_declared(
        self, module: Module, where: str, kind: str, tf_type: str, body: dict[str, Any]
    ) -> None:
        block = self.schema[kind].get(tf_type)
        if block is None:
            self.error(
                where,
                f"{kind} type {tf_type!r} is not in the extracted schema: unknown, or new "
                "(then regenerate it, see terraform/tools/extract_schema.py)",
            )
        else:
            self.check_body(where, body, block, kind)
        self._walk_references(module, where, body, frozenset())

    def _walk_references(
        self, module: Module, where: str, body: dict[str, Any], bound: frozenset[str]
    ) -> None:
        """References in a block body; dynamic blocks bind their iterator in content."""
        for key, value in body_items(body):
            if key == "dynamic" and is_dynamic_list(value):
                for entry in value:
                    for label, dyn in body_items(entry):
                        iterator = _unquote(str(dyn.get("iterator", label)))
                        inner = bound | {iterator}
                        self.check_references(module, where, dyn.get("for_each"), bound)
                        for content in dyn.get("content", []):
                            self._walk_references(module, where, content, inner)
            elif is_block_list(value):
                for instance in value:
                    self._walk_references(module, where, instance, bound)
            else:
                self.check_references(module, where, value, bound)

    def _check_module_call(self, module: Module, where: str, body: dict[str, Any]) -> None:
        source = _unquote(str(body.get("source", "")))
        self.check_references(module, where, {k: v for k, v in body.items() if k != "source"})
        if not source.startswith(("./", "../")):
            return
        target_path = (module.path / source).resolve()
        if not target_path.is_dir():
            self.error(where, f"module source {source!r} does not exist")
            return
        target = read_module(target_path)
        given = {k for k, _ in body_items(body)} - META_ARGUMENTS["module"]
        for name in sorted(given - set(target.variables)):
            self.error(where, f"unknown module variable {name!r} (not in {source})")
        required = {n for n, v in target.variables.items() if "default" not in v}
        for name in sorted(required - given):
            self.error(where, f"missing required module variable {name!r}")

    def _check_versions(self, module: Module, rel: str, *, root: bool) -> None:
        providers = self.schema.get("providers", {})
        for file, local, constraint in module.required_providers:
            info = providers.get(local)
            if info is None:
                continue
            where = f"{rel}/{file}: required_providers.{local}"
            if not version_allows(constraint, info["version"]):
                self.error(where, f"{constraint!r} excludes the checked version {info['version']}")
            elif root and constraint.lstrip("= ").strip() != info["version"]:
                self.error(where, f"the root module must pin {info['version']} exactly")


def check(terraform_dir: Path = TERRAFORM_DIR, schema: dict[str, Any] | None = None) -> list[str]:
    """All errors in terraform_dir and the local modules it calls."""
    checker = Checker(schema if schema is not None else load_schema())
    root = terraform_dir.resolve()
    for path in module_dirs(root):
        checker.check_module(read_module(path), root=path == root)
    return checker.errors


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else TERRAFORM_DIR
    errors = check(directory)
    for line in errors:
        print(line)
    print(f"{len(errors)} error(s) in {directory}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
