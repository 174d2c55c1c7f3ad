terraform {
  required_version = ">= 1.6"
  required_providers {
    archive = {
      source  = "hashicorp/archive"
      version = "2.7.1"
    }
    google = {
      source  = "hashicorp/google"
      version = "6.50.0"
    }
    time = {
      source  = "hashicorp/time"
      version = "0.13.1"
    }
  }
  # Exact versions: the ones terraform/tools/provider_schema.json was extracted from and
  # tests/unit/test_terraform_schema.py checks against (issue 15). Modules accept the range.
  # State lives in a GCS bucket created once per project (see README.md):
  # terraform init -backend-config=bucket=BUCKET -backend-config=prefix=ragline/ENV
  backend "gcs" {}
}
