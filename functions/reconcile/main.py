"""`reconcile`: POST from Cloud Scheduler (OIDC) re-enqueues the work of stalled documents.

Body (optional): `{"dry_run": bool, "org_id": uuid}`. 200 with the report; 500 when an org
failed (Cloud Scheduler retries; the job is idempotent)."""

import functions_framework
from flask import Request

from ragline.api import Reply, optional_json_body, scheduled_endpoint


@functions_framework.http
@scheduled_endpoint("reconcile")
def reconcile(req: Request) -> Reply:
    from ragline.ops import reconcile as job

    body = optional_json_body(req, job.ReconcileRequest)
    report = job.run_reconcile(dry_run=body.dry_run, org=body.org_id)
    return Reply({"report": report.to_dict()}, 200 if report.ok else 500)
