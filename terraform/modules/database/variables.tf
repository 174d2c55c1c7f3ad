variable "availability_type" {
  description = "ZONAL, or REGIONAL for a high-availability standby."
  type        = string
  default     = "ZONAL"
  nullable    = false
  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.availability_type)
    error_message = "availability_type must be ZONAL or REGIONAL."
  }
}

variable "backup" {
  description = "Daily backups and point-in-time recovery (always on)."
  type = object({
    log_retention_days = optional(number, 7)
    retained_backups   = optional(number, 14)
    start_time         = optional(string, "02:00")
  })
  default  = {}
  nullable = false
  validation {
    condition     = var.backup.log_retention_days >= 1 && var.backup.log_retention_days <= 7
    error_message = "backup.log_retention_days must be between 1 and 7 on the Enterprise edition."
  }
  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.backup.start_time))
    error_message = "backup.start_time must be HH:MM (UTC)."
  }
}

variable "database_flags" {
  description = "Extra database flags, name => value (the IAM and logging flags set by the module are always present)."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "database_name" {
  description = "Name of the application database."
  type        = string
  default     = "ragline"
  nullable    = false
}

variable "database_version" {
  description = "Cloud SQL PostgreSQL version. Keep one whose pgvector is >= 0.8 (iterative index scans)."
  type        = string
  default     = "POSTGRES_17"
  nullable    = false
  validation {
    condition     = can(regex("^POSTGRES_(1[5-9]|[2-9][0-9])$", var.database_version))
    error_message = "database_version must be POSTGRES_15 or later."
  }
}

variable "deletion_protection" {
  description = "Protect the instance against deletion, in Terraform and in the Cloud SQL API."
  type        = bool
  default     = true
  nullable    = false
}

variable "edition" {
  description = "Cloud SQL edition. ENTERPRISE takes db-custom-* / shared-core tiers; ENTERPRISE_PLUS (the API default for PostgreSQL 16+) needs db-perf-optimized-* tiers."
  type        = string
  default     = "ENTERPRISE"
  nullable    = false
  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.edition)
    error_message = "edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
}

variable "iam_service_accounts" {
  description = "Service accounts that get a CLOUD_IAM_SERVICE_ACCOUNT database user, as static key => email."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "labels" {
  description = "Instance labels."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "prefix" {
  description = "Prefix of every resource name; the instance is named PREFIX-db."
  type        = string
  nullable    = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,12}[a-z0-9]$", var.prefix))
    error_message = "prefix must be 2-14 lowercase letters, digits or dashes, start with a letter and not end with a dash."
  }
}

variable "project_id" {
  description = "Project id."
  type        = string
  nullable    = false
}

variable "region" {
  description = "Region of the instance."
  type        = string
  nullable    = false
}

variable "ssl_mode" {
  description = "Transport security. TRUSTED_CLIENT_CERTIFICATE_REQUIRED accepts only clients with an instance-issued certificate, which the Cloud SQL connectors and Auth Proxy always present; ENCRYPTED_ONLY also admits plain TLS clients."
  type        = string
  default     = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
  nullable    = false
  validation {
    condition     = contains(["ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"], var.ssl_mode)
    error_message = "ssl_mode must be ENCRYPTED_ONLY or TRUSTED_CLIENT_CERTIFICATE_REQUIRED."
  }
}

variable "tier" {
  description = "Machine tier, e.g. db-custom-1-3840 (ENTERPRISE) or db-perf-optimized-N-2 (ENTERPRISE_PLUS)."
  type        = string
  default     = "db-custom-1-3840"
  nullable    = false
}
