variable "alert_notification_channels" {
  description = "Monitoring notification channel ids (projects/P/notificationChannels/N) for alerts; empty = alerts show in the console only."
  type        = list(string)
  default     = []
  nullable    = false
  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each channel must look like projects/PROJECT/notificationChannels/ID."
  }
}

variable "build_service_account" {
  description = "Service account id (projects/P/serviceAccounts/EMAIL) Cloud Build uses to build the functions; null = the dedicated PREFIX-build account this configuration creates (never the project's default build account)."
  type        = string
  default     = null
}

variable "cloud_sql_instance_override" {
  description = "Connection name (project:region:instance) the functions use instead of the managed PREFIX-db instance, e.g. a point-in-time clone during a restore; null = the managed instance."
  type        = string
  default     = null
  validation {
    condition     = var.cloud_sql_instance_override == null || can(regex("^[a-z][a-z0-9-:.]*:[a-z0-9-]+:[a-z][a-z0-9-]*$", var.cloud_sql_instance_override))
    error_message = "cloud_sql_instance_override must be PROJECT:REGION:INSTANCE."
  }
}

variable "db_availability_type" {
  description = "Cloud SQL availability: ZONAL, or REGIONAL for a standby in another zone."
  type        = string
  default     = "ZONAL"
  nullable    = false
  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.db_availability_type)
    error_message = "db_availability_type must be ZONAL or REGIONAL."
  }
}

variable "db_backup" {
  description = "Daily backups and point-in-time recovery (always enabled): start time (UTC HH:MM), backups kept, days of transaction logs kept for PITR."
  type = object({
    log_retention_days = optional(number, 7)
    retained_backups   = optional(number, 14)
    start_time         = optional(string, "02:00")
  })
  default  = {}
  nullable = false
  validation {
    condition     = var.db_backup.retained_backups >= 1 && var.db_backup.retained_backups <= 365
    error_message = "db_backup.retained_backups must be between 1 and 365."
  }
}

variable "db_edition" {
  description = "Cloud SQL edition. ENTERPRISE takes db-custom-* tiers; ENTERPRISE_PLUS (the API default for PostgreSQL 16+) needs db-perf-optimized-* tiers."
  type        = string
  default     = "ENTERPRISE"
  nullable    = false
  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.db_edition)
    error_message = "db_edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
}

variable "db_tier" {
  description = "Cloud SQL machine tier. Size max_connections for (sum of function max instances) x (DB_POOL_SIZE + DB_MAX_OVERFLOW)."
  type        = string
  default     = "db-custom-1-3840"
  nullable    = false
  validation {
    condition     = can(regex("^db-", var.db_tier))
    error_message = "db_tier must be a Cloud SQL tier name (db-...)."
  }
}

# Cloud SQL must ship pgvector >= 0.8 for this version: search relies on iterative
# index scans (hnsw.iterative_scan) for tenant-filtered HNSW queries.
variable "db_version" {
  description = "Cloud SQL PostgreSQL major version (its pgvector must be >= 0.8 for iterative scans)."
  type        = string
  default     = "POSTGRES_17"
  nullable    = false
  validation {
    condition     = can(regex("^POSTGRES_(1[5-9]|[2-9][0-9])$", var.db_version))
    error_message = "db_version must be POSTGRES_15 or later."
  }
}

variable "deletion_protection" {
  description = "Protect the Cloud SQL instance against deletion (Terraform and API)."
  type        = bool
  default     = true
  nullable    = false
}

variable "embedding_provider" {
  description = "EMBEDDING_PROVIDER of the functions: minilm (bundled ONNX model), openai (key in secret PREFIX-openai-api-key), vertex (Vertex AI, same project) or hashing (tests only)."
  type        = string
  default     = "minilm"
  nullable    = false
  validation {
    condition     = contains(["minilm", "openai", "vertex", "hashing"], var.embedding_provider)
    error_message = "embedding_provider must be one of minilm, openai, vertex, hashing."
  }
}

variable "environment" {
  description = "Deployment environment name, used in labels (the functions always run with ENVIRONMENT=gcp)."
  type        = string
  nullable    = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.environment))
    error_message = "environment must be 1-20 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "function_max_instances" {
  description = "Default maximum instances per function (each holds up to DB_POOL_SIZE + DB_MAX_OVERFLOW database connections)."
  type        = number
  default     = 5
  nullable    = false
  validation {
    condition     = var.function_max_instances >= 1 && var.function_max_instances <= 100
    error_message = "function_max_instances must be between 1 and 100."
  }
}

