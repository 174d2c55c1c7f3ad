"""Operator commands: `ragline retention run`, `ragline reconcile`, `ragline org-graphs` and
`ragline status` (registered in ragline.dev.cli)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from ragline.core.errors import RaglineError

retention_app = typer.Typer(
    no_args_is_help=True, help="Retention: delete what ragline no longer needs (per org)."
)


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _resolve_org(org: str | None) -> uuid.UUID | None:
    """An org given as slug or id, checked to exist (owner session)."""
    if org is None:
        return None
    from ragline.db import orgs
    from ragline.db.engine import owner_session
    from ragline.db.models import Org

    with owner_session() as session:
        org_id = orgs.org_id_by_slug(session, org)
        exists = org_id is not None and session.get(Org, org_id) is not None
    if not exists:
        _fail(f"no org {org!r}")
    return org_id


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would go; delete nothing")
    ] = False,
    org: Annotated[str | None, typer.Option(help="org slug or id (default: every org)")] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="rows per transaction (RETENTION_BATCH_SIZE)")
    ] = None,
    budget: Annotated[
        float | None, typer.Option(min=0, help="seconds before stopping (RETENTION_BUDGET_S)")
    ] = None,
) -> None:
    """Apply the retention policies now, org by org (what the scheduled function runs)."""
    from ragline.ops import retention

    try:
        report = retention.run_retention(
            dry_run=dry_run,
            org=_resolve_org(org),
            batch_size=batch_size,
            budget_s=budget,
            progress=lambda r: typer.echo(retention.format_org_line(r, dry_run=dry_run)),
        )
    except RaglineError as exc:
        _fail(exc.message)
        return
    typer.echo(retention.format_report(report))
    if not report.ok:
        raise typer.Exit(1)


def reconcile_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="report what would be done; change nothing")
    ] = False,
    org: Annotated[str | None, typer.Option(help="org slug or id (default: every org)")] = None,
    stall: Annotated[
        float | None,
        typer.Option(min=0.001, help="seconds without progress (RECONCILE_STALL_S)"),
    ] = None,
) -> None:
    """Re-enqueue the missing work of stalled documents, or fail them (what the scheduled
    `reconcile` function runs)."""
    from ragline.dev import devstack
    from ragline.ops import reconcile

    if not dry_run:
        typer.echo(f"re-enqueued work goes to {devstack.use_stack_queues()}", err=True)

    try:
        report = reconcile.run_reconcile(dry_run=dry_run, org=_resolve_org(org), stall_s=stall)
    except RaglineError as exc:
        _fail(exc.message)
        return
    summary = report.to_dict()
    verb = "would be" if dry_run else "were"
    for action in report.actions:
        typer.echo(
            f"{action.org_id}  {action.document_id}  {action.status:<10} "
            f"stalled {action.stalled_s:>7.0f}s  {action.action}"
            + (f" ({len(action.tasks)} tasks)" if action.tasks else "")
        )
    typer.echo(
        f"{summary['requeued']} documents {verb} re-enqueued, {summary['failed']} {verb} "
        f"failed (stall bound {report.stall_s:g}s, max {report.max_requeues} re-enqueues)"
    )
    for org_id, error in report.errors.items():
        typer.secho(f"org {org_id}: {error}", fg=typer.colors.RED, err=True)
    if not report.ok:
        raise typer.Exit(1)


def org_graphs_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be built and dropped; change nothing")
    ] = False,
    min_chunks: Annotated[
        int | None,
        typer.Option(min=2, help="vectors from which an org gets its own graph (default 10000)"),
    ] = None,
    maintenance_work_mem: Annotated[
        str | None,
        typer.Option(help="memory for each build, e.g. 1GB (default: the server's setting)"),
    ] = None,
) -> None:
    """Give each large org (or embedding space) an HNSW graph of its own, and drop those of
    orgs that shrank or left: as the table owner, without blocking writes. Run it after
    migrations and then periodically (docs/search.md)."""
    from ragline.db.engine import get_engine
    from ragline.retrieval import orggraphs

    engine = get_engine(app_role=False)
    threshold = min_chunks or orggraphs.ORG_GRAPH_MIN_CHUNKS
    with engine.connect() as conn:
        todo = orggraphs.plan(conn, threshold)
    for name in todo.keep:
        typer.echo(f"keep   {name}")
    for name in todo.drop:
        typer.echo(f"drop   {name}")
    for graph, rows in todo.build:
        typer.echo(f"build  {graph.name} on {graph.table} ({rows} vectors)")
    if dry_run:
        typer.echo(f"dry run: {len(todo.build)} to build, {len(todo.drop)} to drop")
        return
    try:
        orggraphs.apply(
            engine,
            todo,
            maintenance_work_mem=maintenance_work_mem,
            progress=lambda line: typer.echo(f"  {line}", err=True),
        )
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"{len(todo.build)} built, {len(todo.drop)} dropped, {len(todo.keep)} kept")


def status_command(
    org: Annotated[str | None, typer.Option(help="org slug or id (default: every org)")] = None,
) -> None:
    """Per org: documents by status, chunks, runs, failed documents, oldest pending item."""
    from ragline.db.engine import owner_session
    from ragline.ops import status

    org_id = _resolve_org(org)
    try:
        with owner_session() as session:
            report = status.collect_status(session, org=org_id)
    except RaglineError as exc:
        _fail(exc.message)
        return
    typer.echo(status.format_status(report))
