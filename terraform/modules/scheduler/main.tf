/**
 * A Cloud Scheduler job that calls one private function with an OIDC token
 * minted for a dedicated service account, which may invoke that function only.
 */

resource "google_service_account" "default" {
  project      = var.project_id
  account_id   = "${var.prefix}-${var.name}-sched"
  display_name = "ragline ${var.name} scheduler"
  description  = "Cloud Scheduler identity; invoker on ${var.target_service} only."
}

resource "google_cloud_run_service_iam_member" "invoker" {
  project  = var.project_id
  location = var.region
  service  = var.target_service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.default.email}"
}

resource "google_cloud_scheduler_job" "default" {
  project          = var.project_id
  region           = var.region
  name             = "${var.prefix}-${var.name}"
  description      = "Calls ${var.target_service} on schedule \"${var.schedule}\"."
  schedule         = var.schedule
  time_zone        = var.time_zone
  attempt_deadline = var.attempt_deadline

  retry_config {
    retry_count          = var.retry_count
    min_backoff_duration = "30s"
    max_backoff_duration = "600s"
    max_doublings        = 3
  }

  http_target {
    http_method = "POST"
    uri         = var.target_url
    body        = base64encode(jsonencode(var.body))
    headers = {
      "Content-Type" = "application/json"
    }
    oidc_token {
      service_account_email = google_service_account.default.email
      audience              = var.target_url
    }
  }

  depends_on = [google_cloud_run_service_iam_member.invoker]
}
