/**
 * Cloud SQL for PostgreSQL with IAM database authentication: the instance, the
 * ragline database and one CLOUD_IAM_SERVICE_ACCOUNT user per service account.
 */

resource "google_sql_database_instance" "default" {
  #checkov:skip=CKV_GCP_79:POSTGRES_17 is the tested default (its pgvector is >= 0.8); newer majors are one variable away (db_version).
  #checkov:skip=CKV2_GCP_13:log_duration on every statement floods Cloud Logging; Query Insights records latency instead.
  #checkov:skip=CKV_GCP_60:The public IP carries only Cloud SQL connector traffic (mTLS + IAM); no authorized networks are configured, so nothing else can connect. Functions stay VPC-less.
  project             = var.project_id
  name                = "${var.prefix}-db"
  region              = var.region
  database_version    = var.database_version
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.tier
    edition                     = var.edition
    availability_type           = var.availability_type
    disk_type                   = "PD_SSD"
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection
    user_labels                 = var.labels

    ip_configuration {
      # Public IP without authorized networks: reachable only through the Cloud SQL
      # connectors / Auth Proxy, which bring their own mTLS client certificate and IAM
      # check. Unencrypted (and, by default, certificate-less) connections are refused.
      ipv4_enabled = true
      ssl_mode     = var.ssl_mode
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = var.backup.start_time
      transaction_log_retention_days = var.backup.log_retention_days
      backup_retention_settings {
        retained_backups = var.backup.retained_backups
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    # Required for CLOUD_IAM_SERVICE_ACCOUNT users.
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }

    # Audit-friendly logging (CIS benchmark). Statement text is logged for DDL only:
    # DML and its parameters would carry tenant content into Cloud Logging.
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }

    database_flags {
      name  = "log_connections"
      value = "on"
    }

    database_flags {
      name  = "log_disconnections"
      value = "on"
    }

    database_flags {
      name  = "log_hostname"
      value = "on"
    }

    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }

    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }

    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }

    database_flags {
      name  = "log_min_messages"
      value = "error"
    }

    database_flags {
      name  = "log_statement"
      value = "ddl"
    }

    database_flags {
      name  = "log_temp_files"
      value = "0"
    }

    dynamic "database_flags" {
      for_each = var.database_flags
      content {
        name  = database_flags.key
        value = database_flags.value
      }
    }
  }
}

resource "google_sql_database" "default" {
  project  = var.project_id
  instance = google_sql_database_instance.default.name
  name     = var.database_name
}

resource "google_sql_user" "iam" {
  # Cloud SQL names IAM service-account users by the email without ".gserviceaccount.com".
  for_each = var.iam_service_accounts
  project  = var.project_id
  instance = google_sql_database_instance.default.name
  name     = trimsuffix(each.value, ".gserviceaccount.com")
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}
