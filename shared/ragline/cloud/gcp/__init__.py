"""Google Cloud adapters: Cloud Tasks (`cloud_tasks`), the Cloud SQL connector (`cloudsql`),
Vertex AI credentials and URLs (`vertex`) and Cloud Storage (`storage`). Each imports its SDK
only when first used."""
