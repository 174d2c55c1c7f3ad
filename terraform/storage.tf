# Zipped function sources (one object per content hash, see modules/function).
resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Holds build inputs only; reads and writes are covered by Cloud Audit Logs, a separate access-log bucket adds nothing here.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.prefix}-sources"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# Ingestion bucket (issue 13): browsers and clients PUT documents to
# orgs/ORG_ID/UPLOAD_ID/FILENAME with a V4 signed URL from `uploads`; Eventarc reports each
# finalized or deleted object to `on_upload`, which enqueues `parse`.
locals {
  upload_bucket = coalesce(var.upload_bucket_name, "${var.project_id}-${var.prefix}-uploads")

  # The functions that touch the bucket (they also get UPLOAD_BUCKET): uploads signs PUT URLs,
  # which carry the signer's own permission (create, never overwrite or read); on_upload reads
  # object metadata, parse reads the objects.
  upload_bucket_roles = {
    on_upload = "roles/storage.objectViewer"
    parse     = "roles/storage.objectViewer"
    uploads   = "roles/storage.objectCreator"
  }
}

resource "google_storage_bucket" "uploads" {
  #checkov:skip=CKV_GCP_62:Object reads and writes are covered by Cloud Audit Logs (data access logs can be turned on for storage.googleapis.com); a separate access-log bucket adds nothing here.
  #checkov:skip=CKV_GCP_78:Versioning stays off on purpose: the app keys documents on the object generation, and noncurrent versions would keep a tenant's deleted documents readable.
  project                     = var.project_id
  name                        = local.upload_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = false
  }

  # Deleted objects stay restorable this long (0 = off, the default: a deleted upload is gone).
  soft_delete_policy {
    retention_duration_seconds = var.upload_soft_delete_days * 86400
  }

  # Optional expiry. A lifecycle deletion sends the same object.deleted event to on_upload
  # as any other deletion.
  dynamic "lifecycle_rule" {
    for_each = var.upload_retention_days == null ? [] : [var.upload_retention_days]
    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  # Browser uploads with signed URLs: the page's origin must be allowed to PUT.
  dynamic "cors" {
    for_each = length(var.upload_cors_origins) > 0 ? [var.upload_cors_origins] : []
    content {
      origin          = cors.value
      method          = ["PUT"]
      response_header = ["Content-Type", "x-goog-content-length-range"]
      max_age_seconds = 3600
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "uploads" {
  for_each = local.upload_bucket_roles
  bucket   = google_storage_bucket.uploads.name
  role     = each.value
  member   = module.function[each.key].service_account_iam_email
}
