# The API key pepper. Terraform creates the secret only: add the value out of band,
# before the first full apply (a function cannot start without it):
#   openssl rand -base64 48 | tr -d '\n' | \
#     gcloud secrets versions add PREFIX-api-key-pepper --data-file=- --project=PROJECT
# Accessor is granted by modules/function to the functions that mount it (HTTP ones only).
resource "google_secret_manager_secret" "pepper" {
  project   = var.project_id
  secret_id = "${var.prefix}-api-key-pepper"
  labels    = { purpose = "api-key-pepper" }
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

# OpenAI key, only when embedding_provider = "openai" (value added like the pepper's).
resource "google_secret_manager_secret" "openai" {
  count     = local.openai ? 1 : 0
  project   = var.project_id
  secret_id = "${var.prefix}-openai-api-key"
  labels    = { purpose = "openai-api-key" }
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}
