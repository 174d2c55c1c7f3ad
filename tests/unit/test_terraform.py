"""Terraform under terraform/ agrees with the code: functions, queues, scheduler, IAM, settings.

Terraform cannot init here (no provider downloads), so these tests read the HCL with
python-hcl2 and check the contract statically; `terraform fmt` and checkov run when present.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from ragline.core.config import Settings
from ragline.ingest.queues import STAGES, queue_name

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "terraform"
MODULES = ("database", "function", "queue", "scheduler")

#: The contract: one folder under functions/ and one Terraform entry per name.
PUBLIC_FUNCTIONS = frozenset(
    {
        "ingest",
        "documents",
        "search",
        "answer",
        "runs",
        "health",
        "uploads",
        "console",
        "embeddings",
    }
)
TASK_FUNCTIONS = frozenset({"parse", "chunk", "embed", "finalize"})
EVENT_FUNCTIONS = frozenset({"on_upload"})
SCHEDULED_FUNCTIONS = frozenset({"retention", "reconcile"})
FUNCTION_NAMES = PUBLIC_FUNCTIONS | TASK_FUNCTIONS | EVENT_FUNCTIONS | SCHEDULED_FUNCTIONS
#: The Cloud Tasks stages in pipeline order (issue 13 puts parse before chunk).
PIPELINE = ("parse", "chunk", "embed", "finalize")
#: Which queues each function enqueues to (`next`): its successor first (on_upload -> parse ->
#: chunk -> embed -> finalize; ingest -> chunk), then, for the functions that re-enqueue a
#: stalled document's missing work (issue 16: ingest re-post, documents retry, reconcile),
#: every stage. A stage's own queue comes on top (local.enqueue_targets).
CHAIN = {
    "ingest": ["chunk", "embed", "finalize", "parse"],
    "embeddings": ["embed"],
    "on_upload": ["parse"],
    "parse": ["chunk"],
    "chunk": ["embed"],
    "embed": ["finalize"],
    "documents": ["chunk", "embed", "finalize", "parse"],
    "reconcile": ["chunk", "embed", "finalize", "parse"],
}
#: Environment variables whose Settings field the Python side of issue 13 adds (the
#: Terraform part landed first); drop a name once `Settings` has it.
PENDING_SETTINGS: frozenset[str] = frozenset()
UPLOAD_EVENT_TYPES = [
    "google.cloud.storage.object.v1.finalized",
    "google.cloud.storage.object.v1.deleted",
]

REQUIRED_ENV = {
    "API_KEY_PEPPER",
    "CLOUD_SQL_INSTANCE",
    "DB_IAM_USER",
    "DB_NAME",
    "EMBEDDING_PROVIDER",
    "ENVIRONMENT",
    "FUNCTION_URLS",
    "GCP_PROJECT",
    "GCP_REGION",
    "QUEUE_BACKEND",
    "QUEUE_PREFIX",
    "TASK_AUTH",
    "TASK_MAX_ATTEMPTS",
    "TASK_SERVICE_ACCOUNT",
}


# --- reading HCL -----------------------------------------------------------------------------


def _strip(value: Any) -> Any:
    """Normalise python-hcl2 output across versions: no quotes around strings, no markers."""
    if isinstance(value, dict):
        return {
            _strip(k): _strip(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def load(path: Path) -> dict[str, Any]:
    return load_text(path.read_text(encoding="utf-8"))


def load_text(text: str) -> dict[str, Any]:
    try:
        from hcl2.utils import SerializationOptions
    except ImportError:  # python-hcl2 < 7 returns unquoted strings already
        data: dict[str, Any] = hcl2.loads(text)
    else:
        options = SerializationOptions(
            strip_string_quotes=True, explicit_blocks=False, with_comments=False
        )
        data = hcl2.loads(text, serialization_options=options)
    result: dict[str, Any] = _strip(data)
    return result


def blocks(directory: Path, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, body) of every `kind` block (module, variable, output, locals) in a directory."""
    for path in sorted(directory.glob("*.tf")):
        for entry in load(path).get(kind, []):
            if kind == "locals":
                yield path.name, entry
            else:
                yield from entry.items()


