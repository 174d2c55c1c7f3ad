# Identities that are not a function's own runtime account (those live in modules/function).

# Cloud Tasks mints the OIDC token of each stage as this account; it may invoke that
# stage only, and only the previous stage may act as it.
resource "google_service_account" "task_invoker" {
  for_each     = toset(local.stages)
  project      = var.project_id
  account_id   = "${var.prefix}-${each.key}-tasks"
  display_name = "ragline ${each.key} task invoker"
  description  = "OIDC identity of Cloud Tasks calls to ${var.prefix}-${each.key}."
}

resource "google_service_account_iam_member" "task_invoker_user" {
  # Creating a task with an OIDC token requires iam.serviceAccounts.actAs on its account.
  for_each = {
    for name, f in local.functions : name => f.next[0] if length(f.next) > 0
  }
  service_account_id = google_service_account.task_invoker[each.value].name
  role               = "roles/iam.serviceAccountUser"
  member             = module.function[each.key].service_account_iam_email
}

# Runs `ragline migrate` (the Cloud Build trigger's service account, see docs/DEPLOYMENT.md).
resource "google_service_account" "migrate" {
  project      = var.project_id
  account_id   = "${var.prefix}-migrate"
  display_name = "ragline migrations"
  description  = "Cloud SQL IAM user that owns the schema; runs Alembic migrations."
}

locals {
  sql_principals = merge(
    { for name, _ in local.functions : name => module.function[name].service_account_iam_email },
    { migrate = "serviceAccount:${google_service_account.migrate.email}" },
  )
  sql_roles = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
}

resource "google_project_iam_member" "sql" {
  # Connector (cloudsql.client) + IAM database login (cloudsql.instanceUser).
  for_each = {
    for pair in setproduct(keys(local.sql_principals), local.sql_roles) :
    "${pair[0]}/${pair[1]}" => { member = local.sql_principals[pair[0]], role = pair[1] }
  }
  project = var.project_id
  role    = each.value.role
  member  = each.value.member
}

resource "google_project_iam_member" "vertex" {
  for_each = local.vertex ? { for name, f in local.functions : name => f if f.embeds } : {}
  project  = var.project_id
  role     = "roles/aiplatform.user"
  member   = module.function[each.key].service_account_iam_email
}
