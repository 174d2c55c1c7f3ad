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
