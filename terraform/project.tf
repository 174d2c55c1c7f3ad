data "google_project" "this" {
  project_id = var.project_id
}

# serviceusage (which enables the others) and cloudresourcemanager (which reads the project
# number) must be on before the first plan: docs/DEPLOYMENT.md enables them with gcloud in its
# first step; they are listed here so that Terraform keeps them on. Every other resource of
# this configuration depends on google_project_service.apis (issue 15, finding 6). Eventarc,
# Pub/Sub (its transport) and Storage carry the upload events, IAM Credentials the signBlob
# calls of uploads (issue 13).
resource "google_project_service" "apis" {
  for_each = toset(concat(
    [
      "artifactregistry.googleapis.com",
      "cloudbuild.googleapis.com",
      "cloudfunctions.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      "cloudscheduler.googleapis.com",
      "cloudtasks.googleapis.com",
      "eventarc.googleapis.com",
      "iam.googleapis.com",
      "iamcredentials.googleapis.com",
      "logging.googleapis.com",
      "monitoring.googleapis.com",
      "pubsub.googleapis.com",
      "run.googleapis.com",
      "secretmanager.googleapis.com",
      "serviceusage.googleapis.com",
      "sqladmin.googleapis.com",
      "storage.googleapis.com",
    ],
    local.vertex ? ["aiplatform.googleapis.com"] : [],
  ))
  project = var.project_id
  service = each.key
  # Other workloads in the project may use the same APIs.
  disable_on_destroy = false
}
