# Identities that are not a function's own runtime account (those live in modules/function).

# Cloud Tasks mints the OIDC token of each stage as this account; it may invoke that
# stage only, and only the previous stage may act as it.
resource "google_service_account" "task_invoker" {
  for_each     = toset(local.stages)
  project      = var.project_id
  account_id   = "${var.prefix}-${each.key}-tasks"
  display_name = "ragline ${each.key} task invoker"
  description  = "OIDC identity of Cloud Tasks calls to ${var.prefix}-${each.key}."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account_iam_member" "task_invoker_user" {
  # Creating a task with an OIDC token requires iam.serviceAccounts.actAs on its account.
  for_each           = local.enqueues
  service_account_id = google_service_account.task_invoker[each.value.stage].name
  role               = "roles/iam.serviceAccountUser"
  member             = module.function[each.value.function].service_account_iam_email
  depends_on         = [google_project_service.apis]
}

# Runs `ragline migrate`: the identity of the migration build (cloudbuild-migrate.yaml), a
# Cloud SQL IAM user that owns the schema. It neither deploys nor runs the tests (issue 15,
# finding 8; the identities and their roles are tabled in docs/DEPLOYMENT.md).
resource "google_service_account" "migrate" {
  project      = var.project_id
  account_id   = "${var.prefix}-migrate"
  display_name = "ragline migrations"
  description  = "Cloud SQL IAM user that owns the schema; runs Alembic migrations."
  depends_on   = [google_project_service.apis]
}

locals {
  sql_principals = merge(
    { for name, _ in local.functions : name => module.function[name].service_account_iam_email },
    { migrate = "serviceAccount:${google_service_account.migrate.email}" },
  )
  sql_roles = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]

  # What each build identity created here needs at project level. The function build account
  # also reads the zipped sources (bucket-level grant below); the migration build only writes
  # its logs and connects to Cloud SQL (sql_roles).
  build_roles = {
    "build/logWriter"   = { member = "serviceAccount:${google_service_account.build.email}", role = "roles/logging.logWriter" }
    "build/arWriter"    = { member = "serviceAccount:${google_service_account.build.email}", role = "roles/artifactregistry.writer" }
    "migrate/logWriter" = { member = "serviceAccount:${google_service_account.migrate.email}", role = "roles/logging.logWriter" }
  }
}

resource "google_project_iam_member" "sql" {
  # Connector (cloudsql.client) + IAM database login (cloudsql.instanceUser).
  for_each = {
    for pair in setproduct(keys(local.sql_principals), local.sql_roles) :
    "${pair[0]}/${pair[1]}" => { member = local.sql_principals[pair[0]], role = pair[1] }
  }
  project    = var.project_id
  role       = each.value.role
  member     = each.value.member
  depends_on = [google_project_service.apis]
}

# Cloud Functions builds run as this account (build_config.service_account): since mid-2024
# new projects would otherwise build as the Compute Engine default account, which may lack
# these rights and does not exist unless compute.googleapis.com is on (issue 15, finding 2).
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.prefix}-build"
  display_name = "ragline function builds"
  description  = "Cloud Build identity of the ${var.prefix} function builds: logs, Artifact Registry, sources bucket (read)."
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "build" {
  for_each   = local.build_roles
  project    = var.project_id
  role       = each.value.role
  member     = each.value.member
  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "build_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

# IAM grants take up to a few minutes to reach Cloud Build: the first function builds wait.
resource "time_sleep" "build_iam" {
  create_duration = "60s"
  triggers = {
    account = google_service_account.build.id
    roles   = join(",", sort([for k, v in google_project_iam_member.build : v.role]))
    bucket  = google_storage_bucket_iam_member.build_sources.etag
  }
}

resource "google_project_iam_member" "vertex" {
  for_each = local.vertex ? { for name, f in local.functions : name => f if f.embeds } : {}
  project  = var.project_id
  role     = "roles/aiplatform.user"
  member   = module.function[each.key].service_account_iam_email
  # The module's depends_on does not cover outputs used outside it.
  depends_on = [google_project_service.apis]
}

# uploads signs V4 URLs through the IAM signBlob API as its own runtime account (no key file):
# token creator on that one account, never project-wide (issue 13).
resource "google_service_account_iam_member" "uploads_signer" {
  service_account_id = module.function["uploads"].service_account_id
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = module.function["uploads"].service_account_iam_email
  depends_on         = [google_project_service.apis]
}