def resources(directory: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource in a directory."""
    for path in sorted(directory.glob("*.tf")):
        for entry in load(path).get("resource", []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    yield rtype, name, body


def local_values(directory: Path = TF) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for _, body in blocks(directory, "locals"):
        merged.update(body)
    return merged


def module_call(name: str) -> dict[str, Any]:
    calls = dict(blocks(TF, "module"))
    assert name in calls, f"module {name!r} is not called from terraform/"
    return calls[name]


def variables(directory: Path) -> dict[str, dict[str, Any]]:
    return dict(blocks(directory, "variable"))


def default_prefix() -> str:
    prefix = variables(TF)["prefix"]["default"]
    assert isinstance(prefix, str)
    return prefix


def tf_functions() -> dict[str, dict[str, Any]]:
    functions = local_values()["functions"]
    assert isinstance(functions, dict)
    return functions


def settings(prefix: str) -> Settings:
    return Settings(queue_prefix=prefix, environment="test", _env_file=None)


# --- functions ---------------------------------------------------------------------------------


def test_terraform_declares_every_contract_function() -> None:
    assert set(tf_functions()) == FUNCTION_NAMES


def test_every_function_folder_has_a_terraform_entry() -> None:
    folders = sorted(p.parent.name for p in (REPO / "functions").glob("*/main.py"))
    if not folders:
        pytest.skip("functions/ has no <name>/main.py yet; the fixed name list is checked above")
    missing = set(folders) - set(tf_functions())
    assert not missing, f"functions without a Terraform entry: {sorted(missing)}"
    unexpected = set(folders) - FUNCTION_NAMES
    assert not unexpected, f"function folders outside the contract list: {sorted(unexpected)}"


def test_one_module_instance_per_function_named_after_it() -> None:
    call = module_call("function")
    assert call["source"] == "./modules/function"
    assert call["for_each"] == "${local.functions}"
    assert call["name"] == "${each.key}"
    cf = _resource("function", "google_cloudfunctions2_function")
    build = cf["build_config"][0]
    assert build["entry_point"] == "${var.name}"
    assert build["runtime"] == "${var.runtime}"
    assert variables(TF / "modules" / "function")["runtime"]["default"] == "python311"
    # Service account ids and Cloud Run names allow no underscore: on_upload -> PREFIX-on-upload;
    # the entry point and the source folder keep the name (issue 13).
    assert local_values(TF / "modules" / "function")["function_name"] == (
        '${var.prefix}-${replace(var.name, "_", "-")}'
    )
    archive = dict(blocks(TF / "modules" / "function", "data"))["archive_file"]["source"]
    assert archive["source_dir"] == "${var.source_dir}/${var.name}"


def test_event_functions_get_an_eventarc_trigger_from_the_module() -> None:
    cf = _resource("function", "google_cloudfunctions2_function")
    dynamic = {name: body for entry in cf["dynamic"] for name, body in entry.items()}
    trigger = dynamic["event_trigger"]
    assert trigger["for_each"] == "${var.event_trigger == null ? [] : [var.event_trigger]}"
    content = trigger["content"][0]
    assert content["trigger_region"] == "${var.region}"
    assert content["retry_policy"] == (
        '${event_trigger.value.retry ? "RETRY_POLICY_RETRY" : "RETRY_POLICY_DO_NOT_RETRY"}'
    )
    assert content["service_account_email"] == "${event_trigger.value.service_account_email}"
    assert variables(TF / "modules" / "function")["event_trigger"]["default"] is None


def test_memory_defaults_and_embed_gets_one_gib() -> None:
    assert variables(TF / "modules" / "function")["memory"]["default"] == "512M"
    functions = tf_functions()
    assert functions["embed"]["memory"] == "1Gi"
    assert module_call("function")["memory"].endswith("each.value.memory)}")


def _resource(module: str, rtype: str, name: str | None = None) -> dict[str, Any]:
    directory = TF if module == "." else TF / "modules" / module
    for t, n, body in resources(directory):
        if t == rtype and (name is None or n == name):
            return body
    raise AssertionError(f"no {rtype} {name or ''} in {directory}")


# --- queues ------------------------------------------------------------------------------------


def test_every_stage_has_a_queue_named_like_the_code() -> None:
    stages = local_values()["stages"]
    assert stages == list(PIPELINE), "one queue per stage, parse included (issue 13)"
    # ragline.ingest.queues.STAGES gains parse with the Python side of issue 13; until then
    # its stages appear in Terraform in the same order, and afterwards the lists are equal.
    assert [s for s in stages if s in STAGES] == list(STAGES)
    assert set(STAGES) - {"parse"} == set(stages) - {"parse"}
    call = module_call("queue")
    assert call["for_each"] == "${toset(local.stages)}"
    assert call["stage"] == "${each.key}"
    assert call["prefix"] == "${var.prefix}"
    template = _resource("queue", "google_cloud_tasks_queue")["name"]
    for prefix in (default_prefix(), "acme-dev"):
        for stage in stages:
            rendered = template.replace("${var.prefix}", prefix).replace("${var.stage}", stage)
            assert rendered == f"{prefix}-{stage}"
            if stage in STAGES:
                assert rendered == queue_name(stage, settings(prefix))


def test_parse_is_a_private_stage_before_chunk() -> None:
    parse = tf_functions()["parse"]
    assert parse["public"] is False
    assert parse["next"][0] == "chunk"
    assert parse["memory"] == "512M", "PDF extraction"
    assert tf_functions()["on_upload"]["next"] == ["parse"]
    # Its own invoker account, stage URL and caller check come from local.stages.
    assert "for s in concat(local.stages," in local_values()["stage_urls"]
    assert _resource(".", "google_service_account", "task_invoker")["for_each"] == (
        "${toset(local.stages)}"
    )


def test_queue_prefix_and_task_urls_follow_the_same_names() -> None:
    values = local_values()
    assert values["common_env"]["QUEUE_PREFIX"] == "${var.prefix}"
    assert values["common_env"]["CLOUD_SQL_INSTANCE"] == (
        "${coalesce(var.cloud_sql_instance_override, module.database.connection_name)}"
    )
    assert values["common_env"]["FUNCTION_URLS"] == "${jsonencode(local.stage_urls)}"
    # Deterministic run.app URL of the service PREFIX-STAGE (= the function's name).
    assert "https://${var.prefix}-${s}-${data.google_project.this.number}." in values["stage_urls"]
    assert 'for s in concat(local.stages, ["retention", "reconcile"])' in values["stage_urls"]
    # The scheduler's token audience is the retention URL; its caller is the scheduler SA.
    assert values["scheduler_sa_email"].startswith("${var.prefix}-retention-sched@")


def test_queue_retry_and_rate_settings_are_configured() -> None:
    queue = _resource("queue", "google_cloud_tasks_queue")
    retry = queue["retry_config"][0]
    for key in ("max_attempts", "min_backoff", "max_backoff", "max_doublings"):
        assert key in retry
    assert {"max_dispatches_per_second", "max_concurrent_dispatches"} <= set(
        queue["rate_limits"][0]
    )


def test_enqueue_chain_previous_stage_only() -> None:
    functions = tf_functions()
    nexts = {name: f["next"] for name, f in functions.items() if f["next"]}
    assert nexts == CHAIN
    previous = ["on_upload", *PIPELINE[:-1]]
    for before, stage in zip(previous, PIPELINE, strict=True):
        assert CHAIN[before][0] == stage
    assert CHAIN["ingest"][0] == "chunk", "text posted to ingest needs no parsing"
    enqueuers = module_call("queue")["enqueuer_service_accounts"]
    assert "for name, targets in local.enqueue_targets" in enqueuers
    assert "if contains(targets, each.key)" in enqueuers
    iam = _resource("queue", "google_cloud_tasks_queue_iam_member")
    assert iam["role"] == "roles/cloudtasks.enqueuer"
    assert iam["for_each"] == "${var.enqueuer_service_accounts}"


def enqueue_targets() -> dict[str, list[str]]:
    """local.enqueue_targets as Terraform computes it: `next`, then a stage's own queue."""
    expr = local_values()["enqueue_targets"]
    assert expr == (
        "${{for name, f in local.functions : "
        "name => distinct(concat(f.next, [for s in local.stages : s if s == name]))}}"
    )
    stages = local_values()["stages"]
    return {
        name: list(dict.fromkeys([*f["next"], *(s for s in stages if s == name)]))
        for name, f in tf_functions().items()
    }


def test_every_stage_may_enqueue_to_its_own_queue() -> None:
    """Issue 16: the fair-share scheduler defers a chunk or embed task to its own queue and a
    retry may re-enqueue there, so each stage's account is an enqueuer of its own queue, may
    act as its own invoker account and names it in TASK_SERVICE_ACCOUNTS."""
    targets = enqueue_targets()
    for stage in local_values()["stages"]:
        assert stage in targets[stage], f"{stage} cannot enqueue to its own queue"
        assert targets[stage][: len(CHAIN.get(stage, []))] == CHAIN.get(stage, [])
    for name in set(targets) - set(local_values()["stages"]):
        assert targets[name] == tf_functions()[name]["next"]
    values = local_values()
    assert "for name, targets in local.enqueue_targets" in values["enqueues"]
    enqueuers = module_call("queue")["enqueuer_service_accounts"]
    assert "local.enqueue_targets" in enqueuers and "f.next" not in enqueuers
    assert (
        "TASK_SERVICE_ACCOUNTS = jsonencode({for s in local.enqueue_targets[name] : "
        "s => google_service_account.task_invoker[s].email})"
    ) in values["function_env"]


def test_enqueuers_may_act_as_the_next_stage_invoker() -> None:
    act_as = _resource(".", "google_service_account_iam_member", "task_invoker_user")
    assert act_as["role"] == "roles/iam.serviceAccountUser"
    assert act_as["for_each"] == "${local.enqueues}"
    assert "for s in targets" in local_values()["enqueues"]
    assert "task_invoker[each.value.stage]" in act_as["service_account_id"]
    assert "TASK_SERVICE_ACCOUNT" in local_values()["function_env"]
    env = local_values()["function_env"]
    assert '"TASK_SERVICE_ACCOUNT" => google_service_account.task_invoker[s].email' in env
    assert "for s in f.next" in env
    # A task handler accepts tokens of its own stage's invoker account only.
    assert (
        '"TASK_CALLER_SERVICE_ACCOUNT" => google_service_account.task_invoker[s].email if s == name'
        in env
    )


# --- invocation: public vs private -------------------------------------------------------------


def test_public_flag_only_on_the_http_functions() -> None:
    public = {name for name, f in tf_functions().items() if f["public"] is True}
    assert public == PUBLIC_FUNCTIONS
    call = module_call("function")
    assert call["public"] == "${each.value.public}"
    assert call["ingress_settings"] == '${each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"}'
    assert variables(TF / "modules" / "function")["public"]["default"] is False


def test_no_unauthenticated_invoker_outside_the_public_switch() -> None:
    directories = [TF, *(TF / "modules" / m for m in MODULES)]
    open_to_all = [
        (d.name, t, n, b)
        for d in directories
        for t, n, b in resources(d)
        if "allUsers" in str(b) or "allAuthenticatedUsers" in str(b)
    ]
    assert [(d, t, n) for d, t, n, _ in open_to_all] == [
        ("function", "google_cloud_run_service_iam_member", "public")
    ]
    public = open_to_all[0][3]
    assert public["member"] == "allUsers"
    assert public["count"] == "${var.public ? 1 : 0}"
    assert public["role"] == "roles/run.invoker"


def test_task_handlers_are_invoked_by_their_own_task_account() -> None:
    call = module_call("function")
    expr = call["invoker_service_accounts"]
    assert "for s in local.stages" in expr and "if s == each.key" in expr
    invoker = _resource("function", "google_cloud_run_service_iam_member", "invoker")
    assert invoker["member"] == "serviceAccount:${each.value}"
    assert invoker["role"] == "roles/run.invoker"


def test_scheduler_job_targets_retention() -> None:
    call = module_call("scheduler")
    assert call["name"] == "retention"
    assert call["target_service"] == '${module.function["retention"].function_name}'
    job = _resource("scheduler", "google_cloud_scheduler_job")
    target = job["http_target"][0]
    assert target["uri"] == "${var.target_url}"
    assert target["oidc_token"][0]["audience"] == "${var.target_url}"
    assert target["oidc_token"][0]["service_account_email"] == (
        "${google_service_account.default.email}"
    )
    invoker = _resource("scheduler", "google_cloud_run_service_iam_member")
    assert invoker["service"] == "${var.target_service}"
    schedule = variables(TF)["retention_schedule"]["default"].split()
    assert len(schedule) == 5 and schedule[2:] == ["*", "*", "*"], "retention runs daily"


def test_scheduler_audience_is_the_url_retention_verifies() -> None:
    """Issue 15, finding 3: the job's OIDC audience and FUNCTION_URLS["retention"] (what
    ragline.api.tasks.verify_queue_or_scheduler compares it with) are one expression."""
    values = local_values()
    assert values["common_env"]["FUNCTION_URLS"] == "${jsonencode(local.stage_urls)}"
    assert '"retention"' in values["stage_urls"]
    call = module_call("scheduler")
    assert call["target_url"] == '${local.stage_urls["retention"]}'
    assert "uri" not in call["target_url"], "the hash-style service_config.uri is not the audience"


# --- environment and secrets -------------------------------------------------------------------


def _env_names() -> set[str]:
    values = local_values()
    names = set(values["common_env"])
    for key in ("function_env", "function_secret_env"):
        names |= set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})\s*=", values[key]))
        names |= set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"\s*=>', values[key]))
    return names


