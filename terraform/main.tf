/**
 * ragline on Google Cloud: wires the modules. Project-level resources sit beside
 * this file by entity (project.tf, iam.tf, secrets.tf, storage.tf, monitoring.tf).
 */

locals {
  # One entry per folder in functions/ (the name is the folder, the entry point and the key).
  # public: HTTP API authenticated by ragline API keys in the app (allUsers invoker, all ingress).
  # next: the stages this function enqueues to (it gets enqueuer on those queues and actAs on
  # their task invoker accounts): the first is its successor; ingest (re-post), documents
  # (retry) and reconcile re-enqueue a stalled document's missing work at any stage (issue 16).
  # A stage may always enqueue to its own queue as well (local.enqueue_targets).
  # embeds: it loads the embedding model.
  functions = {
    answer    = { public = true, next = [], embeds = true, memory = "512M", timeout_seconds = 120 }
    console   = { public = true, next = [], embeds = false, memory = "256M", timeout_seconds = 30 }
    chunk     = { public = false, next = ["embed"], embeds = false, memory = "512M", timeout_seconds = 300 }
    documents = { public = true, next = ["chunk", "embed", "finalize", "parse"], embeds = false, memory = "512M", timeout_seconds = 60 }
    embed     = { public = false, next = ["finalize"], embeds = true, memory = "1Gi", timeout_seconds = 540 }
    # Admin API of embedding spaces (issue 17): enqueues shadow-build batches to embed, and
    # loads the new model once to check its dimension.
    embeddings = { public = true, next = ["embed"], embeds = true, memory = "1Gi", timeout_seconds = 120 }
    finalize   = { public = false, next = [], embeds = false, memory = "512M", timeout_seconds = 300 }
    health     = { public = true, next = [], embeds = true, memory = "512M", timeout_seconds = 30 }
    ingest     = { public = true, next = ["chunk", "embed", "finalize", "parse"], embeds = false, memory = "512M", timeout_seconds = 120 }
    on_upload  = { public = false, next = ["parse"], embeds = false, memory = "512M", timeout_seconds = 60 }
    parse      = { public = false, next = ["chunk"], embeds = false, memory = "512M", timeout_seconds = 300 }
    reconcile  = { public = false, next = ["chunk", "embed", "finalize", "parse"], embeds = false, memory = "512M", timeout_seconds = 300 }
    retention  = { public = false, next = [], embeds = false, memory = "512M", timeout_seconds = 540 }
    runs       = { public = true, next = [], embeds = false, memory = "512M", timeout_seconds = 60 }
    search     = { public = true, next = [], embeds = true, memory = "512M", timeout_seconds = 60 }
    uploads    = { public = true, next = [], embeds = false, memory = "512M", timeout_seconds = 60 }
  }

  # Pipeline stages reached through Cloud Tasks, as ragline.ingest.queues.STAGES.
  stages = ["parse", "chunk", "embed", "finalize"]

  # The queues each function enqueues to: its `next`, and for a stage its own queue too
  # (issue 16: the fair-share scheduler defers a task to its own queue, and a retry may
  # re-enqueue there). Enqueuer grants, actAs grants and TASK_SERVICE_ACCOUNTS follow it.
  enqueue_targets = {
    for name, f in local.functions : name => distinct(concat(f.next, [for s in local.stages : s if s == name]))
  }

  # CloudEvent functions: their Eventarc trigger (first event type; the others are
  # google_eventarc_trigger resources in events.tf, which target the same service).
  event_triggers = {
    on_upload = {
      event_type            = local.upload_event_types[0]
      event_filters         = { bucket = google_storage_bucket.uploads.name }
      retry                 = true # the handler is idempotent
      service_account_email = google_service_account.upload_events.email
    }
  }

  # Deterministic run.app URLs (SERVICE-PROJECT_NUMBER.REGION.run.app) of the task
  # handlers and of retention: known before the functions exist, so no function depends on
  # another. They are FUNCTION_URLS (the OIDC audience the functions verify) and the URLs
  # Cloud Tasks (ragline.ingest.queues) and the scheduler job call with that audience.
  # Cloud Tasks reaches ALLOW_INTERNAL_ONLY services on run.app URLs only.
  stage_urls = {
    for s in concat(local.stages, ["retention", "reconcile"]) :
    s => "https://${var.prefix}-${s}-${data.google_project.this.number}.${var.region}.run.app"
  }

  # The same deterministic URLs for the public functions: the console's CONSOLE_API_URLS, and
  # its origin the API functions' CORS_ORIGINS (issue 19), with no dependency between them.
  # (PROJECT_NUMBER.REGION.run.app is taken from a stage URL: one place computes it.)
  run_app_domain = trimprefix(local.stage_urls["retention"], "https://${var.prefix}-retention-")
  public_urls = {
    for name, f in local.functions :
    name => "https://${var.prefix}-${replace(name, "_", "-")}-${local.run_app_domain}" if f.public
  }

  # The scheduler job's OIDC identity, known without depending on the scheduler module
  # (which depends on the retention function): the only caller retention accepts.
  scheduler_sa_email = "${var.prefix}-retention-sched@${var.project_id}.iam.gserviceaccount.com"
  # The same for the reconcile job (modules/scheduler names its account PREFIX-NAME-sched).
  reconcile_sa_email = "${var.prefix}-reconcile-sched@${var.project_id}.iam.gserviceaccount.com"

  # Every (function, stage it enqueues to) pair: enqueuer and actAs grants, one each.
  enqueues = merge([
    for name, targets in local.enqueue_targets : { for s in targets : "${name}-${s}" => { function = name, stage = s } }
  ]...)

  # Cloud SQL IAM user = service account email without ".gserviceaccount.com" (account ids
  # have dashes where function names have underscores).
  db_iam_users = {
    for name, _ in local.functions : name => "${var.prefix}-${replace(name, "_", "-")}@${var.project_id}.iam"
  }

  common_env = {
    CLOUD_SQL_INSTANCE = coalesce(var.cloud_sql_instance_override, module.database.connection_name)
    DB_NAME            = module.database.database_name
    EMBEDDING_PROVIDER = var.embedding_provider
    ENVIRONMENT        = "gcp"
    FUNCTION_URLS      = jsonencode(local.stage_urls)
    GCP_PROJECT        = var.project_id
    GCP_REGION         = var.region
    QUEUE_BACKEND      = "cloudtasks"
    QUEUE_PREFIX       = var.prefix
    # Task endpoints verify the Cloud Tasks OIDC token; retries as many as the queue makes.
    TASK_AUTH         = "oidc"
    TASK_MAX_ATTEMPTS = tostring(var.queue_config.max_attempts)
  }

  minilm = var.embedding_provider == "minilm"
  openai = var.embedding_provider == "openai"
  vertex = var.embedding_provider == "vertex"

  # Optional variables are filtered per function with `if` (a conditional between
  # objects of different shapes does not type-check).
  function_env = {
    for name, f in local.functions : name => merge(
      local.common_env,
      { DB_IAM_USER = local.db_iam_users[name] },
      # OIDC identity Cloud Tasks uses to call the next stage.
      { for s in f.next : "TASK_SERVICE_ACCOUNT" => google_service_account.task_invoker[s].email if s == f.next[0] },
      # Each queue's tasks carry the OIDC token of that stage's invoker (ragline.cloud.gcp).
      { for k, v in { TASK_SERVICE_ACCOUNTS = jsonencode({ for s in local.enqueue_targets[name] : s => google_service_account.task_invoker[s].email }) } : k => v if length(local.enqueue_targets[name]) > 0 },
      # OIDC identity a task handler accepts: its own stage's invoker account.
      { for s in local.stages : "TASK_CALLER_SERVICE_ACCOUNT" => google_service_account.task_invoker[s].email if s == name },
      { for k, v in { SCHEDULER_CALLER_SERVICE_ACCOUNT = local.scheduler_sa_email } : k => v if name == "retention" },
      { for k, v in { SCHEDULER_CALLER_SERVICE_ACCOUNT = local.reconcile_sa_email } : k => v if name == "reconcile" },
      # The ingestion bucket, for the functions granted a role on it (storage.tf).
      { for k, v in { UPLOAD_BUCKET = google_storage_bucket.uploads.name } : k => v if contains(keys(local.upload_bucket_roles), name) },
      # `ragline package` copies the MiniLM tokenizer and the built int8pc model into the
      # source root (/workspace).
      { for k, v in { MINILM_TOKENIZER_PATH = "/workspace/minilm-tokenizer.json", MINILM_MODEL_DIR = "/workspace" } : k => v if f.embeds && local.minilm },
      { for k, v in { VERTEX_LOCATION = var.region, VERTEX_PROJECT = var.project_id } : k => v if f.embeds && local.vertex },
      # The browser console (issue 19): where the API is, and CORS for the console's origin.
      { for k, v in { CONSOLE_API_URLS = jsonencode({ for n, u in local.public_urls : n => u if n != "console" }) } : k => v if name == "console" },
      { for k, v in { CORS_ORIGINS = jsonencode([local.public_urls["console"]]) } : k => v if f.public && name != "console" },
    )
  }

  function_secret_env = {
    for name, f in local.functions : name => merge(
      # API key hashes are HMAC(pepper): only the HTTP functions verify keys.
      { for k, v in { API_KEY_PEPPER = google_secret_manager_secret.pepper.secret_id } : k => { secret = v } if f.public },
      { for k, v in { OPENAI_API_KEY = one(google_secret_manager_secret.openai[*].secret_id) } : k => { secret = v } if f.embeds && local.openai },
    )
  }
}

