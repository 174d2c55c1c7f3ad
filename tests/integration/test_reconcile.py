"""Issue 16: nothing stays in the pipeline for good. Reconcile re-enqueues a stalled
document's missing work (inline queue: it runs at once), fails it with `stage_timeout` after
RECONCILE_MAX_REQUEUES, and `POST documents/<id>/retry` restarts it from the first unfinished
stage. Stalls are made the way an outage leaves them: a vector missing, no task queued."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from ragline.db import engine as db
from ragline.ops import reconcile

from .helpers import Tenant, client, make_tenant

TEXT = "\n\n".join(
    f"Paragraph {i}. The with statement wraps a block with methods of a context manager, "
    "calling __enter__ before and __exit__ after it, even when the block raises." * 3
    for i in range(12)
)


def _ingest(tenant: Tenant) -> str:
    resp = client("ingest").post("/", json={"title": "t", "text": TEXT}, headers=tenant.headers)
    assert resp.status_code == 202
    return str(resp.json["document_id"])


def _stall(doc_id: str, *, age_s: int = 3600, lose: str = "embed") -> None:
    """What a lost task leaves behind: the document still in the pipeline, work missing."""
    with db.owner_session() as session:
        if lose == "embed":
            session.execute(
                sa.text(
                    "UPDATE chunk SET embedding = NULL, embedding_model = NULL "
                    "WHERE document_id = :d AND ord >= 1"
                ),
                {"d": doc_id},
            )
            status = "embedding"
        else:
            session.execute(sa.text("DELETE FROM chunk WHERE document_id = :d"), {"d": doc_id})
            status = "pending"
        session.execute(
            sa.text(
                "UPDATE document SET status = :s, "
                "updated_at = now() - make_interval(secs => :age) WHERE id = :d"
            ),
            {"s": status, "age": age_s, "d": doc_id},
        )
        session.execute(
            sa.text("UPDATE run SET status = 'running', finished_at = NULL WHERE document_id = :d"),
            {"d": doc_id},
        )


def _counts(doc_id: str) -> tuple[int, int, int]:
    """(chunks, embedded, distinct ords): counted in SQL, never through the app."""
    with db.owner_session() as session:
        row = session.execute(
            sa.text(
                "SELECT count(*), count(embedding), count(DISTINCT ord) FROM chunk "
                "WHERE document_id = :d"
            ),
            {"d": doc_id},
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _doc(tenant: Tenant, doc_id: str) -> dict[str, object]:
    resp = client("documents").get(f"/{doc_id}", headers=tenant.headers)
    assert resp.status_code == 200
    body: dict[str, object] = resp.json
    return body


def test_stalled_embedding_is_requeued_and_completes() -> None:
    tenant = make_tenant("rc-requeue")
    doc_id = _ingest(tenant)
    expected = _counts(doc_id)[0]
    assert expected > 1
    _stall(doc_id)
    report = reconcile.run_reconcile(org=tenant.org_id, stall_s=60, max_requeues=3)
    assert report.ok, report.errors
    assert [a.action for a in report.actions] == ["requeued"]
    assert report.actions[0].tasks and report.actions[0].tasks[0].startswith(f"embed-{doc_id}-0")
    assert _doc(tenant, doc_id)["status"] == "ready"
    assert _counts(doc_id) == (expected, expected, expected)
    # Nothing stalled any more: a second run does nothing.
    assert reconcile.run_reconcile(org=tenant.org_id, stall_s=60).actions == []


def test_recent_progress_is_not_a_stall_and_dry_run_changes_nothing() -> None:
    tenant = make_tenant("rc-recent")
    doc_id = _ingest(tenant)
    _stall(doc_id, age_s=5)
    assert reconcile.run_reconcile(org=tenant.org_id, stall_s=60).actions == []
    _stall(doc_id, age_s=120)
    report = reconcile.run_reconcile(org=tenant.org_id, stall_s=60, dry_run=True)
    assert [a.action for a in report.actions] == ["requeued"]
    assert _doc(tenant, doc_id)["status"] == "embedding"


def test_exhausted_requeues_fail_with_stage_timeout_then_retry_restarts() -> None:
    tenant = make_tenant("rc-fail")
    doc_id = _ingest(tenant)
    expected = _counts(doc_id)[0]
    _stall(doc_id, lose="chunks")
    report = reconcile.run_reconcile(org=tenant.org_id, stall_s=60, max_requeues=0)
    assert [a.action for a in report.actions] == ["failed"]
    doc = _doc(tenant, doc_id)
    assert doc["status"] == "failed" and doc["failure_reason"] == "stage_timeout"
    runs = client("runs").get("/?kind=ingest", headers=tenant.headers).json
    assert any(r["status"] == "failed" for r in runs["runs"])

    retried = client("documents").post(f"/{doc_id}/retry", headers=tenant.headers)
    assert retried.status_code == 202
    assert retried.json["from_stage"] == "chunk"
    doc = _doc(tenant, doc_id)
    assert doc["status"] == "ready" and doc["failure_reason"] is None
    assert _counts(doc_id) == (expected, expected, expected)
    # Only a failed document can be retried; an unknown one is 404.
    again = client("documents").post(f"/{doc_id}/retry", headers=tenant.headers)
    assert again.status_code == 409
    missing = client("documents").post(f"/{uuid.uuid4()}/retry", headers=tenant.headers)
    assert missing.status_code == 404


def test_repost_of_a_stalled_document_requeues_its_missing_work() -> None:
    """Re-posting the same content used to answer `200 embedding` and queue nothing."""
    tenant = make_tenant("rc-repost")
    doc_id = _ingest(tenant)
    expected = _counts(doc_id)[0]
    _stall(doc_id)
    resp = client("ingest").post("/", json={"title": "t", "text": TEXT}, headers=tenant.headers)
    assert resp.status_code == 200 and resp.json["document_id"] == doc_id
    assert _doc(tenant, doc_id)["status"] == "ready"
    assert _counts(doc_id) == (expected, expected, expected)


def test_a_document_behind_a_moving_backlog_is_left_to_wait() -> None:
    """While the pipeline progresses, an idle document is most likely queued behind others:
    it is re-enqueued only after BACKLOG_FACTOR stall bounds, and not failed before
    RECONCILE_FAIL_AFTER_S (the load bench failed waiting documents before this rule)."""
    tenant = make_tenant("rc-backlog")
    waiting = _ingest(tenant)
    _ingest_other = client("ingest").post(
        "/", json={"title": "other", "text": TEXT + " other"}, headers=tenant.headers
    )
    assert _ingest_other.status_code == 202  # progressed just now: the pipeline moves
    _stall(waiting, age_s=120)
    report = reconcile.run_reconcile(org=tenant.org_id, stall_s=60, max_requeues=3)
    assert report.pipeline_moving and report.actions == []
    _stall(waiting, age_s=200)  # past 3 x 60 s: its tasks may be lost
    report = reconcile.run_reconcile(org=tenant.org_id, stall_s=60, max_requeues=3)
    assert [a.action for a in report.actions] == ["requeued"]

    _stall(waiting, age_s=200)
    with db.owner_session() as session:
        session.execute(
            sa.text("UPDATE document SET requeues = 3, requeued_at = NULL WHERE id = :d"),
            {"d": waiting},
        )
    kept = reconcile.run_reconcile(org=tenant.org_id, stall_s=60, fail_after_s=300)
    assert kept.pipeline_moving and kept.actions == []
    _stall(waiting, age_s=400)
    failed = reconcile.run_reconcile(org=tenant.org_id, stall_s=60, fail_after_s=300)
    assert [a.action for a in failed.actions] == ["failed"]
    assert _doc(tenant, waiting)["failure_reason"] == "stage_timeout"


def test_requeues_are_spaced_by_the_stall_bound() -> None:
    tenant = make_tenant("rc-spacing")
    doc_id = _ingest(tenant)
    _stall(doc_id)
    with db.owner_session() as session:  # re-enqueued a moment ago, its work still queued
        session.execute(
            sa.text("UPDATE document SET requeues = 1, requeued_at = now() WHERE id = :d"),
            {"d": doc_id},
        )
    assert reconcile.run_reconcile(org=tenant.org_id, stall_s=60).actions == []