def test_environment_variables_are_settings_fields() -> None:
    names = _env_names()
    assert names >= REQUIRED_ENV
    fields = {name.upper() for name in Settings.model_fields}
    unknown = names - fields - PENDING_SETTINGS
    assert not unknown, f"Terraform sets variables Settings does not read: {sorted(unknown)}"
    env = local_values()["common_env"]
    assert env["ENVIRONMENT"] == "gcp"
    assert env["QUEUE_BACKEND"] == "cloudtasks"
    assert env["TASK_AUTH"] == "oidc"
    assert env["TASK_MAX_ATTEMPTS"] == "${tostring(var.queue_config.max_attempts)}"


def test_db_iam_user_is_the_service_account_without_domain() -> None:
    values = local_values()
    assert values["db_iam_users"].endswith(
        '"${var.prefix}-${replace(name, "_", "-")}@${var.project_id}.iam"}}'
    )
    user = _resource("database", "google_sql_user")
    assert user["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert user["name"] == '${trimsuffix(each.value, ".gserviceaccount.com")}'
    sa = _resource("function", "google_service_account")
    assert sa["account_id"] == "${local.function_name}"


def test_pepper_is_mounted_only_on_public_functions() -> None:
    secret_env = local_values()["function_secret_env"]
    assert re.search(
        r"API_KEY_PEPPER = google_secret_manager_secret\.pepper\.secret_id", secret_env
    )
    assert re.search(r"API_KEY_PEPPER[^}]*\}\s*:\s*k => \{secret = v\} if f\.public\}", secret_env)
    pepper = _resource(".", "google_secret_manager_secret", "pepper")
    assert pepper["secret_id"] == "${var.prefix}-api-key-pepper"
    assert not [t for t, _, _ in resources(TF) if t == "google_secret_manager_secret_version"]
    accessors = [
        (t, b)
        for d in (TF, TF / "modules" / "function")
        for t, _, b in resources(d)
        if "secretAccessor" in str(b.get("role", ""))
    ]
    assert len(accessors) == 1, "accessor is granted only by the function module, per mount"
    assert accessors[0][1]["for_each"] == "${var.secret_environment_variables}"


# --- database, project, monitoring ---------------------------------------------------------------


def test_database_is_iam_only_backed_up_and_protected() -> None:
    instance = _resource("database", "google_sql_database_instance")
    cfg = instance["settings"][0]
    flags = {f["name"]: f["value"] for f in cfg["database_flags"]}
    assert flags["cloudsql.iam_authentication"] == "on"
    ip = cfg["ip_configuration"][0]
    assert "authorized_networks" not in ip
    assert ip["ssl_mode"] == "${var.ssl_mode}"
    assert variables(TF / "modules" / "database")["ssl_mode"]["default"] in (
        "ENCRYPTED_ONLY",
        "TRUSTED_CLIENT_CERTIFICATE_REQUIRED",
    )
    backup = cfg["backup_configuration"][0]
    assert backup["enabled"] is True and backup["point_in_time_recovery_enabled"] is True
    assert instance["deletion_protection"] == "${var.deletion_protection}"
    root_vars = variables(TF)
    assert root_vars["deletion_protection"]["default"] is True
    assert root_vars["db_version"]["default"] == "POSTGRES_17"
    assert module_call("database")["database_name"] == "ragline"
    assert settings("ragline").db_name == "ragline"


def test_runtime_and_migration_accounts_are_database_users() -> None:
    users = module_call("database")["iam_service_accounts"]
    assert "for name, _ in local.functions" in users
    assert "migrate = google_service_account.migrate.email" in users
    sql = _resource(".", "google_project_iam_member", "sql")
    assert "local.sql_roles" in sql["for_each"]
    assert local_values()["sql_roles"] == ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]


