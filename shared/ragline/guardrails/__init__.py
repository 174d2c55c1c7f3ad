"""What protects the service from its callers: API keys (`apikeys`), idempotency keys
(`idempotency`), token-bucket rate limits (`ratelimit`) and per-org fair share of pipeline
stages and per-document caps (`fairshare`). Uses `db`; knows no HTTP."""
