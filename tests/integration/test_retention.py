"""Retention: every policy at its limits, per-org overrides, batching under a budget,
idempotence, dry runs, parent runs, and the scheduler-only `retention` function."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.dialects.postgresql import insert
from typer.testing import CliRunner

from ragline.core.errors import NotFoundError
from ragline.db import engine as db
from ragline.db.models import ApiKey, Chunk, Document, IdempotencyKey, Org, RateLimitBucket, Run
from ragline.dev.cli_ops import retention_app, status_command
from ragline.ops.retention import POLICIES, run_retention

from .helpers import Tenant, client, make_tenant

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SECRET = "s3cret"
#: What `seed_every_policy` leaves eligible under the default policies.
EXPECTED = {
    "runs": 1,
    "tool_logs": 1,
    "idempotency_keys": 2,
    "tombstone_chunks": 2,
    "tombstones": 1,
    "rate_limit_buckets": 1,
    "embedding_spaces": 0,
    "query_log": 0,
}


@pytest.fixture()
def now() -> datetime:
    return datetime.now(UTC)


# --- seeding, as the owner (RLS does not apply) ---------------------------------------------


def add(*rows: Any) -> list[Any]:
    with db.owner_session() as s:
        s.add_all(rows)
        s.flush()
        return [getattr(r, "id", None) for r in rows]


def set_org_settings(org_id: uuid.UUID, settings: dict[str, Any]) -> None:
    with db.owner_session() as s:
        s.execute(sa.update(Org).where(Org.id == org_id).values(settings=settings))


def run_row(org_id: uuid.UUID, age: timedelta, now: datetime, **kw: Any) -> Run:
    kw.setdefault("kind", "agent")
    kw.setdefault("status", "succeeded")
    return Run(org_id=org_id, created_at=now - age, **kw)


def document(
    org_id: uuid.UUID, name: str, deleted_ago: timedelta | None, now: datetime
) -> Document:
    return Document(
        org_id=org_id,
        title=name,
        content="" if deleted_ago is not None else f"text of {name}",
        content_hash=f"hash-{name}-{uuid.uuid4().hex}",
        status="deleted" if deleted_ago is not None else "ready",
        deleted_at=None if deleted_ago is None else now - deleted_ago,
    )


def chunks(org_id: uuid.UUID, doc_id: uuid.UUID, n: int) -> list[Chunk]:
    return [
        Chunk(org_id=org_id, document_id=doc_id, ord=i, text=f"chunk {i}", token_count=2)
        for i in range(n)
    ]


def idem(
    org_id: uuid.UUID, status: str, created_ago: timedelta, expires_in: timedelta, now: datetime
) -> IdempotencyKey:
    return IdempotencyKey(
        org_id=org_id,
        function="ingest",
        key=uuid.uuid4().hex,
        request_hash="h",
        status=status,
        locked_until=now,
        created_at=now - created_ago,
        expires_at=now + expires_in,
    )


def bucket(org_id: uuid.UUID, name: str, idle: timedelta, now: datetime) -> None:
    with db.owner_session() as s:
        key_id = s.scalar(sa.select(ApiKey.id).where(ApiKey.org_id == org_id).limit(1))
        s.execute(
            insert(RateLimitBucket).values(
                org_id=org_id, caller_id=key_id, bucket=name, tokens=1.0, updated_at=now - idle
            )
        )


def seed_every_policy(org_id: uuid.UUID, now: datetime) -> dict[str, uuid.UUID]:
    """One row just outside and one just inside each limit (defaults)."""
    ids: dict[str, uuid.UUID] = {}
    (
        ids["run_old"],
        ids["run_edge"],
        ids["log_old"],
        ids["log_young"],
        ids["log_running"],
    ) = add(
        run_row(org_id, 30 * DAY + MIN, now, tool_log=[{"tool": "search"}]),
        run_row(org_id, 30 * DAY - MIN, now),
        run_row(org_id, DAY + MIN, now, tool_log=[{"tool": "search"}]),
        run_row(org_id, DAY - MIN, now, tool_log=[{"tool": "search"}]),
        run_row(org_id, DAY + HOUR, now, status="running", tool_log=[{"tool": "search"}]),
    )
    ids["idem_expired"], ids["idem_valid"], ids["idem_stuck"], ids["idem_fresh"] = add(
        idem(org_id, "completed", 2 * DAY, -MIN, now),
        idem(org_id, "completed", 2 * DAY, MIN, now),
        idem(org_id, "in_progress", DAY + MIN, HOUR, now),
        idem(org_id, "in_progress", DAY - MIN, HOUR, now),
    )
    ids["doc_tomb"], ids["doc_live"] = add(
        document(org_id, "tomb", MIN, now), document(org_id, "live", None, now)
    )
    add(*chunks(org_id, ids["doc_tomb"], 2), *chunks(org_id, ids["doc_live"], 1))
    bucket(org_id, "crud", DAY + MIN, now)
    bucket(org_id, "agent", DAY - MIN, now)
    return ids


def ids_of(model: Any, org_id: uuid.UUID, *where: Any) -> set[Any]:
    with db.owner_session() as s:
        return set(s.scalars(sa.select(model.id).where(model.org_id == org_id, *where)))


def snapshot(org_id: uuid.UUID) -> dict[str, Any]:
    """Every row the policies could touch, with the mutable bits."""
    with db.owner_session() as s:
        return {
            "runs": sorted(
                (str(r.id), str(r.tool_log))
                for r in s.execute(sa.select(Run.id, Run.tool_log).where(Run.org_id == org_id))
            ),
            "idem": sorted(map(str, ids_of(IdempotencyKey, org_id))),
            "docs": sorted(map(str, ids_of(Document, org_id))),
            "chunks": sorted(map(str, ids_of(Chunk, org_id))),
            "buckets": sorted(
                s.scalars(sa.select(RateLimitBucket.bucket).where(RateLimitBucket.org_id == org_id))
            ),
        }


def retention_runs(org_id: uuid.UUID) -> list[Run]:
    with db.owner_session() as s:
        rows = s.scalars(
            sa.select(Run)
            .where(Run.org_id == org_id, Run.kind == "retention")
            .order_by(Run.created_at, Run.started_at)
        ).all()
        s.expunge_all()
        return list(rows)


# --- policies -------------------------------------------------------------------------------


def test_each_policy_at_its_limits(tenant: Tenant, now: datetime) -> None:
    ids = seed_every_policy(tenant.org_id, now)
    report = run_retention(now=now)
    assert report.ok and report.complete
    (org,) = report.orgs
    assert org.counts == EXPECTED
    runs = ids_of(Run, tenant.org_id, Run.kind != "retention")
    assert runs == {ids["run_edge"], ids["log_old"], ids["log_young"], ids["log_running"]}
    with db.owner_session() as s:
        logs: dict[uuid.UUID, Any] = dict(
            s.execute(sa.select(Run.id, Run.tool_log).where(Run.id.in_(runs))).all()
        )
    assert logs[ids["log_old"]] == []
    assert logs[ids["log_young"]] == [{"tool": "search"}]
    assert logs[ids["log_running"]] == [{"tool": "search"}]  # never under a running run
    assert ids_of(IdempotencyKey, tenant.org_id) == {ids["idem_valid"], ids["idem_fresh"]}
    assert ids_of(Document, tenant.org_id) == {ids["doc_live"]}
    assert len(ids_of(Chunk, tenant.org_id)) == 1
    assert snapshot(tenant.org_id)["buckets"] == ["agent"]
    (recorded,) = retention_runs(tenant.org_id)
    assert recorded.status == "succeeded" and recorded.finished_at is not None
    assert recorded.state["counts"] == EXPECTED and recorded.state["complete"] is True
    assert recorded.state["policies"]["runs_days"] == 30


def test_second_run_deletes_nothing(tenant: Tenant, now: datetime) -> None:
    seed_every_policy(tenant.org_id, now)
    assert run_retention(now=now).totals() == EXPECTED
    before = snapshot(tenant.org_id)
    again = run_retention(now=now)
    assert again.complete and again.totals() == dict.fromkeys(POLICIES, 0)
    after = snapshot(tenant.org_id)
    # Only the new retention run record differs.
    assert set(after["runs"]) - set(before["runs"]) == {
        (str(r.id), "[]") for r in retention_runs(tenant.org_id)[1:]
    }
    assert {k: v for k, v in after.items() if k != "runs"} == {
        k: v for k, v in before.items() if k != "runs"
    }


def test_dry_run_counts_and_writes_nothing(tenant: Tenant, now: datetime) -> None:
    seed_every_policy(tenant.org_id, now)
    before = snapshot(tenant.org_id)
    dry = run_retention(dry_run=True, now=now)
    assert dry.dry_run and dry.complete and dry.totals() == EXPECTED
    assert snapshot(tenant.org_id) == before
    assert retention_runs(tenant.org_id) == []  # a dry run records nothing either
    assert run_retention(now=now).totals() == dry.totals()


def test_per_org_overrides(now: datetime) -> None:
    plain, custom = make_tenant("plain"), make_tenant("custom")
    set_org_settings(
        custom.org_id,
        {"rate_limits": {"crud": 5}, "retention": {"runs_days": 7, "tombstone_hours": 48}},
    )
    for t in (plain, custom):
        add(
            run_row(t.org_id, 8 * DAY, now),
            run_row(t.org_id, 6 * DAY, now),
            document(t.org_id, "recent", HOUR, now),
            document(t.org_id, "older", 48 * HOUR + MIN, now),
        )
    report = run_retention(now=now)
    by_slug = {o.slug: o for o in report.orgs}
    assert by_slug["plain"].counts["runs"] == 0 and by_slug["plain"].counts["tombstones"] == 2
    assert by_slug["custom"].counts["runs"] == 1 and by_slug["custom"].counts["tombstones"] == 1
    assert by_slug["custom"].policies["runs_days"] == 7
    assert len(ids_of(Run, plain.org_id, Run.kind == "agent")) == 2
    assert len(ids_of(Run, custom.org_id, Run.kind == "agent")) == 1
    with db.owner_session() as s:
        kept = s.scalars(sa.select(Document.title).where(Document.org_id == custom.org_id)).all()
    assert kept == ["recent"]


def test_invalid_override_fails_that_org_only(now: datetime) -> None:
    good, bad = make_tenant("good"), make_tenant("bad")
    set_org_settings(bad.org_id, {"retention": {"runs_days": "soon", "keep": True}})
    for t in (good, bad):
        add(run_row(t.org_id, 40 * DAY, now))
    report = run_retention(now=now)
    by_slug = {o.slug: o for o in report.orgs}
    assert not report.ok and not report.complete
    assert by_slug["good"].error is None and by_slug["good"].counts["runs"] == 1
    assert "invalid org.settings.retention" in (by_slug["bad"].error or "")
    assert len(ids_of(Run, bad.org_id, Run.kind == "agent")) == 1  # untouched
    (recorded,) = retention_runs(bad.org_id)
    assert recorded.status == "failed" and "runs_days" in (recorded.error or "")


def test_backlog_resumes_across_runs_within_budget(tenant: Tenant, now: datetime) -> None:
    add(*(run_row(tenant.org_id, 40 * DAY, now) for _ in range(180)))
    deleted: list[int] = []
    for _ in range(20):
        report = run_retention(batch_size=50, budget_s=0, now=now)
        deleted.append(report.totals()["runs"])
        if report.complete:
            break
    assert report.complete
    assert deleted[:4] == [50, 50, 50, 30] and sum(deleted) == 180
    records = retention_runs(tenant.org_id)
    assert len(records) == len(deleted)
    assert [r.state["complete"] for r in records] == [False] * (len(deleted) - 1) + [True]
    assert all(r.status == "succeeded" for r in records)
    assert ids_of(Run, tenant.org_id, Run.kind != "retention") == set()


def test_budget_spent_leaves_later_orgs_for_the_next_run(now: datetime) -> None:
    first, second = make_tenant("first"), make_tenant("second")
    for t in (first, second):
        add(*(run_row(t.org_id, 40 * DAY, now) for _ in range(3)))
    report = run_retention(batch_size=2, budget_s=0, now=now)
    assert [o.slug for o in report.orgs] == ["first"] and report.skipped_orgs == [second.org_id]
    assert not report.complete and report.to_dict()["skipped_orgs"] == [str(second.org_id)]
    assert retention_runs(second.org_id) == []
    final = run_retention(now=now)
    assert final.complete and {o.slug: o.counts["runs"] for o in final.orgs} == {
        "first": 1,
        "second": 3,
    }


def test_locked_rows_are_skipped_not_waited_for(tenant: Tenant, now: datetime) -> None:
    locked, free = add(run_row(tenant.org_id, 40 * DAY, now), run_row(tenant.org_id, 40 * DAY, now))
    with db.get_engine(app_role=False).connect() as conn:
        conn.execute(sa.text("SELECT id FROM run WHERE id = :id FOR UPDATE"), {"id": locked})
        report = run_retention(now=now)
        conn.rollback()
    assert report.totals()["runs"] == 1
    assert ids_of(Run, tenant.org_id, Run.kind != "retention") == {locked}
    assert run_retention(now=now).totals()["runs"] == 1
    assert free not in ids_of(Run, tenant.org_id)


def test_children_of_a_deleted_run_survive_with_null_parent(tenant: Tenant, now: datetime) -> None:
    (parent,) = add(run_row(tenant.org_id, 31 * DAY, now, kind="agent"))
    (child,) = add(run_row(tenant.org_id, DAY - MIN, now, kind="tool", parent_run_id=parent))
    assert run_retention(now=now).totals()["runs"] == 1
    with db.owner_session() as s:
        row = s.get(Run, child)
        assert s.get(Run, parent) is None
        assert row is not None and row.parent_run_id is None and row.kind == "tool"


def test_the_current_retention_run_is_never_its_own_victim(tenant: Tenant, now: datetime) -> None:
    report = run_retention(now=now + 40 * DAY)
    (recorded,) = retention_runs(tenant.org_id)
    assert recorded.id == report.orgs[0].run_id and recorded.status == "succeeded"


def test_one_org_only_and_unknown_org(now: datetime) -> None:
    one, other = make_tenant("one"), make_tenant("other")
    for t in (one, other):
        add(run_row(t.org_id, 40 * DAY, now))
    report = run_retention(org=one.org_id, now=now)
    assert [o.org_id for o in report.orgs] == [one.org_id] and report.totals()["runs"] == 1
    assert len(ids_of(Run, other.org_id)) == 1
    with pytest.raises(NotFoundError):
        run_retention(org=uuid.uuid4(), now=now)


# --- the function: only the scheduler may call it ------------------------------------------


@pytest.fixture()
def secret_auth(configure: Callable[..., None]) -> None:
    configure(task_auth="secret", task_secret=SECRET)


@pytest.mark.usefixtures("secret_auth")
def test_retention_function_accepts_only_the_scheduler(tenant: Tenant, now: datetime) -> None:
    add(run_row(tenant.org_id, 40 * DAY, now))
    fn = client("retention")
    ok = {"X-Ragline-Task-Secret": SECRET}
    for headers in ({}, {"X-Ragline-Task-Secret": "wrong"}, tenant.headers):
        resp = fn.post("/", json={}, headers=headers)
        assert resp.status_code == 401, resp.json
        assert resp.json["error"]["code"] == "unauthenticated" and resp.headers["X-Request-Id"]
    assert fn.get("/", headers=ok).status_code == 405
    dry = fn.post("/", json={"dry_run": True}, headers=ok)
    assert dry.status_code == 200, dry.json
    assert dry.json["report"]["dry_run"] is True and dry.json["report"]["totals"]["runs"] == 1
    real = fn.post("/", headers=ok)  # no body at all, as a bare scheduler job sends
    assert real.status_code == 200 and real.json["report"]["totals"]["runs"] == 1
    (org,) = real.json["report"]["orgs"]
    assert org["org_id"] == str(tenant.org_id) and org["complete"] is True
    one = fn.post("/", json={"org_id": str(tenant.org_id)}, headers=ok)
    assert one.status_code == 200 and one.json["report"]["totals"]["runs"] == 0


@pytest.mark.usefixtures("secret_auth")
@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"org_id": str(uuid.UUID(int=7))}, 404),
        ({"dry_run": "yes"}, 422),
        ({"unknown": 1}, 422),
        ([1, 2], 422),
    ],
    ids=["unknown org", "non-bool dry_run", "unknown field", "not an object"],
)
def test_retention_function_bad_bodies(tenant: Tenant, body: Any, status: int) -> None:
    resp = client("retention").post("/", json=body, headers={"X-Ragline-Task-Secret": SECRET})
    assert resp.status_code == status, resp.json
    assert resp.json["error"]["code"]


def test_retention_function_checks_the_scheduler_oidc_token(
    tenant: Tenant, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.oauth2 import id_token

    scheduler = "ragline-retention-sched@p.iam.gserviceaccount.com"
    configure(
        task_auth="oidc",
        function_urls='{"retention": "https://retention.example"}',
        scheduler_caller_service_account=scheduler,
    )
    audiences: list[str] = []
    # Shaped like JWTs (header.payload.signature): anything else is refused before verifying.
    forged, other, good = (f"eyJhbGciOiJSUzI1NiJ9.{name}0000000000.c2lnbmF0dXJl" for name in "fos")

    def verify(token: str, _request: Any, audience: str) -> dict[str, str]:
        audiences.append(audience)
        if token == forged:
            raise ValueError("bad signature")
        return {"email": scheduler if token == good else "someone@p.iam"}

    monkeypatch.setattr(id_token, "verify_oauth2_token", verify)
    fn = client("retention")
    assert fn.post("/").status_code == 401
    assert fn.post("/", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    assert fn.post("/", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert fn.post("/", headers={"Authorization": f"Bearer {other}"}).status_code == 403
    resp = fn.post("/", json={"dry_run": True}, headers={"Authorization": f"Bearer {good}"})
    assert resp.status_code == 200, resp.json
    assert set(audiences) == {"https://retention.example"}


# --- the CLI (wired in ragline.dev.cli as `retention` and `status`) ------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(retention_app, name="retention")
    app.command("status")(status_command)
    return app


def test_cli_retention_run_prints_a_line_per_org(tenant: Tenant, now: datetime) -> None:
    make_tenant("second")
    add(run_row(tenant.org_id, 40 * DAY, now))
    dry = CliRunner().invoke(cli(), ["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    lines = dry.output.splitlines()
    assert any(ln.startswith("acme") and "would touch runs=1" in ln for ln in lines)
    assert any(ln.startswith("second") for ln in lines)
    one = CliRunner().invoke(cli(), ["retention", "run", "--org", "acme"])
    assert one.exit_code == 0 and "touched runs=1" in one.output and "second" not in one.output
    assert CliRunner().invoke(cli(), ["retention", "run", "--org", "nope"]).exit_code == 1