def test_required_apis_are_enabled() -> None:
    apis = _resource(".", "google_project_service", "apis")["for_each"]
    for api in (
        "cloudfunctions",
        "run",
        "cloudbuild",
        "artifactregistry",
        "sqladmin",
        "cloudtasks",
        "cloudscheduler",
        "secretmanager",
        "logging",
        "monitoring",
        "iam",
        # issue 13: upload events (Eventarc over Pub/Sub from Storage), signBlob for uploads
        "eventarc",
        "pubsub",
        "storage",
        "iamcredentials",
    ):
        assert f'"{api}.googleapis.com"' in apis


def test_document_failed_metric_and_alert() -> None:
    metric = _resource(".", "google_logging_metric", "document_failed")
    assert 'jsonPayload.event=\\"document_failed\\"' in metric["filter"]
    alert = _resource(".", "google_monitoring_alert_policy", "document_failed")
    assert alert["notification_channels"] == "${var.alert_notification_channels}"


def test_source_bucket_is_private_and_versioned() -> None:
    bucket = _resource(".", "google_storage_bucket", "sources")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is True


# --- uploads (issue 13) --------------------------------------------------------------------


def test_upload_bucket_is_private_unversioned_and_given_to_its_functions() -> None:
    bucket = _resource(".", "google_storage_bucket", "uploads")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is False, "the app keys on object generation"
    assert bucket["name"] == "${local.upload_bucket}"
    assert local_values()["upload_bucket"] == (
        '${coalesce(var.upload_bucket_name, "${var.project_id}-${var.prefix}-uploads")}'
    )
    dynamic = {name: body for entry in bucket["dynamic"] for name, body in entry.items()}
    assert "var.upload_retention_days == null ? []" in dynamic["lifecycle_rule"]["for_each"]
    cors = dynamic["cors"]
    assert cors["for_each"] == (
        "${length(var.upload_cors_origins) > 0 ? [var.upload_cors_origins] : []}"
    )
    assert cors["content"][0]["method"] == ["PUT"]
    root = variables(TF)
    assert root["upload_cors_origins"]["default"] == []
    assert root["upload_retention_days"]["default"] is None
    assert root["upload_soft_delete_days"]["default"] == 0
    # Object roles on this bucket only, for the three functions that use it.
    roles = local_values()["upload_bucket_roles"]
    assert roles == {
        "on_upload": "roles/storage.objectViewer",
        "parse": "roles/storage.objectViewer",
        "uploads": "roles/storage.objectCreator",
    }
    iam = _resource(".", "google_storage_bucket_iam_member", "uploads")
    assert iam["for_each"] == "${local.upload_bucket_roles}"
    assert iam["bucket"] == "${google_storage_bucket.uploads.name}"
    assert iam["member"] == "${module.function[each.key].service_account_iam_email}"
    env = local_values()["function_env"]
    assert (
        "UPLOAD_BUCKET = google_storage_bucket.uploads.name} : k => v "
        "if contains(keys(local.upload_bucket_roles), name)"
    ) in env


