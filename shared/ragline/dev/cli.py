"""The `ragline` command line: database, migrations, orgs, keys, local stack."""

from __future__ import annotations

import signal
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from ragline.core.config import get_settings
from ragline.dev.cli_embeddings import embeddings_app
from ragline.dev.cli_ops import (
    org_graphs_command,
    reconcile_command,
    retention_app,
    status_command,
)
from ragline.dev.cli_upload import upload_command

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _use_embedded_server_when_unconfigured() -> None:
    """Every command may start the embedded server when no database is configured."""
    from ragline.dev import embedded

    embedded.install()


db_app = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL server.")
org_app = typer.Typer(no_args_is_help=True, help="Orgs (tenants).")
key_app = typer.Typer(no_args_is_help=True, help="API keys.")
app.add_typer(db_app, name="db")
app.add_typer(org_app, name="org")
app.add_typer(key_app, name="key")
app.add_typer(retention_app, name="retention")
app.add_typer(embeddings_app, name="embeddings")
app.command("status")(status_command)
app.command("reconcile")(reconcile_command)
app.command("org-graphs")(org_graphs_command)
app.command("upload")(upload_command)


def _step(msg: str) -> None:
    typer.secho(f"==> {msg}", fg=typer.colors.CYAN, err=True)


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _require_embedded() -> None:
    if get_settings().database_mode != "embedded":
        _fail(f"database is configured ({get_settings().database_mode}); not the embedded server")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded server (data in RAGLINE_HOME/pgdata) and create the app database."""
    from ragline.dev import embedded

    _require_embedded()
    s = get_settings()
    t0 = time.monotonic()
    _step(f"starting embedded PostgreSQL in {s.ragline_home / 'pgdata'}")
    server = embedded.start(s.ragline_home / "pgdata")
    embedded.ensure_database(server, s.db_name)
    typer.echo(
        f"running (pid {server.pid}) in {time.monotonic() - t0:.1f}s: {server.url(s.db_name)}"
    )


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    from ragline.dev import embedded

    _require_embedded()
    stopped = embedded.stop(get_settings().ragline_home / "pgdata")
    typer.echo("stopped" if stopped else "not running")


@db_app.command("url")
def db_url() -> None:
    """Print the owner URL of the embedded server (starting it if needed)."""
    from ragline.dev import embedded

    _require_embedded()
    typer.echo(embedded.app_database_url(get_settings()))


@app.command()
def migrate(revision: str = "head") -> None:
    """Upgrade the database schema (as the owner role)."""
    from ragline.dev import migrate as m

    t0 = time.monotonic()
    _step(f"migrating {get_settings().database_mode} database to {revision}")
    before = m.current_revision()
    m.upgrade(revision)
    after = m.current_revision()
    msg = "already at" if before == after else f"{before or 'empty'} ->"
    typer.echo(f"{msg} {after} ({time.monotonic() - t0:.1f}s)")


@app.command()
def seed() -> None:
    """Create the demo org, user and API key (idempotent)."""
    from ragline.db.engine import owner_session
    from ragline.dev import seed as seeding

    with owner_session() as session:
        result = seeding.seed(session)
    made = ", ".join(result.created) or "nothing (already seeded)"
    typer.echo(f"org {seeding.DEMO_ORG} = {result.org_id}; created: {made}")
    if "api_key" in result.created:
        typer.echo(f"demo API key (shown once, saved in {get_settings().ragline_home}):")
        typer.echo(result.api_key)


@org_app.command("create")
def org_create(slug: str, name: Annotated[str | None, typer.Option()] = None) -> None:
    """Create an org (idempotent on slug)."""
    from ragline.db import orgs
    from ragline.db.engine import owner_session

    with owner_session() as session:
        org_id, created = orgs.ensure_org(session, slug, name)
    typer.echo(f"{'created' if created else 'exists'} {slug} = {org_id}")


def _org_session(org: str):  # type: ignore[no-untyped-def]
    from ragline.db import orgs, tenancy
    from ragline.db.engine import owner_session

    class _Ctx:
        def __enter__(self):  # type: ignore[no-untyped-def]
            self._cm = owner_session()
            session = self._cm.__enter__()
            org_id = orgs.org_id_by_slug(session, org)
            if org_id is None:
                self._cm.__exit__(None, None, None)
                _fail(f"no org {org!r}")
            assert org_id is not None
            tenancy.bind_org(session, org_id)
            return session

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            return self._cm.__exit__(*exc)

    return _Ctx()


@key_app.command("create")
def key_create(
    org: Annotated[str, typer.Option(help="org slug or id")],
    name: Annotated[str, typer.Option()] = "default",
    scope: Annotated[list[str] | None, typer.Option(help="read, write, admin")] = None,
    expires_days: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Create an API key; the raw key is printed once."""
    from ragline.guardrails import apikeys

    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    with _org_session(org) as session:
        row, raw = apikeys.create_key(session, name, scope or ["read", "write"], expires_at=expires)
        key_id = row.id
    typer.echo(f"key {key_id} ({name}); store it now, it is not shown again:")
    typer.echo(raw)


