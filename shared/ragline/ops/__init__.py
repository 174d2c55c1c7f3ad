"""Keeping a deployment healthy: readiness and liveness (`health`), the retention job
(`retention`) and the status report (`status`). May use every domain package; knows no HTTP."""
