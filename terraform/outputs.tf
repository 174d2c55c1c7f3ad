output "database_name" {
  description = "Application database name (DB_NAME)."
  value       = module.database.database_name
}

output "db_iam_users" {
  description = "Cloud SQL IAM user of each function and of the migration account (grant them ragline_app / schema rights, see docs/DEPLOYMENT.md)."
  value       = module.database.iam_users
}

output "function_urls" {
  description = "URL of each function, by function name."
  value       = { for name, m in module.function : name => m.url }
}

output "instance_connection_name" {
  description = "Cloud SQL instance connection name the functions use (CLOUD_SQL_INSTANCE): the managed instance, or cloud_sql_instance_override."
  value       = coalesce(var.cloud_sql_instance_override, module.database.connection_name)
}

output "migration_service_account" {
  description = "Email of the account that runs migrations (the Cloud Build trigger's service account)."
  value       = google_service_account.migrate.email
}

output "pepper_secret_id" {
  description = "Secret Manager id of the API key pepper (add a version before the first full apply)."
  value       = google_secret_manager_secret.pepper.secret_id
}

output "queue_names" {
  description = "Cloud Tasks queue name of each stage."
  value       = { for stage, m in module.queue : stage => m.name }
}

output "service_accounts" {
  description = "Runtime service account email of each function."
  value       = { for name, m in module.function : name => m.service_account_email }
}

output "source_bucket" {
  description = "Bucket holding the zipped function sources."
  value       = google_storage_bucket.sources.name
}

output "task_urls" {
  description = "run.app URL of each task stage as given to the functions in FUNCTION_URLS."
  value       = local.stage_urls
}

output "upload_bucket" {
  description = "Ingestion bucket (UPLOAD_BUCKET): uploads sign PUT URLs for orgs/ORG_ID/UPLOAD_ID/FILENAME in it."
  value       = google_storage_bucket.uploads.name
}

output "uploads_url" {
  description = "URL of the uploads function, which hands out signed upload URLs."
  value       = module.function["uploads"].url
}
