variable "config" {
  description = "Retry and rate settings. Tasks that fail permanently are recorded on the run and acknowledged by the app, so retries are for transient errors only."
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
    # The app's TASK_MAX_ATTEMPTS mirrors it, so unlimited (-1) is not offered.
    condition     = var.config.max_attempts >= 1 && var.config.max_attempts <= 100
    error_message = "config.max_attempts must be between 1 and 100."
  }
  validation {
    condition     = alltrue([for d in [var.config.min_backoff, var.config.max_backoff, var.config.max_retry_duration] : can(regex("^[0-9]+(\\.[0-9]+)?s$", d))])
    error_message = "Durations must be given in seconds, e.g. \"5s\"."
  }
  validation {
    condition     = var.config.log_sampling_ratio >= 0 && var.config.log_sampling_ratio <= 1
    error_message = "config.log_sampling_ratio must be between 0 and 1."
  }
}

variable "enqueuer_service_accounts" {
  description = "Service accounts granted roles/cloudtasks.enqueuer on this queue (the previous stage, and the stage itself for deferrals and retries), as static key => email."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "prefix" {
  description = "Queue name prefix (QUEUE_PREFIX in the app)."
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
  description = "Cloud Tasks location."
  type        = string
  nullable    = false
}

variable "stage" {
  description = "Pipeline stage served by the queue (one of ragline.ingest.queues.STAGES)."
  type        = string
  nullable    = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,14}$", var.stage))
    error_message = "stage must be 2-15 lowercase letters or digits."
  }
}
