# Eventarc delivery of the ingestion bucket's object events to on_upload (issue 13).

locals {
  # Both go to on_upload: the first through the function's own event_trigger (main.tf), the
  # others through google_eventarc_trigger.on_upload below. A gen2 function has one trigger.
  upload_event_types = [
    "google.cloud.storage.object.v1.finalized",
    "google.cloud.storage.object.v1.deleted",
  ]
}

# The identity of both triggers: it receives the events and may invoke on_upload only
# (run.invoker through the function module's invoker_service_accounts).
resource "google_service_account" "upload_events" {
  project      = var.project_id
  account_id   = "${var.prefix}-upload-events"
  display_name = "ragline upload events"
  description  = "Eventarc trigger identity of ${var.prefix}-on-upload (object events of the ingestion bucket)."
  depends_on   = [google_project_service.apis]
}

# Cloud Storage publishes its object events through Pub/Sub as the project's Cloud Storage
# service agent: GCS triggers fail to create without this role.
data "google_storage_project_service_account" "this" {
  project    = var.project_id
  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "events" {
  for_each = {
    receiver  = { member = "serviceAccount:${google_service_account.upload_events.email}", role = "roles/eventarc.eventReceiver" }
    publisher = { member = data.google_storage_project_service_account.this.member, role = "roles/pubsub.publisher" }
  }
  project    = var.project_id
  role       = each.value.role
  member     = each.value.member
  depends_on = [google_project_service.apis]
}

# Eventarc checks these grants when a trigger is created; they take a while to propagate.
resource "time_sleep" "events_iam" {
  create_duration = "60s"
  triggers = {
    roles = join(",", sort([for k, v in google_project_iam_member.events : "${v.role}=${v.member}"]))
  }
}

resource "google_eventarc_trigger" "on_upload" {
  # Event types after the first (deleted). Delivery goes through Pub/Sub, which retries a
  # failed call with backoff for up to a day (the handler is idempotent).
  for_each        = toset(slice(local.upload_event_types, 1, length(local.upload_event_types)))
  project         = var.project_id
  location        = var.region
  name            = "${var.prefix}-on-upload-${reverse(split(".", each.key))[0]}"
  service_account = google_service_account.upload_events.email
  labels          = { function = "on_upload" }

  matching_criteria {
    attribute = "type"
    value     = each.key
  }
  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.uploads.name
  }

  destination {
    cloud_run_service {
      service = module.function["on_upload"].function_name
      region  = var.region
    }
  }

  # module.function: on_upload's run.invoker grant for this trigger's account included.
  depends_on = [time_sleep.events_iam, module.function]
}