def test_both_object_events_trigger_on_upload() -> None:
    types = local_values()["upload_event_types"]
    assert types == UPLOAD_EVENT_TYPES
    bucket = "${google_storage_bucket.uploads.name}"
    account = "${google_service_account.upload_events.email}"
    # The first through the function's own trigger (a gen2 function has one), with retry.
    trigger = local_values()["event_triggers"]["on_upload"]
    assert trigger["event_type"] == "${local.upload_event_types[0]}"
    assert trigger["event_filters"] == {"bucket": bucket}
    assert trigger["retry"] is True
    assert trigger["service_account_email"] == account
    assert set(local_values()["event_triggers"]) == EVENT_FUNCTIONS
    assert (
        module_call("function")["event_trigger"] == "${try(local.event_triggers[each.key], null)}"
    )
    # The others through Eventarc triggers on the same Cloud Run service.
    eventarc = _resource(".", "google_eventarc_trigger", "on_upload")
    assert eventarc["for_each"] == (
        "${toset(slice(local.upload_event_types, 1, length(local.upload_event_types)))}"
    )
    criteria = {c["attribute"]: c["value"] for c in eventarc["matching_criteria"]}
    assert criteria == {"type": "${each.key}", "bucket": bucket}
    destination = eventarc["destination"][0]["cloud_run_service"][0]
    assert destination["service"] == '${module.function["on_upload"].function_name}'
    assert destination["region"] == "${var.region}"
    assert eventarc["service_account"] == account
    assert eventarc["location"] == "${var.region}"
    # Together: every event type, each once.
    first = re.fullmatch(r"\$\{local\.upload_event_types\[(\d+)\]\}", trigger["event_type"])
    rest = re.search(r"slice\(local\.upload_event_types, (\d+), length", eventarc["for_each"])
    assert first is not None and rest is not None
    covered = [types[int(first.group(1))], *types[int(rest.group(1)) :]]
    assert sorted(covered) == sorted(UPLOAD_EVENT_TYPES)
    # The trigger's account may invoke on_upload, and only on_upload.
    invokers = module_call("function")["invoker_service_accounts"]
    assert (
        "{for k, v in {events = google_service_account.upload_events.email} : k => v "
        "if contains(keys(local.event_triggers), each.key)}"
    ) in invokers
    assert tf_functions()["on_upload"]["public"] is False


