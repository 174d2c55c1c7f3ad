terraform {
  required_version = ">= 1.6"
  required_providers {
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
  # State lives in a GCS bucket created once per project (see README.md):
  # terraform init -backend-config=bucket=BUCKET -backend-config=prefix=ragline/ENV
  backend "gcs" {}
}
