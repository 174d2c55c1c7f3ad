"""ragline: multi-tenant retrieval backend for serverless functions.

One subpackage per layer; imports point down the list only (checked by import-linter,
`make lint`; see docs/architecture.md):

    dev, testing      developer tools and test doubles (never deployed)
    api               HTTP entry points: endpoint wrappers, bodies, routes, replies
    ops               health, retention, status
    ingest            documents, chunking, pipeline stages, queues
    retrieval         embeddings, search, answers, runs
    guardrails        API keys, idempotency, rate limits, fair share
    db                engine, models, tenancy, pagination, orgs
    cloud             gcp and aws adapters (Cloud Tasks, Cloud SQL, Vertex, Storage; SQS, Secrets,
                      RDS, S3)
    core              config, errors, logs
"""

__version__ = "0.1.0"
