"""`ragline embeddings status|reembed|compare|cutover|rollback`: move an org to another
embedding model without downtime (issue 17; docs/embeddings.md)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from ragline.core.errors import RaglineError

embeddings_app = typer.Typer(
    no_args_is_help=True, help="Embedding spaces: re-embed, compare, cut over, roll back."
)

OrgOption = Annotated[str, typer.Option(help="org slug or id")]
ForceOption = Annotated[
    bool, typer.Option("--force", help="switch even if chunks lack a vector in the new space")
]


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _org(org: str) -> uuid.UUID:
    from ragline.dev.cli_ops import _resolve_org

    org_id = _resolve_org(org)
    assert org_id is not None
    return org_id


def format_space(p: dict[str, Any]) -> str:
    """One line per space: state, model, progress, throughput, estimate."""
    line = (
        f"{p['state']:<8} {p['provider']}/{p['model']} ({p['dimension']} d, {p['storage']}): "
        f"{p['embedded']}/{p['chunks']} chunks ({p['percent']}%), {p['missing']} missing"
    )
    if p.get("chunks_per_s") is not None:
        line += f", {p['chunks_per_s']} chunks/s"
        if p["missing"] and p["chunks_per_s"]:
            line += f", ~{p['missing'] / p['chunks_per_s']:.0f}s left"
    if p.get("failed_batches"):
        line += f"; {p['failed_batches']} batches failed (last: {p['last_error']}): --resume"
    est = p.get("estimate") or {}
    if est:
        line += f"; estimate {est.get('chunks', 0)} chunks × {est.get('tokens', 0)} tokens"
        if "usd" in est:
            line += f" ≈ ${est['usd']}"
    return line


@embeddings_app.command("status")
def status_cmd(
    org: OrgOption,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The org's embedding spaces: state, progress, throughput, cost estimate."""
    from ragline.ingest import reembed

    report = reembed.status(_org(org))
    if json_out:
        typer.echo(json.dumps(report))
        return
    if not report:
        typer.echo("no embedding spaces: the configured model, vectors in chunk.embedding")
    for p in report:
        typer.echo(format_space(p))


@embeddings_app.command("reembed")
def reembed_cmd(
    org: OrgOption,
    provider: Annotated[str | None, typer.Option(help="minilm, openai, vertex")] = None,
    model: Annotated[
        str | None, typer.Option(help="the provider's model (MiniLM: variant)")
    ] = None,
    dimension: Annotated[int | None, typer.Option(help="vector width (provider default)")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="re-enqueue what the running build lacks")
    ] = False,
    wait: Annotated[
        float, typer.Option(help="seconds to follow progress (0: return at once)")
    ] = 0.0,
) -> None:
    """Start (or resume) a shadow build: existing chunks are embedded with the new model
    through the embed queue, without re-parsing or re-chunking."""
    from ragline.dev import devstack
    from ragline.ingest import reembed

    org_id = _org(org)
    typer.echo(f"embed tasks go to {devstack.use_stack_queues()}")
    try:
        if resume:
            build = reembed.resume(org_id)
        else:
            if provider is None or model is None:
                _fail("--provider and --model are required (or --resume)")
            assert provider is not None and model is not None
            build = reembed.start(org_id, provider, model, dimension)
    except RaglineError as exc:
        _fail(exc.message)
        return
    verb = "started" if build.created else "resumed"
    typer.echo(f"{verb} shadow space {build.space.id}: {build.tasks} embed tasks enqueued")
    deadline = time.monotonic() + wait
    while True:
        shadow = [p for p in reembed.status(org_id) if p["space_id"] == str(build.space.id)]
        if shadow:
            typer.echo(format_space(shadow[0]))
        if not shadow or not shadow[0]["missing"] or time.monotonic() >= deadline:
            break
        time.sleep(2.0)


def _switch_cmd(org: str, force: bool, *, back: bool) -> None:
    from ragline.dev import devstack
    from ragline.ingest import reembed

    if force:  # a forced switch enqueues the missing vectors' fill
        devstack.use_stack_queues()
    try:
        fn = reembed.rollback if back else reembed.cutover
        switch = fn(_org(org), force=force)
    except RaglineError as exc:
        _fail(exc.message)
        return
    a, r = switch.active, switch.retired
    typer.echo(f"active: {a.provider}/{a.model} ({a.dimension} d) {a.id}")
    typer.echo(f"retired (kept until purged by retention): {r.provider}/{r.model} {r.id}")
    if switch.missing:
        typer.echo(f"forced: {switch.missing} chunks lacked a vector; their fill is enqueued")


@embeddings_app.command("cutover")
def cutover_cmd(org: OrgOption, force: ForceOption = False) -> None:
    """Search the shadow space from now on (atomic; refused while it is incomplete)."""
    _switch_cmd(org, force, back=False)


@embeddings_app.command("rollback")
def rollback_cmd(org: OrgOption, force: ForceOption = False) -> None:
    """Search the previously active space again (atomic; it is kept until purged)."""
    _switch_cmd(org, force, back=True)


@embeddings_app.command("compare")
def compare_cmd(
    org: OrgOption,
    questions: Annotated[
        Path | None,
        typer.Option(
            help='JSON lines {"question", "relevant": [titles or ids]} '
            "(default: the org's recent search queries, unlabelled)"
        ),
    ] = None,
    k: Annotated[int, typer.Option(min=1, max=100)] = 10,
    recent: Annotated[int, typer.Option(min=1, max=10_000, help="logged queries to run")] = 200,
) -> None:
    """overlap@k of the active space and the shadow (else the last retired) on the
    questions (or the org's logged search queries), and MRR/recall per space when labelled."""
    from ragline.dev import evaluate
    from ragline.dev.spaces_compare import compare, logged_questions

    try:
        org_id = _org(org)
        asked = (
            evaluate.load_questions(questions)
            if questions is not None
            else logged_questions(org_id, recent)
        )
        report = compare(org_id, asked, k=k)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
        return
    except RaglineError as exc:
        _fail(exc.message)
        return
    for name in ("a", "b"):
        side = report[name]
        if not report["labelled"]:
            typer.echo(f"{side['state']:<8} {side['model']}")
            continue
        line = f"{side['state']:<8} {side['model']}: mrr@10 {side['mrr@10']}"
        line += f", recall@10 {side['recall@10']}, p50 {side['p50_ms']} ms"
        typer.echo(line)
    typer.echo(f"overlap@{k}: {report['overlap']} over {report['questions']} questions")
    typer.echo(json.dumps(report))
