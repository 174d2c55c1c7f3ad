"""`ragline status`: the per-org operator view, from an owner session."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from ragline.core.errors import ConfigurationError, NotFoundError
from ragline.db import engine as db
from ragline.db.models import Chunk, Document, Run
from ragline.dev.cli_ops import retention_app, status_command
from ragline.ops import status

from .helpers import make_tenant

NOW = datetime.now(UTC)


def add(*rows: Any) -> list[Any]:
    with db.owner_session() as s:
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def doc(org_id: uuid.UUID, title: str, state: str, age: timedelta, **kw: Any) -> Document:
    return Document(
        org_id=org_id,
        title=title,
        content="x",
        content_hash=uuid.uuid4().hex,
        status=state,
        created_at=NOW - age,
        updated_at=NOW - age,
        deleted_at=NOW if state == "deleted" else None,
        **kw,
    )


@pytest.fixture()
def seeded() -> dict[str, Any]:
    busy, idle = make_tenant("busy"), make_tenant("idle")
    org = busy.org_id
    ready = add(*(doc(org, f"ready {i}", "ready", timedelta(days=1)) for i in range(2)))
    add(
        *(Chunk(org_id=org, document_id=ready[0], ord=i, text="t", token_count=1) for i in range(3))
    )
    failed = add(
        *(
            doc(org, f"broken {i}", "failed", timedelta(minutes=10 * i), error=f"embed: boom {i}")
            for i in range(6)
        )
    )
    (oldest,) = add(doc(org, "stuck upload", "pending", timedelta(hours=2, minutes=5)))
    add(
        doc(org, "in flight", "embedding", timedelta(minutes=30)),
        doc(org, "gone", "deleted", timedelta(days=3)),
        # An older document still marked pending but deleted is not "pending".
        Document(
            org_id=org,
            title="deleted while pending",
            content="",
            content_hash="h-del",
            status="pending",
            created_at=NOW - timedelta(days=9),
            deleted_at=NOW,
        ),
    )
    add(
        Run(org_id=org, kind="ingest", status="succeeded"),
        Run(org_id=org, kind="ingest", status="succeeded"),
        Run(org_id=org, kind="ingest", status="failed", error="x"),
        Run(org_id=org, kind="retention", status="succeeded"),
    )
    return {"busy": busy.org_id, "idle": idle.org_id, "failed": failed, "oldest": oldest}


def test_collect_status_per_org(seeded: dict[str, Any]) -> None:
    with db.owner_session() as s:
        report = status.collect_status(s)
    busy, idle = report.orgs
    assert (busy.slug, idle.slug) == ("busy", "idle")
    assert busy.documents == {"ready": 2, "failed": 6, "pending": 2, "embedding": 1, "deleted": 1}
    assert busy.chunks == 3
    assert busy.runs == {
        "ingest": {"failed": 1, "succeeded": 2},
        "retention": {"succeeded": 1},
    }
    assert busy.runs_with_status("failed") == 1
    # The 5 most recently updated failures, newest first.
    assert [f.id for f in busy.failed] == seeded["failed"][:5]
    assert busy.failed[0].error == "embed: boom 0"
    assert busy.oldest_pending is not None
    assert busy.oldest_pending.id == seeded["oldest"]
    assert busy.oldest_pending.status == "pending"
    assert 2 * 3600 < busy.oldest_pending.age_s < 3 * 3600
    assert idle.documents == {} and idle.chunks == 0 and idle.runs == {}
    assert idle.failed == [] and idle.oldest_pending is None


def test_format_status_is_a_readable_table(seeded: dict[str, Any]) -> None:
    with db.owner_session() as s:
        text = status.format_status(status.collect_status(s))
    lines = text.splitlines()
    header = next(ln for ln in lines if ln.startswith("ORG "))
    assert header.split() == [
        "ORG",
        "DOCS",
        "PENDING",
        "CHUNKING",
        "EMBEDDING",
        "READY",
        "FAILED",
        "DELETED",
        "CHUNKS",
        "RUNS",
        "RUNS",
        "FAILED",
        "OLDEST",
        "PENDING",
    ]
    busy = next(ln for ln in lines if ln.startswith("busy "))
    assert busy.split()[:12] == ["busy", "12", "2", "0", "1", "2", "6", "1", "3", "4", "1", "2h"]
    assert next(ln for ln in lines if ln.startswith("idle ")).split()[-1] == "-"
    assert "embed: boom 0" in text and "embed: boom 5" not in text
    assert str(seeded["oldest"]) in text
    assert "ingest" in text and "failed 1, succeeded 2" in text


def test_one_org_unknown_org_and_no_orgs(seeded: dict[str, Any]) -> None:
    with db.owner_session() as s:
        only = status.collect_status(s, org=seeded["idle"])
        assert [o.slug for o in only.orgs] == ["idle"]
        with pytest.raises(NotFoundError):
            status.collect_status(s, org=uuid.uuid4())
    with db.owner_session() as s:
        s.execute(sa.text("TRUNCATE org CASCADE"))
    with db.owner_session() as s:
        assert status.format_status(status.collect_status(s)) == "no orgs"


def test_a_role_blind_to_orgs_is_an_error_not_an_empty_report(seeded: dict[str, Any]) -> None:
    with (
        pytest.raises(ConfigurationError, match="ragline_admin or ragline_ops"),
        db.owner_session() as s,
    ):
        s.execute(sa.text("SET LOCAL ROLE ragline_app"))  # may not list orgs at all
        status.collect_status(s)
    with db.owner_session() as s:
        s.execute(sa.text("SET LOCAL ROLE ragline_ops"))  # the retention job's role may
        assert {o.slug for o in status.list_orgs(s)} >= {"idle", "busy"}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (125, "2m"), (7500, "2h 05m"), (2 * 86400 + 4 * 3600, "2d 04h")],
)
def test_format_age(seconds: float, text: str) -> None:
    assert status.format_age(seconds) == text


def test_status_command(seeded: dict[str, Any]) -> None:
    app = typer.Typer()
    app.add_typer(retention_app, name="retention")
    app.command("status")(status_command)
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "busy" in result.output and "idle" in result.output
    one = CliRunner().invoke(app, ["status", "--org", "idle"])
    assert one.exit_code == 0 and "busy" not in one.output
    assert CliRunner().invoke(app, ["status", "--org", "nope"]).exit_code == 1