module "function" {
  source   = "./modules/function"
  for_each = local.functions

  project_id            = var.project_id
  region                = var.region
  prefix                = var.prefix
  name                  = each.key
  description           = "ragline ${each.key} (${each.value.public ? "public HTTP API" : "private task handler"})"
  labels                = { function = each.key }
  source_dir            = var.functions_source_dir
  source_bucket         = google_storage_bucket.sources.name
  build_service_account = coalesce(var.build_service_account, google_service_account.build.id)

  public           = each.value.public
  ingress_settings = each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
  invoker_service_accounts = merge(
    { for s in local.stages : "tasks" => google_service_account.task_invoker[s].email if s == each.key },
    # Eventarc delivers as the trigger's account (both event types of on_upload, events.tf).
    { for k, v in { events = google_service_account.upload_events.email } : k => v if contains(keys(local.event_triggers), each.key) },
  )
  event_trigger = try(local.event_triggers[each.key], null)

  memory          = coalesce(try(var.function_overrides[each.key].memory, null), each.value.memory)
  timeout_seconds = coalesce(try(var.function_overrides[each.key].timeout_seconds, null), each.value.timeout_seconds)
  max_instances   = coalesce(try(var.function_overrides[each.key].max_instances, null), var.function_max_instances)
  # Public endpoints serve several requests per 1-vCPU instance (a search is ~25 ms of CPU,
  # mostly the query embedding); a stage runs one task at a time (an embed batch fills the CPU).
  concurrency = coalesce(try(var.function_overrides[each.key].concurrency, null), each.value.public ? 4 : 1)

