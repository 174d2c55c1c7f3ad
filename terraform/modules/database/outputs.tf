output "connection_name" {
  description = "Instance connection name (project:region:instance), the CLOUD_SQL_INSTANCE setting."
  value       = google_sql_database_instance.default.connection_name
}

output "database_name" {
  description = "Application database name, the DB_NAME setting."
  value       = google_sql_database.default.name
}

output "iam_users" {
  description = "Database user name of each IAM service account (key => user), the DB_IAM_USER setting."
  value       = { for k, u in google_sql_user.iam : k => u.name }
}

output "instance_name" {
  description = "Instance name."
  value       = google_sql_database_instance.default.name
}
