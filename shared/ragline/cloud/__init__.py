"""Adapters to one provider's services, each importing its SDK lazily and only `core`:
`cloud.gcp` (Cloud Tasks, Cloud SQL connector, Vertex AI auth) and `cloud.aws` (SQS, Secrets
Manager, RDS). A function package for one cloud carries only that cloud's adapters."""
