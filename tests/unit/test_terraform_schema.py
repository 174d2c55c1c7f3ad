"""terraform/ checked offline against the provider schema (terraform/tools/check_schema.py).

`terraform validate` cannot run here (no provider downloads), so the checker reads the HCL and
the schema extracted from the cdktf provider packages. The mutation tests below copy the real
files, break them in one way each, and require the checker to say so (issue 15).
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "terraform"
TOOLS = TF / "tools"

hcl2_utils = pytest.importorskip("hcl2.utils")
if not hasattr(hcl2_utils, "SerializationOptions"):  # pragma: no cover - python-hcl2 < 7
    pytest.skip("the schema check needs python-hcl2 >= 7", allow_module_level=True)

sys.path.insert(0, str(TOOLS))
import check_schema  # noqa: E402


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    return check_schema.load_schema()


def test_terraform_matches_the_provider_schema() -> None:
    errors = check_schema.check(TF)
    assert errors == [], "\n".join(errors)


def test_schema_is_compact_and_covers_every_type_in_use(schema: dict[str, object]) -> None:
    size = (TOOLS / "provider_schema.json").stat().st_size
    assert size < 100_000, f"provider_schema.json is {size} bytes: extract only the types in use"
    extracted = {("resource", t) for t in schema["resource"]}  # type: ignore[attr-defined]
    extracted |= {("data", t) for t in schema["data"]}  # type: ignore[attr-defined]
    missing = check_schema.used_types(TF) - extracted
    assert not missing, f"run terraform/tools/extract_schema.py for {sorted(missing)}"


def test_every_provider_is_pinned_to_the_extracted_version(schema: dict[str, object]) -> None:
    providers = schema["providers"]
    assert isinstance(providers, dict)
    assert providers["google"]["version"] == "6.50.0"
    root = check_schema.read_module(TF)
    pinned = {local: version for _, local, version in root.required_providers}
    assert pinned == {local: info["version"] for local, info in providers.items()}


# --- mutations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    expected: str


MUTATIONS = [
    Mutation(
        "unknown_resource_type",
        "modules/queue/main.tf",
        'resource "google_cloud_tasks_queue" "default"',
        'resource "google_cloud_task_queue" "default"',
        "resource type 'google_cloud_task_queue' is not in the extracted schema",
    ),
    Mutation(
        "unknown_data_source_type",
        "project.tf",
        'data "google_project" "this"',
        'data "google_projects" "this"',
        "data type 'google_projects' is not in the extracted schema",
    ),
    Mutation(
        "unknown_argument",
        "modules/queue/main.tf",
        '  name     = "${var.prefix}-${var.stage}"\n',
        '  name     = "${var.prefix}-${var.stage}"\n  region   = var.region\n',
        "unknown argument 'region'",
    ),
    Mutation(
        "unknown_nested_argument",
        "modules/queue/main.tf",
        "max_attempts       = var.config.max_attempts",
        "max_attempt        = var.config.max_attempts",
        "retry_config[0]: unknown argument 'max_attempt'",
    ),
    Mutation(
        "unknown_block",
        "modules/queue/main.tf",
        "stackdriver_logging_config {",
        "logging_config {",
        "unknown block 'logging_config'",
    ),
    Mutation(
        "unknown_dynamic_block",
        "modules/database/main.tf",
        'dynamic "database_flags" {',
        'dynamic "database_flag" {',
        "unknown block 'database_flag' (dynamic)",
    ),
    Mutation(
        "block_written_as_argument",
        "storage.tf",
        "  versioning {\n    enabled = true\n  }",
        "  versioning = { enabled = true }",
        "block 'versioning' is written as an argument",
    ),
    Mutation(
        "argument_written_as_block",
        "secrets.tf",
        'labels    = { purpose = "api-key-pepper" }',
        'labels {\n    purpose = "api-key-pepper"\n  }',
        "argument 'labels' is written as a block",
    ),
    Mutation(
        "repeated_single_block",
        "modules/queue/main.tf",
        "  stackdriver_logging_config {",
        "  rate_limits {\n    max_concurrent_dispatches = 1\n  }\n\n  stackdriver_logging_config {",
        "block 'rate_limits' allows one instance, found 2",
    ),
    Mutation(
        "missing_required_argument",
        "modules/function/main.tf",
        "  account_id   = local.function_name\n",
        "",
        "resource google_service_account.default: missing required argument 'account_id'",
    ),
    Mutation(
        "missing_required_nested_argument",
        "modules/scheduler/main.tf",
        "      service_account_email = google_service_account.default.email\n",
        "",
        "oidc_token[0]: missing required argument 'service_account_email'",
    ),
    Mutation(
        "missing_required_argument_in_dynamic_block",
        "modules/database/main.tf",
        "        name  = database_flags.key\n",
        "",
        "dynamic.database_flags: missing required argument 'name'",
    ),
    Mutation(
        "missing_required_block",
        "secrets.tf",
        "  replication {\n    auto {}\n  }\n  depends_on = [google_project_service.apis]\n}\n\n#",
        "  depends_on = [google_project_service.apis]\n}\n\n#",
        "secret.pepper: missing required block 'replication'",
    ),
    Mutation(
        "unknown_resource_attribute",
        "modules/function/outputs.tf",
        "google_cloudfunctions2_function.default.url",
        "google_cloudfunctions2_function.default.uri",
        "google_cloudfunctions2_function.default exports no attribute 'uri'",
    ),
    Mutation(
        "unknown_nested_attribute",
        "modules/function/outputs.tf",
        "service_config[0].uri",
        "service_config[0].url",
        "google_cloudfunctions2_function.default.service_config exports no attribute 'url'",
    ),
    Mutation(
        "unknown_data_source_attribute",
        "main.tf",
        "data.google_project.this.number",
        "data.google_project.this.project_number",
        "data.google_project.this exports no attribute 'project_number'",
    ),
    Mutation(
        "undeclared_resource",
        "iam.tf",
        'migrate = "serviceAccount:${google_service_account.migrate.email}"',
        'migrate = "serviceAccount:${google_service_account.migrator.email}"',
        "undeclared resource google_service_account.migrator",
    ),
    Mutation(
        "undeclared_variable",
        "modules/queue/main.tf",
        "sampling_ratio = var.config.log_sampling_ratio",
        "sampling_ratio = var.configuration.log_sampling_ratio",
        "undeclared variable var.configuration",
    ),
    Mutation(
        "undeclared_local",
        "main.tf",
        "FUNCTION_URLS      = jsonencode(local.stage_urls)",
        "FUNCTION_URLS      = jsonencode(local.stage_url)",
        "undeclared local value local.stage_url",
    ),
    Mutation(
        "undeclared_module",
        "outputs.tf",
        "value       = module.database.database_name",
        "value       = module.db.database_name",
        "undeclared module module.db",
    ),
    Mutation(
        "unknown_module_output",
        "main.tf",
        'target_service = module.function["retention"].function_name',
        'target_service = module.function["retention"].service_name',
        "module.function has no output 'service_name'",
    ),
    Mutation(
        "module_call_with_unknown_variable",
        "main.tf",
        '  name           = "retention"\n',
        '  name           = "retention"\n  colour         = "blue"\n',
        "module scheduler: unknown module variable 'colour'",
    ),
    Mutation(
        "module_call_missing_required_variable",
        "main.tf",
        '  target_service = module.function["retention"].function_name\n',
        "",
        "module scheduler: missing required module variable 'target_service'",
    ),
    Mutation(
        "root_provider_not_pinned",
        "versions.tf",
        'version = "6.50.0"',
        'version = "~> 6.0"',
        "the root module must pin 6.50.0 exactly",
    ),
    Mutation(
        "module_provider_range_excludes_checked_version",
        "modules/queue/versions.tf",
        'version = ">= 6.50.0, < 7.0.0"',
        'version = "~> 5.40"',
        "'~> 5.40' excludes the checked version 6.50.0",
    ),
    Mutation(
        "archive_data_source_unknown_argument",
        "modules/function/main.tf",
        'output_file_mode = "0644"',
        'output_file_mode = "0644"\n  source_path      = "x"',
        "data archive_file.source: unknown argument 'source_path'",
    ),
]


def _copy_terraform(tmp_path: Path) -> Path:
    target = tmp_path / "terraform"
    shutil.copytree(TF, target, ignore=shutil.ignore_patterns("tools", ".terraform*", "*.md"))
    return target


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_checker_catches(mutation: Mutation, tmp_path: Path, schema: dict[str, object]) -> None:
    copy = _copy_terraform(tmp_path)
    path = copy / mutation.file
    text = path.read_text(encoding="utf-8")
    assert text.count(mutation.old) == 1, f"{mutation.name}: the original text moved"
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    check_schema.load_file.cache_clear()
    errors = check_schema.check(copy, schema)
    assert any(mutation.expected in e for e in errors), "\n".join(errors) or "no errors"


def test_unmutated_copy_is_clean(tmp_path: Path, schema: dict[str, object]) -> None:
    assert check_schema.check(_copy_terraform(tmp_path), schema) == []


# --- building blocks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "allowed"),
    [
        ("6.50.0", True),
        ("= 6.50.0", True),
        ("~> 6.0", True),
        ("~> 6.50.0", True),
        ("~> 6.51.0", False),
        ("~> 5.0", False),
        (">= 6.50.0, < 7.0.0", True),
        (">= 6.51", False),
        ("!= 6.50.0", False),
    ],
)
def test_version_constraints(constraint: str, allowed: bool) -> None:
    assert check_schema.version_allows(constraint, "6.50.0") is allowed


def test_references_skip_strings_functions_keys_and_for_variables() -> None:
    expr = (
        '${{ for name, f in local.functions : name => merge({ KEY = "a.${var.x}" }, '
        'f.next, module.m["k"].out, google_x.y[0].z) if f.public }}'
    )
    found = {str(r) for r in check_schema.references(expr)}
    assert found == {"local.functions", "var.x", "module.m[].out", "google_x.y[0].z"}


def test_schema_json_is_what_the_extractor_writes() -> None:
    data = json.loads((TOOLS / "provider_schema.json").read_text(encoding="utf-8"))
    assert set(data) == {"providers", "resource", "data"}
    queue = data["resource"]["google_cloud_tasks_queue"]
    assert queue["arguments"]["location"] is True
    assert queue["blocks"]["retry_config"]["repeated"] is False
    flags = data["resource"]["google_sql_database_instance"]["blocks"]["settings"]["blocks"]
    assert flags["database_flags"]["repeated"] is True
