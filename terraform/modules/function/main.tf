/**
 * One ragline function: Cloud Functions 2nd gen (a Cloud Run service underneath),
 * its own runtime service account, its zipped source, and who may invoke it.
 */

locals {
  # Function name = Cloud Run service name = SA account id; the entry point is the bare name.
  # Those ids allow no underscore: on_upload deploys as PREFIX-on-upload (issue 13).
  function_name = "${var.prefix}-${replace(var.name, "_", "-")}"
}

resource "google_service_account" "default" {
  project      = var.project_id
  account_id   = local.function_name
  display_name = "ragline ${var.name} function runtime"
  description  = "Runtime identity of the ${local.function_name} function (Cloud SQL IAM user)."
}

data "archive_file" "source" {
  type             = "zip"
  source_dir       = "${var.source_dir}/${var.name}"
  output_path      = "${path.root}/.terraform/archives/${local.function_name}.zip"
  output_file_mode = "0644"
  excludes         = ["**/__pycache__/**", "**/*.pyc"]
}

resource "google_storage_bucket_object" "source" {
  # The content hash in the name makes a new object (and so a new build) per source change.
  bucket = var.source_bucket
  name   = "${var.name}/${data.archive_file.source.output_md5}.zip"
  source = data.archive_file.source.output_path
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  # Granted here, before the function deploys: a revision that cannot read its secrets fails.
  for_each  = var.secret_environment_variables
  project   = var.project_id
  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.default.email}"
}

resource "google_cloudfunctions2_function" "default" {
  #checkov:skip=CKV_GCP_124:ALLOW_ALL is used only by the public HTTP API functions (API keys checked in the app); task and scheduler targets get ALLOW_INTERNAL_ONLY from the root module.
  project     = var.project_id
  location    = var.region
  name        = local.function_name
  description = var.description
  labels      = var.labels

  build_config {
    runtime         = var.runtime
    entry_point     = var.name
    service_account = var.build_service_account
    source {
      storage_source {
        bucket = var.source_bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    max_instance_request_concurrency = var.concurrency
    timeout_seconds                  = var.timeout_seconds
    max_instance_count               = var.max_instances
    min_instance_count               = 0
    ingress_settings                 = var.ingress_settings
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.default.email
    # The function's own admission limit agrees with the platform's (issue 16).
    environment_variables = merge(var.environment_variables, { MAX_CONCURRENT_REQUESTS = tostring(var.concurrency) })

    dynamic "secret_environment_variables" {
      for_each = var.secret_environment_variables
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  # CloudEvent functions only (on_upload): Eventarc calls the service as the trigger's account.
  dynamic "event_trigger" {
    for_each = var.event_trigger == null ? [] : [var.event_trigger]
    content {
      trigger_region        = var.region
      event_type            = event_trigger.value.event_type
      retry_policy          = event_trigger.value.retry ? "RETRY_POLICY_RETRY" : "RETRY_POLICY_DO_NOT_RETRY"
      service_account_email = event_trigger.value.service_account_email
      dynamic "event_filters" {
        for_each = event_trigger.value.event_filters
        content {
          attribute = event_filters.key
          value     = event_filters.value
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.accessor]
}

resource "google_cloud_run_service_iam_member" "public" {
  #checkov:skip=CKV_GCP_102:Public HTTP functions authenticate callers with ragline API keys in the application; only functions with public = true get this binding.
  count    = var.public ? 1 : 0
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.default.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_service_iam_member" "invoker" {
  # Static keys: the emails are often unknown until apply.
  for_each = var.invoker_service_accounts
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.default.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value}"
}