def test_trigger_account_receives_and_storage_agent_publishes() -> None:
    grants = _resource(".", "google_project_iam_member", "events")["for_each"]
    assert grants["receiver"] == {
        "member": "serviceAccount:${google_service_account.upload_events.email}",
        "role": "roles/eventarc.eventReceiver",
    }
    assert grants["publisher"] == {
        "member": "${data.google_storage_project_service_account.this.member}",
        "role": "roles/pubsub.publisher",
    }
    data = dict(blocks(TF, "data"))
    assert "this" in data["google_storage_project_service_account"]
    # Eventarc checks the grants when a trigger is created: they come first, then a wait.
    wait = _resource(".", "time_sleep", "events_iam")
    assert "google_project_iam_member.events" in wait["triggers"]["roles"]
    assert "${time_sleep.events_iam}" in module_call("function")["depends_on"]
    assert "${time_sleep.events_iam}" in _resource(".", "google_eventarc_trigger")["depends_on"]


def test_uploads_signs_as_itself_only() -> None:
    signer = _resource(".", "google_service_account_iam_member", "uploads_signer")
    assert signer["role"] == "roles/iam.serviceAccountTokenCreator"
    assert signer["service_account_id"] == '${module.function["uploads"].service_account_id}'
    assert signer["member"] == '${module.function["uploads"].service_account_iam_email}'
    token_creators = [
        (t, n) for t, n, b in _all_resources() if "serviceAccountTokenCreator" in str(b)
    ]
    assert token_creators == [("google_service_account_iam_member", "uploads_signer")]
    assert tf_functions()["uploads"]["public"] is True


# --- style (Cloud Foundation Fabric) ----------------------------------------------------------


@pytest.mark.parametrize("directory", [".", *(f"modules/{m}" for m in MODULES)])
def test_module_layout_and_variables(directory: str) -> None:
    path = TF / directory
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (path / name).is_file(), f"{directory}/{name} missing"
    declared = list(dict(blocks(path, "variable")))
    assert declared == sorted(declared), f"{directory}: variables are not alphabetical"
    for name, body in variables(path).items():
        assert body.get("description"), f"{directory}: variable {name} has no description"
        assert body.get("type"), f"{directory}: variable {name} has no type"
    if "prefix" in declared:
        assert variables(path)["prefix"].get("validation"), f"{directory}: prefix not validated"
    terraform = load(path / "versions.tf")["terraform"][0]
    assert terraform["required_version"] == ">= 1.6"
    # The root pins the version the offline schema check was extracted from; modules accept
    # the major (tests/unit/test_terraform_schema.py checks both against the schema).
    google = terraform["required_providers"][0]["google"]["version"]
    assert google == ("6.50.0" if directory == "." else ">= 6.50.0, < 7.0.0")


def test_root_main_only_wires_modules() -> None:
    main = load(TF / "main.tf")
    assert set(main) <= {"locals", "module"}
    assert {name for name, _ in blocks(TF, "module")} == {
        "database",
        "function",
        "queue",
        "scheduler",
        "reconcile_scheduler",
    }


def test_reconcile_job_targets_reconcile() -> None:
    """Issue 16: a scheduled reconcile, audience = the URL reconcile verifies, its own caller."""
    call = module_call("reconcile_scheduler")
    assert call["name"] == "reconcile"
    assert call["target_service"] == '${module.function["reconcile"].function_name}'
    assert call["target_url"] == '${local.stage_urls["reconcile"]}'
    assert local_values()["reconcile_sa_email"].startswith("${var.prefix}-reconcile-sched@")


