"""Answers out: embeddings (`embeddings`, one module per provider), hybrid search with a
recall guarantee (`search`), answers with citations (`answer`) and recorded agent runs (`runs`).
Uses `db`, `guardrails` and `cloud`; never imports `ingest` or the HTTP layer."""
