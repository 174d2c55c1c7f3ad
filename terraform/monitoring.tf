# Documents that end in status "failed": the app logs one JSON line
# {"event": "document_failed", ...} per document (Cloud Logging puts it in jsonPayload).
resource "google_logging_metric" "document_failed" {
  project = var.project_id
  name    = "${var.prefix}/document_failed"
  filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=~\"^${var.prefix}-\"",
    "jsonPayload.event=\"document_failed\"",
  ])
  description = "Documents of ragline (${var.prefix}) whose ingestion ended in status failed."

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "ragline documents failed"
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "Function (Cloud Run service) that logged the failure."
    }
  }
  label_extractors = {
    service = "EXTRACT(resource.labels.service_name)"
  }

  depends_on = [google_project_service.apis]
}

# A new log-based metric takes a while to become visible to Cloud Monitoring: an alert policy
# created right after it fails with 404 "Cannot find metric(s)" (hashicorp/terraform-provider-google
# issues 5216 and 11370). Wait once, after the metric is created (issue 15, finding 4).
resource "time_sleep" "document_failed_metric" {
  create_duration = "90s"
  triggers = {
    metric = google_logging_metric.document_failed.id
  }
}

resource "google_monitoring_alert_policy" "document_failed" {
  project               = var.project_id
  display_name          = "ragline (${var.prefix}): documents failed"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "document_failed > 0 in 5 min"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.document_failed.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "At least one document ended in status `failed`. Find it in Cloud Logging with `jsonPayload.event=\"document_failed\"` (fields run and document ids, never content) and see the runs API for the error code."
  }

  depends_on = [time_sleep.document_failed_metric]
}