def _readme_examples(path: Path) -> list[str]:
    return re.findall(r"```hcl\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("directory", [".", *(f"modules/{m}" for m in MODULES)])
def test_readme_documents_every_input_and_output(directory: str) -> None:
    path = TF / directory
    readme = (path / "README.md").read_text(encoding="utf-8")
    for kind in ("variable", "output"):
        for name, _ in blocks(path, kind):
            assert f"| `{name}` |" in readme, f"{directory}/README.md lacks {kind} {name}"


@pytest.mark.parametrize("module", MODULES)
def test_module_readme_example_matches_variables(module: str) -> None:
    path = TF / "modules" / module
    declared = variables(path)
    required = {n for n, b in declared.items() if "default" not in b}
    examples = [e for e in _readme_examples(path / "README.md") if "module " in e]
    assert examples, f"{module}/README.md has no example"
    for example in examples:
        for body in load_text(example)["module"][0].values():
            given = set(body) - {"source", "for_each", "depends_on"}
            assert given <= set(declared), f"unknown inputs {given - set(declared)}"
            assert required <= given, f"missing required inputs {required - given}"
            assert body["source"] == f"./modules/{module}"


def test_root_readme_tfvars_example_matches_variables() -> None:
    declared = variables(TF)
    required = {n for n, b in declared.items() if "default" not in b}
    examples = [e for e in _readme_examples(TF / "README.md") if "project_id" in e]
    assert examples
    for example in examples:
        given = set(load_text(example))
        assert given <= set(declared), f"unknown variables {given - set(declared)}"
        assert required <= given


# --- tools -------------------------------------------------------------------------------------


def _tool_env() -> dict[str, str]:
    return {**os.environ, "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1"}


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform binary not installed")
    proc = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TF)],
        capture_output=True,
        text=True,
        env=_tool_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"terraform fmt would change files:\n{proc.stdout}{proc.stderr}"


def _checkov() -> str | None:
    local = REPO / ".venv-checkov" / "bin" / "checkov"
    if local.is_file():
        return str(local)
    return shutil.which("checkov")


