variable "attempt_deadline" {
  description = "How long Cloud Scheduler waits for the target to answer (15s-1800s for HTTP targets)."
  type        = string
  default     = "600s"
  nullable    = false
  validation {
    condition     = can(regex("^[0-9]+s$", var.attempt_deadline))
    error_message = "attempt_deadline must be given in seconds, e.g. \"600s\"."
  }
}

variable "body" {
  description = "JSON body sent to the target."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "name" {
  description = "Job name suffix, normally the target function's name (job PREFIX-NAME, service account PREFIX-NAME-sched)."
  type        = string
  nullable    = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,14}$", var.name))
    error_message = "name must be 2-15 lowercase letters or digits."
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

variable "region" {
  description = "Region of the job and of the target service."
  type        = string
  nullable    = false
}

variable "retry_count" {
  description = "Retries of a failed run (the target must be idempotent)."
  type        = number
  default     = 3
  nullable    = false
  validation {
    condition     = var.retry_count >= 0 && var.retry_count <= 5
    error_message = "retry_count must be between 0 and 5."
  }
}

variable "schedule" {
  description = "Cron schedule."
  type        = string
  default     = "17 3 * * *"
  nullable    = false
  validation {
    condition     = length(split(" ", trimspace(var.schedule))) == 5
    error_message = "schedule must be a five-field cron expression."
  }
}

variable "target_service" {
  description = "Cloud Run service name of the target function (the only service the job's account may invoke)."
  type        = string
  nullable    = false
}

variable "target_url" {
  description = "run.app URL of the target; also the OIDC audience."
  type        = string
  nullable    = false
  validation {
    condition     = startswith(var.target_url, "https://")
    error_message = "target_url must be an https URL."
  }
}

variable "time_zone" {
  description = "Time zone of the schedule (tz database name)."
  type        = string
  default     = "Etc/UTC"
  nullable    = false
}
