"""Google Cloud adapters: Cloud Tasks (`cloud_tasks`), the Cloud SQL connector (`cloudsql`) and
Vertex AI credentials and URLs (`vertex`). Each imports its SDK only when first used."""