@key_app.command("list")
def key_list(org: Annotated[str, typer.Option(help="org slug or id")]) -> None:
    """List the API keys of an org (never the secrets)."""
    from ragline.db import tenancy
    from ragline.db.models import ApiKey

    with _org_session(org) as session:
        for k in tenancy.list_(session, ApiKey, order_by=[ApiKey.created_at]):
            state = "revoked" if k.revoked_at else "active"
            typer.echo(f"{k.id}  rl_{k.prefix}_…  {k.name:<12} {','.join(k.scopes):<18} {state}")


@key_app.command("revoke")
def key_revoke(key_id: uuid.UUID, org: Annotated[str, typer.Option()]) -> None:
    """Revoke an API key (idempotent)."""
    from ragline.guardrails import apikeys

    with _org_session(org) as session:
        done = apikeys.revoke_key(session, key_id)
    typer.echo("revoked" if done else "no active key with that id")


@app.command("eval")
def eval_command(
    questions: Annotated[
        Path, typer.Option(help='JSON lines {"question", "relevant": [titles or ids]}')
    ],
    org: Annotated[str | None, typer.Option(help="org slug or id (default: the demo org)")] = None,
    modes: Annotated[str, typer.Option(help="comma-separated: vector,text,hybrid")] = (
        "vector,text,hybrid"
    ),
    json_out: Annotated[Path | None, typer.Option(help="also write the JSON here")] = None,
    rerank: Annotated[
        bool, typer.Option(help="rerank with RERANK_PROVIDER (modes reported as mode+rerank)")
    ] = False,
) -> None:
    """Retrieval quality of search on labelled questions: MRR@10, recall@1/5/10, p50/p95."""
    import json

    from ragline.db import orgs
    from ragline.db.engine import owner_session
    from ragline.dev import evaluate
    from ragline.dev import seed as seeding

    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = set(chosen) - {"vector", "text", "hybrid"}
    if unknown:
        _fail(f"unknown modes: {', '.join(sorted(unknown))}")
    try:
        labelled = evaluate.load_questions(questions)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    with owner_session() as session:
        org_id = orgs.org_id_by_slug(session, org or seeding.DEMO_ORG)
    if org_id is None:
        _fail(f"no org {org or seeding.DEMO_ORG!r}")
    assert org_id is not None
    reports = evaluate.evaluate(org_id, labelled, chosen, evaluate.library_searcher(rerank=rerank))
    if rerank:
        for report in reports:
            report.mode += "+rerank"
    typer.echo(evaluate.table(reports))
    payload = {
        "questions_file": str(questions),
        "org": org or seeding.DEMO_ORG,
        "rerank": rerank,
        "modes": [r.as_dict() for r in reports],
    }
    typer.echo(json.dumps(payload))
    if json_out is not None:
        json_out.write_text(json.dumps(payload, indent=2) + "\n")


