/**
 * One Cloud Tasks queue per pipeline stage, named PREFIX-STAGE like
 * `ragline.ingest.queues.queue_name`, with enqueue rights for the given accounts only.
 */

resource "google_cloud_tasks_queue" "default" {
  project  = var.project_id
  location = var.region
  name     = "${var.prefix}-${var.stage}"

  rate_limits {
    max_dispatches_per_second = var.config.max_dispatches_per_second
    max_concurrent_dispatches = var.config.max_concurrent_dispatches
  }

  retry_config {
    max_attempts       = var.config.max_attempts
    max_retry_duration = var.config.max_retry_duration
    min_backoff        = var.config.min_backoff
    max_backoff        = var.config.max_backoff
    max_doublings      = var.config.max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = var.config.log_sampling_ratio
  }
}

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  # Static keys: the emails are often unknown until apply.
  for_each = var.enqueuer_service_accounts
  project  = var.project_id
  location = var.region
  name     = google_cloud_tasks_queue.default.name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${each.value}"
}
