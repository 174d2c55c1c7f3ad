"""The search query log (issue 17): one upsert per logged search in the search transaction,
bounded per org (a ring of QUERY_LOG_SIZE slots), sampled, row-level secured like every
tenant table, purged by retention after `query_log_days`."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import sqlalchemy as sa

from ragline.db import engine as db
from ragline.db import tenancy
from ragline.db.models import Org, QueryLog
from ragline.ops.retention import run_retention
from ragline.retrieval import querylog

from .helpers import Tenant, client, make_tenant


def _search(tenant: Tenant, query: str) -> None:
    resp = client("search").post("/", json={"query": query}, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data()


def _rows(org_id: uuid.UUID) -> list[str]:
    with tenancy.tenant_session(org_id) as s:
        return list(s.scalars(tenancy.scoped_select(s, QueryLog).with_only_columns(QueryLog.query)))


def test_searches_are_logged_bounded_per_org_and_isolated(
    offline_pipeline: Callable[..., None],
) -> None:
    offline_pipeline(query_log_size="4", query_log_rate="1")
    acme, other = make_tenant("ql-acme"), make_tenant("ql-other")
    for i in range(30):
        _search(acme, f"question {i}")
    _search(other, "the other org's question")
    logged = _rows(acme.org_id)
    assert 1 <= len(logged) <= 4 and all(q.startswith("question ") for q in logged)
    assert _rows(other.org_id) == ["the other org's question"]  # RLS: its own rows only
    with tenancy.tenant_session(acme.org_id) as s:
        recent = querylog.recent(s)
        assert set(recent) == set(logged)
        # Another org's id in a row is refused by the policy's WITH CHECK.
        s.execute(sa.text("SAVEPOINT p"))
        try:
            s.execute(
                sa.text("INSERT INTO query_log (org_id, slot, query) VALUES (:o, 0, 'x')"),
                {"o": other.org_id},
            )
            raise AssertionError("RLS let a row of another org in")
        except sa.exc.ProgrammingError:
            s.execute(sa.text("ROLLBACK TO SAVEPOINT p"))


def test_sampling_and_switching_off(offline_pipeline: Callable[..., None]) -> None:
    offline_pipeline(query_log_rate="0")
    tenant = make_tenant("ql-off")
    _search(tenant, "not logged")
    assert _rows(tenant.org_id) == []
    offline_pipeline(query_log_rate="1", query_log_size="0")
    _search(tenant, "not logged either")
    assert _rows(tenant.org_id) == []


def test_retention_purges_old_queries(offline_pipeline: Callable[..., None]) -> None:
    offline_pipeline()
    tenant = make_tenant("ql-old")
    _search(tenant, "old question")
    _search(tenant, "another old question")
    report = run_retention(org=tenant.org_id, dry_run=True)
    assert report.totals()["query_log"] == 0  # 30 days by default
    with db.owner_session() as s:
        s.execute(
            sa.update(QueryLog)
            .where(QueryLog.org_id == tenant.org_id)
            .values(created_at=sa.func.now() - sa.text("interval '2 days'"))
        )
        s.execute(
            sa.update(Org)
            .where(Org.id == tenant.org_id)
            .values(settings={"retention": {"query_log_days": 1}})
        )
    logged = len(_rows(tenant.org_id))
    report = run_retention(org=tenant.org_id, batch_size=1)
    assert report.ok and report.totals()["query_log"] == logged
    assert _rows(tenant.org_id) == []