@pytest.mark.slow
def test_checkov() -> None:
    checkov = _checkov()
    if checkov is None:
        pytest.skip("checkov not installed (.venv-checkov/bin/checkov or on PATH)")
    proc = subprocess.run(
        [
            checkov,
            "-d",
            str(TF),
            "--framework",
            "terraform",
            "--skip-download",
            "--compact",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=_tool_env(),
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"checkov failed:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr


# --- deploy: identities, ordering, pipelines (issue 15) -------------------------------------------

DEPLOYMENT = REPO / "docs" / "DEPLOYMENT.md"

#: Role the deploy identity needs to set the IAM policy behind each IAM resource type
#: (Editor has no setIamPolicy on any of these).
IAM_RESOURCE_ROLES = {
    "google_cloud_run_service_iam_member": "roles/run.admin",
    "google_cloud_tasks_queue_iam_member": "roles/cloudtasks.queueAdmin",
    "google_project_iam_member": "roles/resourcemanager.projectIamAdmin",
    "google_secret_manager_secret_iam_member": "roles/secretmanager.admin",
    "google_service_account_iam_member": "roles/iam.serviceAccountAdmin",
    "google_storage_bucket_iam_member": "roles/storage.admin",
}


def _all_resources() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for directory in (TF, *(TF / "modules" / m for m in MODULES)):
        yield from resources(directory)


def _deploy_roles() -> set[str]:
    """Roles of the deploy identity in the docs' least-privilege table."""
    text = DEPLOYMENT.read_text(encoding="utf-8")
    table = text[text.index("### Identities") : text.index("### Prerequisites")]
    roles: set[str] = set()
    in_deploy = False
    for line in table.splitlines():
        if line.startswith("| `"):
            in_deploy = "ragline-deploy@" in line
        if in_deploy:
            roles |= set(re.findall(r"`(roles/[\w.]+)`", line))
    return roles


def test_deploy_identity_has_the_role_of_every_iam_resource_type() -> None:
    used = {t for t, _, _ in _all_resources() if t.endswith(("_iam_member", "_iam_binding"))}
    unknown = used - set(IAM_RESOURCE_ROLES)
    assert not unknown, f"add the role that sets these policies to IAM_RESOURCE_ROLES: {unknown}"
    roles = _deploy_roles()
    missing = {t: IAM_RESOURCE_ROLES[t] for t in used if IAM_RESOURCE_ROLES[t] not in roles}
    assert not missing, f"docs/DEPLOYMENT.md deploy identity lacks {missing}"
    assert {"roles/editor", "roles/cloudsql.admin", "roles/iam.serviceAccountUser"} <= roles
    # The bootstrap grants exactly the roles of the table (project-level ones).
    text = DEPLOYMENT.read_text(encoding="utf-8")
    loop = re.search(r"for role in (.*?); do", text, re.S)
    assert loop is not None
    granted = set(re.findall(r"roles/[\w.]+", loop.group(1)))
    assert granted == roles - {"roles/secretmanager.secretAccessor"}


def test_functions_build_as_the_dedicated_build_account() -> None:
    call = module_call("function")
    assert call["build_service_account"] == (
        "${coalesce(var.build_service_account, google_service_account.build.id)}"
    )
    assert _resource(".", "google_service_account", "build")["account_id"] == "${var.prefix}-build"
    roles = local_values()["build_roles"]
    build = {v["role"] for k, v in roles.items() if k.startswith("build/")}
    assert build == {"roles/logging.logWriter", "roles/artifactregistry.writer"}
    sources = _resource(".", "google_storage_bucket_iam_member", "build_sources")
    assert sources["role"] == "roles/storage.objectViewer"
    assert sources["bucket"] == "${google_storage_bucket.sources.name}"
    assert "${time_sleep.build_iam}" in call["depends_on"]


def test_alert_policy_waits_for_its_metric() -> None:
    wait = _resource(".", "time_sleep", "document_failed_metric")
    assert wait["triggers"]["metric"] == "${google_logging_metric.document_failed.id}"
    assert wait["create_duration"].endswith("s")
    alert = _resource(".", "google_monitoring_alert_policy", "document_failed")
    assert alert["depends_on"] == ["${time_sleep.document_failed_metric}"]


def test_every_root_resource_is_ordered_after_the_apis() -> None:
    """Issue 15, finding 6: nothing is created before google_project_service.apis."""
    apis = "google_project_service.apis"
    pending = {
        (t, n): str(b) for t, n, b in resources(TF) if (t, n) != ("google_project_service", "apis")
    }
    modules = {name: str(body) for name, body in blocks(TF, "module")}
    ordered = {f"module.{m}" for m, body in modules.items() if apis in body}
    assert ordered == {f"module.{m}" for m in modules}, "every module call depends on the APIs"
    changed = True
    while changed:
        changed = False
        for (t, n), body in list(pending.items()):
            if apis in body or any(ref in body for ref in ordered):
                ordered.add(f"{t}.{n}")
                del pending[(t, n)]
                changed = True
    assert not pending, f"not ordered after the APIs: {sorted(pending)}"
    enabled = _resource(".", "google_project_service", "apis")["for_each"]
    for api in ("serviceusage", "cloudresourcemanager"):
        assert f'"{api}.googleapis.com"' in enabled


def _build(name: str) -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
    return data


def _step_text(step: dict[str, Any]) -> str:
    return " ".join(str(a) for a in step.get("args", []))


def test_deploy_build_validates_and_plans_before_migrating_then_applies_the_plan() -> None:
    steps = [s["id"] for s in _build("cloudbuild.yaml")["steps"]]
    order = ["package", "terraform-init", "terraform-validate", "terraform-plan", "migrate"]
    order += ["terraform-apply", "smoke"]
    assert [s for s in steps if s in order] == order
    by_id = {s["id"]: s for s in _build("cloudbuild.yaml")["steps"]}
    assert "-out=/workspace/tfplan" in by_id["terraform-plan"]["args"]
    apply = by_id["terraform-apply"]["args"]
    assert apply[-1] == "/workspace/tfplan" and "-auto-approve" not in apply
    assert not any(a.startswith("-var") for a in apply), "a saved plan takes no variables"
    assert "gcloud builds triggers run" in _step_text(by_id["migrate"])


def test_deploy_build_runs_no_installed_or_test_code() -> None:
    """Issue 15, finding 8: the identity that deploys never runs make setup/test or pip install."""
    deploy = _build("cloudbuild.yaml")
    text = " ".join(_step_text(s) for s in deploy["steps"])
    for forbidden in ("make ", "pip install", ".venv/bin", "pytest"):
        assert forbidden not in text, forbidden
    assert "--only-binary=:all:" in text and "--no-deps" in text
    tests = _build("cloudbuild-test.yaml")
    test_text = " ".join(_step_text(s) for s in tests["steps"])
    assert "make setup" in test_text and "make test" in test_text
    assert "availableSecrets" not in tests and "terraform" not in test_text.replace("make", "")
    migrate = _build("cloudbuild-migrate.yaml")
    migrate_text = " ".join(_step_text(s) for s in migrate["steps"])
    assert "ragline migrate" in migrate_text and "terraform" not in migrate_text
    # The large orgs' own graphs, by the schema's owner, on the migrated schema.
    assert migrate_text.index("ragline migrate") < migrate_text.index("ragline org-graphs")
    assert "availableSecrets" not in migrate


def test_deployment_guide_has_no_forward_dependencies() -> None:
    """Issue 15, findings 6 and 9: bootstrap APIs first, smoke key before the first deploy run,
    schema before the smoke org, no list of gaps that are fixed."""
    text = DEPLOYMENT.read_text(encoding="utf-8")
    guide = text[text.index("### First deploy") : text.index("### The Cloud Build pipelines")]

    def at(needle: str) -> int:
        assert needle in guide, needle
        return guide.index(needle)

    assert at("serviceusage.googleapis.com cloudresourcemanager.googleapis.com") < at("terraform ")
    assert at("service-accounts create ragline-deploy") < at("terraform init")
    assert at("versions add ragline-api-key-pepper") < at("terraform apply tfplan")
    assert at("terraform apply tfplan") < at("CREATE ROLE ragline_app")
    assert at("CREATE ROLE ragline_ops") < at("GRANT ragline_ops TO")
    assert at("triggers create manual --name=ragline-migrate-dev") < at(
        "triggers run ragline-migrate-dev"
    )
    assert at("triggers run ragline-migrate-dev") < at("ragline org create smoke")
    assert at("gcloud secrets create ragline-smoke-api-key") < at("triggers run ragline-deploy-dev")
    steps = [int(n) for n in re.findall(r"^(\d+)\. \*\*", guide, flags=re.M)]
    assert steps == list(range(1, len(steps) + 1))
    assert "Known gaps" not in text


def test_function_requirements_are_pinned() -> None:
    """Issue 15, finding 7: every runtime dependency of the functions has an exact version."""
    import tomllib

    pins = {}
    for line in (REPO / "requirements" / "functions.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[name] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for spec in [*project["dependencies"], "onnxruntime", "tokenizers", "numpy"]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", spec)[0]).lower()
        assert name in pins, f"{name} has no pin in requirements/functions.txt"