@app.command()
def demo() -> None:
    """The main job: local stack, ingest Python's reference docs over HTTP, search, totals."""
    from ragline.dev import demo as demo_run

    totals = demo_run.run(say=typer.echo)
    if totals["failed"]:
        raise typer.Exit(1)


@app.command()
def package(
    out: Annotated[str, typer.Option(help="output directory")] = "build/functions",
    cloud: Annotated[str, typer.Option(help="gcp or aws: which adapters are carried")] = "gcp",
) -> None:
    """Build one deployable source directory per function (what Terraform zips) and report
    each one's size: its code (the vendored ragline, no dev/testing/other-cloud code) and
    the whole folder (with the tokenizer for the embedding functions)."""
    from pathlib import Path

    from ragline.dev import packaging
    from ragline.dev.checkout import repo_root

    built = packaging.build_packages(repo_root(), Path(out), cloud=cloud)
    for path in built:
        code = sum(f.stat().st_size for f in (path / "ragline").rglob("*.py"))
        total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        typer.echo(
            f"built {path}: ragline code {code / 1024:.0f} KiB, folder {total / 1024:.0f} KiB"
        )
    typer.echo("import time per function: .venv/bin/python bench/coldstart.py")


dev_app = typer.Typer(help="The local stack (database, Cloud Tasks emulator, functions).")
app.add_typer(dev_app, name="dev")


@dev_app.callback(invoke_without_command=True)
def dev(
    ctx: typer.Context,
    detach: Annotated[
        bool, typer.Option(help="start and return; stop with `ragline dev stop`")
    ] = False,
) -> None:
    """Run the local stack in the foreground until Ctrl-C (or --detach)."""
    if ctx.invoked_subcommand is not None:
        return
    from ragline.dev import devstack

    _step("starting the local stack")
    stack = devstack.start(progress=typer.echo)
    logs = get_settings().ragline_home / "logs"
    typer.echo(f"ready: {devstack.state_file()} (API key inside); logs in {logs}")
    console = devstack.console_url(stack)
    if console:
        typer.echo(f"console: {console} (paste the API key that `ragline dev key` prints)")
    if detach:
        return
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        _step("stopping the local stack")
        devstack.stop(stack)


@dev_app.command("key")
def dev_key() -> None:
    """Print the running local stack's API key (for the console, curl)."""
    from ragline.dev import devstack

    stack = devstack.load()
    if stack is None:
        typer.echo("no local stack running: `make dev` (or `ragline dev --detach`) first", err=True)
        raise typer.Exit(1)
    typer.echo(stack.api_key)


@dev_app.command("stop")
def dev_stop() -> None:
    """Stop a detached local stack."""
    from ragline.dev import devstack

    typer.echo("stopped" if devstack.stop() else "no local stack running")


@dev_app.command("token")
def dev_token(
    org: Annotated[str, typer.Option(help="org slug (or id) put in the `org` claim")],
    user: Annotated[str, typer.Option(help="the user's email")],
    groups: Annotated[str, typer.Option(help="comma-separated groups claim, e.g. hr,legal")] = "",
    lifetime: Annotated[int, typer.Option(help="seconds until it expires")] = 3600,
) -> None:
    """Print an ID token of the local test issuer (trusted only with ENVIRONMENT local/test):
    `curl -H "Authorization: Bearer $(ragline dev token --org acme --user ann@example.com)"`."""
    from ragline.dev import oidc_issuer

    names = [g.strip() for g in groups.split(",") if g.strip()]
    try:
        typer.echo(oidc_issuer.token(org, user, groups=names, lifetime_s=lifetime))
    except RuntimeError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Exit normally so atexit handlers (embedded server, child processes) run.
    sys.exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    app()


if __name__ == "__main__":
    main()