  environment_variables        = local.function_env[each.key]
  secret_environment_variables = local.function_secret_env[each.key]

  # time_sleep.build_iam: the build account's grants are in place and have propagated;
  # time_sleep.events_iam: the same for the grants Eventarc needs before a trigger is created.
  depends_on = [google_project_service.apis, time_sleep.build_iam, time_sleep.events_iam]
}

module "database" {
  source = "./modules/database"

  project_id          = var.project_id
  region              = var.region
  prefix              = var.prefix
  database_name       = "ragline"
  database_version    = var.db_version
  edition             = var.db_edition
  tier                = var.db_tier
  availability_type   = var.db_availability_type
  backup              = var.db_backup
  deletion_protection = var.deletion_protection
  iam_service_accounts = merge(
    { for name, _ in local.functions : name => module.function[name].service_account_email },
    { migrate = google_service_account.migrate.email },
  )

  depends_on = [google_project_service.apis]
}

module "queue" {
  source   = "./modules/queue"
  for_each = toset(local.stages)

  project_id = var.project_id
  region     = var.region
  prefix     = var.prefix
  stage      = each.key
  config     = var.queue_config
  # The previous stage (on_upload -> parse -> chunk -> embed -> finalize, ingest -> chunk),
  # the functions that re-enqueue a stalled document's work (ingest, documents, reconcile)
  # and the stage itself (deferrals and retries, issue 16).
  enqueuer_service_accounts = {
    for name, targets in local.enqueue_targets : name => module.function[name].service_account_email
    if contains(targets, each.key)
  }

  depends_on = [google_project_service.apis]
}

module "scheduler" {
  source = "./modules/scheduler"

  project_id     = var.project_id
  region         = var.region
  prefix         = var.prefix
  name           = "retention"
  schedule       = var.retention_schedule
  time_zone      = var.retention_time_zone
  target_service = module.function["retention"].function_name
  # The URL the function checks the OIDC audience against (FUNCTION_URLS["retention"]), not
  # the hash-style service_config.uri: one expression on both sides (issue 15, finding 3).
  target_url = local.stage_urls["retention"]

  depends_on = [google_project_service.apis]
}

# Issue 16: every few minutes, re-enqueue the work of documents that stopped progressing, or
# fail them (ragline.ops.reconcile); the job is idempotent.
module "reconcile_scheduler" {
  source = "./modules/scheduler"

  project_id     = var.project_id
  region         = var.region
  prefix         = var.prefix
  name           = "reconcile"
  schedule       = var.reconcile_schedule
  time_zone      = var.retention_time_zone
  target_service = module.function["reconcile"].function_name
  target_url     = local.stage_urls["reconcile"]

  depends_on = [google_project_service.apis]
}
