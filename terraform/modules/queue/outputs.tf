output "id" {
  description = "Full queue id (projects/P/locations/L/queues/Q)."
  value       = google_cloud_tasks_queue.default.id
}

output "name" {
  description = "Short queue name, PREFIX-STAGE."
  value       = google_cloud_tasks_queue.default.name
}