variable "function_overrides" {
  description = "Per-function overrides of max instances, memory, timeout and concurrency (requests per instance), keyed by function name."
  type = map(object({
    max_instances   = optional(number)
    memory          = optional(string)
    timeout_seconds = optional(number)
    concurrency     = optional(number)
  }))
  default  = {}
  nullable = false
  validation {
    condition = alltrue([
      for k in keys(var.function_overrides) :
      contains(["answer", "chunk", "documents", "embed", "finalize", "health", "ingest", "on_upload", "parse", "reconcile", "retention", "runs", "search", "uploads"], k)
    ])
    error_message = "function_overrides keys must be function names (answer, chunk, documents, embed, finalize, health, ingest, on_upload, parse, reconcile, retention, runs, search, uploads)."
  }
}

variable "functions_source_dir" {
  description = "Directory with one prepared source folder per function, as written by `ragline package` (relative paths are relative to this directory)."
  type        = string
  default     = "../build/functions"
  nullable    = false
}

variable "labels" {
  description = "Extra labels for every resource (app and environment are always set)."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "prefix" {
  description = "Prefix of every resource name and QUEUE_PREFIX of the app (queues are PREFIX-parse, PREFIX-chunk, PREFIX-embed, PREFIX-finalize)."
  type        = string
  default     = "ragline"
  nullable    = false
  validation {
    # 14 characters keep service account ids (PREFIX-retention-sched) within 30.
    condition     = can(regex("^[a-z][a-z0-9-]{0,12}[a-z0-9]$", var.prefix))
    error_message = "prefix must be 2-14 lowercase letters, digits or dashes, start with a letter and not end with a dash."
  }
}

variable "project_id" {
  description = "Project id."
  type        = string
  nullable    = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid Google Cloud project id."
  }
}

variable "queue_config" {
  description = "Retry and rate settings shared by the stage queues (see modules/queue); max_attempts is also the functions' TASK_MAX_ATTEMPTS."
  type = object({
    log_sampling_ratio        = optional(number, 1.0)
    max_attempts              = optional(number, 10)
    max_backoff               = optional(string, "300s")
    max_concurrent_dispatches = optional(number, 5)
    max_dispatches_per_second = optional(number, 10)
    max_doublings             = optional(number, 4)
    max_retry_duration        = optional(string, "0s")
    min_backoff               = optional(string, "5s")
  })
  default  = {}
  nullable = false
  validation {
    condition     = var.queue_config.max_attempts >= 1 && var.queue_config.max_attempts <= 100
    error_message = "queue_config.max_attempts must be between 1 and 100 (the functions get it as TASK_MAX_ATTEMPTS)."
  }
}

variable "reconcile_schedule" {
  description = "Cron schedule (in retention_time_zone) of the reconcile job, which re-enqueues or fails documents stalled past RECONCILE_STALL_S."
  type        = string
  default     = "*/5 * * * *"
  nullable    = false
}

variable "region" {
  description = "Region of the functions, queues, scheduler job and database."
  type        = string
  default     = "us-central1"
  nullable    = false
}

variable "retention_schedule" {
  description = "Cron schedule (in retention_time_zone) of the daily retention run."
  type        = string
  default     = "17 3 * * *"
  nullable    = false
}

variable "retention_time_zone" {
  description = "Time zone of retention_schedule."
  type        = string
  default     = "Etc/UTC"
  nullable    = false
}

variable "upload_bucket_name" {
  description = "Name of the ingestion bucket (UPLOAD_BUCKET of the functions); null = PROJECT-PREFIX-uploads."
  type        = string
  default     = null
  validation {
    condition     = var.upload_bucket_name == null || can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.upload_bucket_name))
    error_message = "upload_bucket_name must be 3-63 lowercase letters, digits, dashes or underscores, starting and ending with a letter or digit."
  }
}

variable "upload_cors_origins" {
  description = "Origins (scheme://host[:port]) whose pages may PUT to the ingestion bucket with signed URLs (browser uploads); empty = no CORS rule."
  type        = list(string)
  default     = []
  nullable    = false
  validation {
    condition     = alltrue([for o in var.upload_cors_origins : can(regex("^https?://[^/*\\s]+$", o))])
    error_message = "Each origin must look like https://app.example.com (no path, no wildcard)."
  }
}

variable "upload_retention_days" {
  description = "Delete uploaded objects this many days after upload (a lifecycle deletion reaches on_upload like any other); null = keep them."
  type        = number
  default     = null
  validation {
    condition     = var.upload_retention_days == null || try(var.upload_retention_days >= 1, false)
    error_message = "upload_retention_days must be at least 1, or null."
  }
}

variable "upload_soft_delete_days" {
  description = "Days a deleted upload stays restorable (Cloud Storage soft delete): 0 = off, or 7-90."
  type        = number
  default     = 0
  nullable    = false
  validation {
    condition     = var.upload_soft_delete_days == 0 || (var.upload_soft_delete_days >= 7 && var.upload_soft_delete_days <= 90)
    error_message = "upload_soft_delete_days must be 0, or between 7 and 90."
  }
}
