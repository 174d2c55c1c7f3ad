"""Adapters to one provider's services, each importing its SDK lazily and only `core`:
`cloud.gcp` (Cloud Tasks, Cloud SQL connector, Vertex AI auth, Cloud Storage) and `cloud.aws`
(SQS, Secrets Manager, RDS, S3). A function package for one cloud carries only that cloud's
adapters."""
