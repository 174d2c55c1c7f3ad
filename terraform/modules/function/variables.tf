variable "build_service_account" {
  description = "Service account id (projects/P/serviceAccounts/EMAIL) Cloud Build uses to build the function (logs, Artifact Registry writer, read on source_bucket); null uses the project's default build account, which new projects no longer grant those rights."
  type        = string
  default     = null
}

variable "concurrency" {
  description = "Requests one instance runs at once (Cloud Run max_instance_request_concurrency); also passed as MAX_CONCURRENT_REQUESTS, the function's own admission limit (ragline.guardrails.admission)."
  type        = number
  default     = 1
  nullable    = false
  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "cpu" {
  description = "vCPUs per instance (Cloud Run needs at least 1 for a concurrency above 1)."
  type        = string
  default     = "1"
  nullable    = false
  validation {
    condition     = contains(["0.583", "1", "2", "4", "6", "8"], var.cpu)
    error_message = "cpu must be one of 0.583, 1, 2, 4, 6 or 8."
  }
}

variable "description" {
  description = "Function description."
  type        = string
  default     = null
}

variable "environment_variables" {
  description = "Plain runtime environment variables (never secrets)."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "event_trigger" {
  description = "Eventarc trigger of a CloudEvent function: event type, filters (attribute => value, e.g. bucket), trigger service account (needs roles/eventarc.eventReceiver; gets run.invoker only through invoker_service_accounts), retry on failure; null = an HTTP function."
  type = object({
    event_filters         = optional(map(string), {})
    event_type            = string
    retry                 = optional(bool, false)
    service_account_email = string
  })
  default = null
}

variable "ingress_settings" {
  description = "Network ingress: ALLOW_ALL for public HTTP functions, ALLOW_INTERNAL_ONLY for task and scheduler targets (Cloud Tasks and Cloud Scheduler count as internal on the run.app URL)."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"
  nullable    = false
  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.ingress_settings)
    error_message = "ingress_settings must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "invoker_service_accounts" {
  description = "Service accounts granted roles/run.invoker on the function, as static key => email."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "labels" {
  description = "Resource labels."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "max_instances" {
  description = "Maximum number of instances (bounds Cloud SQL connections: instances x pool size)."
  type        = number
  default     = 5
  nullable    = false
  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000
    error_message = "max_instances must be between 1 and 1000."
  }
}

variable "memory" {
  description = "Memory per instance, e.g. 512M or 1Gi."
  type        = string
  default     = "512M"
  nullable    = false
  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.memory))
    error_message = "memory must look like 512M, 512Mi, 1G or 1Gi."
  }
}

variable "name" {
  description = "Function name: the folder under functions/, the Python entry point and the Terraform key (an underscore becomes a dash in the resource names)."
  type        = string
  nullable    = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,13}[a-z0-9]$", var.name))
    error_message = "name must be 2-15 lowercase letters, digits or underscores, starting with a letter and not ending with an underscore."
  }
}

variable "prefix" {
  description = "Prefix of every resource name."
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

variable "public" {
  description = "Grant roles/run.invoker to allUsers (the application authenticates callers with API keys)."
  type        = bool
  default     = false
  nullable    = false
}

variable "region" {
  description = "Region of the function."
  type        = string
  nullable    = false
}

variable "runtime" {
  description = "Cloud Functions runtime."
  type        = string
  default     = "python311"
  nullable    = false
}

variable "secret_environment_variables" {
  description = "Environment variables read from Secret Manager, as ENV_NAME => { secret = secret id, version }. The function's service account is granted accessor on each secret."
  type = map(object({
    secret  = string
    version = optional(string, "latest")
  }))
  default  = {}
  nullable = false
}

variable "source_bucket" {
  description = "Bucket that receives the zipped source."
  type        = string
  nullable    = false
}

variable "source_dir" {
  description = "Directory that holds one prepared source folder per function (`ragline package` output); this module zips source_dir/name."
  type        = string
  nullable    = false
}

variable "timeout_seconds" {
  description = "Request timeout in seconds."
  type        = number
  default     = 60
  nullable    = false
  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 3600
    error_message = "timeout_seconds must be between 1 and 3600."
  }
}
