output "function_name" {
  description = "Cloud Functions name (also the Cloud Run service name)."
  value       = google_cloudfunctions2_function.default.name
}

output "service_account_email" {
  description = "Runtime service account email."
  value       = google_service_account.default.email
}

output "service_account_iam_email" {
  description = "Runtime service account as an IAM member (serviceAccount:EMAIL)."
  value       = "serviceAccount:${google_service_account.default.email}"
}

output "service_account_id" {
  description = "Runtime service account id (projects/P/serviceAccounts/EMAIL), for grants on the account itself."
  value       = google_service_account.default.name
}

output "uri" {
  description = "run.app URL of the underlying Cloud Run service (what Cloud Tasks and Cloud Scheduler call)."
  value       = google_cloudfunctions2_function.default.service_config[0].uri
}

output "url" {
  description = "Function URL."
  value       = google_cloudfunctions2_function.default.url
}
