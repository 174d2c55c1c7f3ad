"""Extract the provider schema of the resource types terraform/ uses from a cdktf package.

Terraform cannot download providers in the development sandbox, so `terraform validate` never
runs there. The prebuilt cdktf provider packages (npm `@cdktf/provider-google`, PyPI
`cdktf-cdktf-provider-google`) carry the whole provider schema in their jsii assembly: one
class per resource or data source (its Terraform type in the class docs), one Config struct
per block whose properties say optional or required, and documentation links whose anchor is
the snake_case name (`…/cloud_tasks_queue#max_attempts`). Repeated blocks are arrays of
structs, single blocks (max one) plain structs. The compiled JavaScript next to it names the
exported (computed) attributes: `get connectionName() { return
this.getStringAttribute('connection_name') }`.

This script writes the compact JSON that `check_schema.py` reads (only the types in use):

    npm pack @cdktf/provider-google@16.12.1 @cdktf/provider-archive@11.0.1
    python terraform/tools/extract_schema.py \\
        cdktf-provider-google-16.12.1.tgz cdktf-provider-archive-11.0.1.tgz

Run it again whenever terraform/ starts using a new resource or data source type (the check
fails with "not in the extracted schema" until then), or to move to another provider version
(and pin that version in every versions.tf: the check compares them).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_schema import DEFAULT_SCHEMA, TERRAFORM_DIR, used_types

_REPRESENTS = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/([\w-]+)/([\w-]+)/([\w.]+)/docs/"
    r"(resources|data-sources)/[\w-]+ ([\w-]+)\}"
)
_ANCHOR = re.compile(r"\{@link https://registry\.terraform\.io/providers/[^#\s}]+#([a-z0-9_]+)\b")
_JS_CLASS = re.compile(r"^class (\w+) extends [\w.]+ \{$(.*?)^\}$", re.M | re.S)
_JS_TO_TERRAFORM = re.compile(r"^function (\w+)ToTerraform\(struct\) \{$(.*?)^\}$", re.M | re.S)
_JS_STRUCT_FIELD = re.compile(r"^\s+([a-z0-9_]+): .*?struct\.(\w+)\)", re.M)
_JS_SYNTH_FIELD = re.compile(r"^\s+([a-z0-9_]+): .*?this\._(\w+)\b", re.M)
_JS_GETTER = re.compile(
    r"get (\w+)\(\) \{\s*return [^;]*?this\.get\w*Attribute\('([a-z0-9_]+)'\)", re.S
)
_JS_FIELD = re.compile(r"this\._(\w+) = new [\w.]+\(this, \"([a-z0-9_]+)\"")


@dataclass
class Package:
    """A jsii assembly plus its compiled JavaScript modules (by path under the package)."""

    assembly: dict[str, Any]
    js: dict[str, str] = field(default_factory=dict)

    @property
    def types(self) -> dict[str, dict[str, Any]]:
        types: dict[str, dict[str, Any]] = self.assembly["types"]
        return types


def load_package(path: Path) -> Package:
    """Read a package: an unpacked npm folder, an `npm pack` .tgz or a PyPI wheel."""
    if path.is_dir():
        assembly = json.loads((path / ".jsii").read_text(encoding="utf-8"))
        js = {
            str(p.relative_to(path)): p.read_text(encoding="utf-8")
            for p in (path / "lib").glob("*/index.js")
        }
        return Package(assembly, js)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            inner = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
            if not inner:
                raise SystemExit(f"{path}: no _jsii/*.jsii.tgz inside")
            return _load_tgz(io.BytesIO(wheel.read(inner[0])))
    with path.open("rb") as fh:
        return _load_tgz(io.BytesIO(fh.read()))


def _load_tgz(data: io.BytesIO) -> Package:
    assembly: dict[str, Any] | None = None
    js: dict[str, str] = {}
    with tarfile.open(fileobj=data, mode="r:gz") as tar:
        for member in tar:
            name = member.name.removeprefix("package/")
            if name == ".jsii" or (name.startswith("lib/") and name.endswith("/index.js")):
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                text = fh.read().decode("utf-8")
                if name == ".jsii":
                    assembly = json.loads(text)
                else:
                    js[name] = text
    if assembly is None:
        raise SystemExit("no .jsii assembly in the package")
    return Package(assembly, js)


def _snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", camel).lower()


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


class Extractor:
    """Walks the jsii types of one package into the compact schema format."""

    def __init__(self, package: Package) -> None:
        self.package = package
        self.types = package.types
        self._classes: dict[str, dict[str, str]] = {}  # JS class -> getter -> attribute
        self._structs: dict[str, dict[str, str]] = {}  # struct -> camel property -> name
        self.provider = ""
        self.version = ""
        for text in package.js.values():
            self._read_js(text)

    def _read_js(self, text: str) -> None:
        for name, body in _JS_CLASS.findall(text):
            getters = {camel: attr for camel, attr in _JS_GETTER.findall(body)}
            getters.update({camel: attr for camel, attr in _JS_FIELD.findall(body)})
            self._classes[name] = getters
            synth = re.search(r"synthesizeAttributes\(\) \{(.*?)\n    \}", body, re.S)
            if synth:
                fields = {camel: attr for attr, camel in _JS_SYNTH_FIELD.findall(synth.group(1))}
                self._structs[name + "Config"] = fields
        for fn, body in _JS_TO_TERRAFORM.findall(text):
            fields = {camel: attr for attr, camel in _JS_STRUCT_FIELD.findall(body)}
            self._structs[fn[:1].upper() + fn[1:]] = fields

    def index(self) -> dict[tuple[str, str], str]:
        """(kind, Terraform type) -> fqn of its class, kind being resource or data."""
        found: dict[tuple[str, str], str] = {}
        for fqn, t in self.types.items():
            if t.get("kind") != "class" or t.get("base") not in (
                "cdktf.TerraformResource",
                "cdktf.TerraformDataSource",
            ):
                continue
            match = _REPRESENTS.search(t.get("docs", {}).get("summary", ""))
            if not match:
                continue
            _, provider, version, section, tf_type = match.groups()
            self.provider, self.version = provider, version
            kind = "resource" if section == "resources" else "data"
            found[(kind, tf_type)] = fqn
        return found

    def _property_name(self, struct: str, prop: dict[str, Any]) -> str:
        docs = prop.get("docs", {})
        for text in (docs.get("remarks", ""), docs.get("summary", "")):
            match = _ANCHOR.search(text)
            if match:
                return match.group(1)
        short = struct.rsplit(".", 1)[-1]
        return self._structs.get(short, {}).get(prop["name"]) or _snake(prop["name"])

    def _struct_of(self, ref: dict[str, Any]) -> tuple[str, bool] | None:
        """(struct fqn, repeated) when a property type is a nested block."""
        fqn = ref.get("fqn")
        if fqn and self.types.get(fqn, {}).get("datatype"):
            return fqn, False
        for member in ref.get("union", {}).get("types", []):
            collection = member.get("collection", {})
            element = collection.get("elementtype", {}).get("fqn")
            if collection.get("kind") == "array" and self.types.get(element, {}).get("datatype"):
                return element, True
        return None

    def block(self, struct: str, output_class: str | None) -> dict[str, Any]:
        """arguments (name -> required), blocks, and exported attributes beyond them."""
        arguments: dict[str, bool] = {}
        blocks: dict[str, dict[str, Any]] = {}
        nested_classes: dict[str, str | None] = {}
        for prop in self.types[struct].get("properties", []):
            name = self._property_name(struct, prop)
            required = not prop.get("optional", False)
            nested = self._struct_of(prop["type"])
            if nested is None:
                arguments[name] = required
                continue
            _, repeated = nested
            blocks[name] = {"repeated": repeated, "required": required}
            nested_classes[name] = self._output_class(output_class, prop["name"])
        for name, struct_fqn in self._block_structs(struct).items():
            blocks[name].update(self.block(struct_fqn, nested_classes.get(name)))
        result: dict[str, Any] = {"arguments": dict(sorted(arguments.items()))}
        if blocks:
            result["blocks"] = dict(sorted(blocks.items()))
        computed = self.computed(output_class, set(arguments) | set(blocks))
        if computed:
            result["attributes"] = computed
        return result

    def _block_structs(self, struct: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for prop in self.types[struct].get("properties", []):
            nested = self._struct_of(prop["type"])
            if nested is not None:
                out[self._property_name(struct, prop)] = nested[0]
        return out

    def _output_class(self, owner: str | None, camel: str) -> str | None:
        """The OutputReference class behind a getter of `owner` (lists unwrapped)."""
        if owner is None:
            return None
        for prop in self.types[owner].get("properties", []):
            if prop["name"] == camel and not prop.get("static"):
                return self._unwrap(prop["type"].get("fqn"))
        return None

    def _unwrap(self, fqn: str | None) -> str | None:
        if fqn is None or fqn not in self.types:
            return None
        t = self.types[fqn]
        if t.get("base") in ("cdktf.ComplexList", "cdktf.MapList", "cdktf.ComplexMap"):
            for method in t.get("methods", []):
                if method["name"] == "get":
                    ret: str | None = method.get("returns", {}).get("type", {}).get("fqn")
                    return ret
            return None
        return fqn if t.get("base") == "cdktf.ComplexObject" else None

    def computed(self, output_class: str | None, known: set[str]) -> dict[str, Any]:
        """Exported attributes of a class that are not arguments or blocks: name -> nested."""
        if output_class is None:
            return {}
        short = output_class.rsplit(".", 1)[-1]
        getters = self._classes.get(short, {})
        found: dict[str, Any] = {}
        for prop in self.types[output_class].get("properties", []):
            camel = prop["name"]
            if prop.get("static") or camel.endswith("Input") or camel == "internalValue":
                continue
            if camel in ("fqn", "terraformAttribute", "terraformResource", "wrapsSet"):
                continue
            name = getters.get(camel)
            if name is None or name in known:
                continue
            inner = self._unwrap(prop["type"].get("fqn"))
            found[name] = self.computed(inner, set()) if inner else None
        return dict(sorted(found.items()))

    def extract(self, fqn: str) -> dict[str, Any]:
        cls = self.types[fqn]
        config = next(
            p["type"]["fqn"] for p in cls["initializer"]["parameters"] if p["name"] == "config"
        )
        return self.block(config, fqn)


def extract(packages: list[Path], wanted: set[tuple[str, str]]) -> dict[str, Any]:
    schema: dict[str, Any] = {"providers": {}, "resource": {}, "data": {}}
    for path in packages:
        package = load_package(path)
        extractor = Extractor(package)
        index = extractor.index()
        local = extractor.provider
        schema["providers"][local] = {
            "source": f"hashicorp/{local}",
            "version": extractor.version,
            "package": f"{package.assembly['name']}@{package.assembly['version']}",
        }
        for kind, tf_type in sorted(wanted):
            if (kind, tf_type) in index:
                schema[kind][tf_type] = extractor.extract(index[(kind, tf_type)])
    missing = sorted(f"{k} {t}" for k, t in wanted if t not in schema[k])
    if missing:
        raise SystemExit(f"types not found in the given packages: {', '.join(missing)}")
    schema["resource"] = dict(sorted(schema["resource"].items()))
    schema["data"] = dict(sorted(schema["data"].items()))
    return schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="+", type=Path, help="npm folder, .tgz or .whl")
    parser.add_argument("--terraform", type=Path, default=TERRAFORM_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_SCHEMA)
    parser.add_argument(
        "--type", action="append", default=[], help="extra KIND.TYPE, e.g. resource.google_x"
    )
    args = parser.parse_args(argv)
    wanted = used_types(args.terraform)
    for extra in args.type:
        kind, _, tf_type = extra.partition(".")
        wanted.add((kind, tf_type))
    schema = extract(args.packages, wanted)
    text = json.dumps(schema, indent=1, sort_keys=False) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {len(schema['resource'])} resources, {len(schema['data'])} data sources")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
