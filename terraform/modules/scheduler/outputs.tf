output "job_name" {
  description = "Scheduler job name."
  value       = google_cloud_scheduler_job.default.name
}

output "service_account_email" {
  description = "Email of the job's OIDC service account."
  value       = google_service_account.default.email
}
