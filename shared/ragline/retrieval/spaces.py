"""Embedding spaces (issue 17): which model an org's vectors come from, where they are
stored, and the moves between spaces (shadow build, cutover, rollback, purge).

An org without an `embedding_space` row is the default and costs nothing extra: the
configured model, vectors in `chunk.embedding` (`for_search` answers it in the one statement
that `for_org` already ran). The first re-embed records the org's current model as its
*legacy* active space (storage: `chunk.embedding`, nothing rewritten) and a *shadow* space
whose vectors go to `chunk_vector_<dim>`. Ingestion writes every live space (active and
shadow); search reads the active one only; cutover and rollback swap states in one
transaction.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ragline.core.config import EMBEDDING_DIM, Settings, get_settings
from ragline.core.errors import ConfigurationError, EmbeddingSpaceError, ValidationError
from ragline.db import tenancy
from ragline.db.models import (
    LEGACY_STORAGE,
    VECTOR_DIMS,
    VECTOR_TABLES,
    Chunk,
    Document,
    EmbeddingSpace,
    SpaceState,
)
from ragline.retrieval.embeddings import PROVIDERS, Embedder, for_org, get_embedder

#: pgvector's HNSW indexes `vector` columns of at most this many dimensions.
HNSW_MAX_DIM = 2000
#: Dimensions each provider produces when none is given.
DEFAULT_DIMS = {"minilm": 384, "openai": 1536, "vertex": 768, "hashing": EMBEDDING_DIM}


@dataclass(frozen=True)
class Space:
    """An embedding space as the hot paths need it (no ORM object)."""

    id: uuid.UUID
    provider: str
    model: str
    dimension: int
    state: str
    storage: str

    @property
    def legacy(self) -> bool:
        """Vectors in `chunk.embedding` (the org's first space)."""
        return self.storage == LEGACY_STORAGE

    @property
    def table(self) -> sa.Table:
        return VECTOR_TABLES[self.dimension]


_COLUMNS = "id, provider, model, dimension, state, storage"


def _space(row: Any) -> Space:
    return Space(row.id, row.provider, row.model, row.dimension, row.state, row.storage)


def _of(obj: EmbeddingSpace) -> Space:
    return Space(obj.id, obj.provider, obj.model, obj.dimension, obj.state, obj.storage)


# --------------------------------------------------------------------------- embedders


def settings_for(provider: str, model: str, dimension: int, settings: Settings) -> Settings:
    """`settings` with the provider, model and dimension of a space."""
    update: dict[str, Any] = {"embedding_provider": provider, "embedding_dim": dimension}
    if provider == "minilm":
        update["minilm_variant"] = model
    elif provider == "openai":
        update["openai_embedding_model"] = model
    elif provider == "vertex":
        update["vertex_embedding_model"] = model
    return settings.model_copy(update=update)


def embedder_for(space: Space, settings: Settings | None = None) -> Embedder:
    """The embedder of a space (built once per process, like every embedder)."""
    settings = settings if settings is not None else get_settings()
    return get_embedder(settings_for(space.provider, space.model, space.dimension, settings))


#: For the default provider, the same statement `for_org` runs (the model stored on the
#: org's chunks), plus the active space: orgs without spaces pay no extra round trip.
_ACTIVE_SQL = f"SELECT {_COLUMNS} FROM embedding_space WHERE org_id = :org AND state = 'active'"
_ACTIVE_AND_STORED_SQL = sa.text(
    "SELECT s.id, s.provider, s.model, s.dimension, s.state, s.storage, "
    "(SELECT c.embedding_model FROM chunk c WHERE c.org_id = :org "
    "AND c.embedding_model = ANY(CAST(:models AS text[])) LIMIT 1) AS stored "
    "FROM (SELECT 1) one LEFT JOIN embedding_space s "
    "ON s.org_id = :org AND s.state = 'active'"
)


def for_search(session: Session, settings: Settings | None = None) -> tuple[Embedder, Space | None]:
    """The embedder of the org's active space and the space (None: no spaces, the
    configured model and `chunk.embedding`, exactly as before issue 17). One statement."""
    settings = settings if settings is not None else get_settings()
    org = tenancy.current_org(session)
    if settings.embedding_provider != "minilm":
        row = session.execute(sa.text(_ACTIVE_SQL), {"org": org}).first()
        if row is None:
            return get_embedder(settings), None
        space = _space(row)
        return embedder_for(space, settings), space
    from ragline.retrieval.embeddings.minilm import MINILM_VARIANTS

    variants = {name: variant for variant, name in MINILM_VARIANTS.items()}
    row = session.execute(_ACTIVE_AND_STORED_SQL, {"org": org, "models": list(variants)}).one()
    if row.id is not None:
        space = _space(row)
        return embedder_for(space, settings), space
    variant = variants.get(row.stored or "", settings.minilm_variant)
    if variant == settings.minilm_variant:
        return get_embedder(settings), None
    return get_embedder(settings.model_copy(update={"minilm_variant": variant})), None


# --------------------------------------------------------------------------- lookups


def active(session: Session) -> Space | None:
    row = session.execute(sa.text(_ACTIVE_SQL), {"org": tenancy.current_org(session)}).first()
    return _space(row) if row is not None else None


def live(session: Session) -> list[Space]:
    """The spaces ingestion writes: active first, then the shadow being built ([] when the
    org has no spaces)."""
    rows = session.execute(
        sa.text(
            f"SELECT {_COLUMNS} FROM embedding_space WHERE org_id = :org "
            "AND state IN ('active', 'shadow') ORDER BY state"
        ),
        {"org": tenancy.current_org(session)},
    ).all()
    return [_space(r) for r in rows]


def get(session: Session, space_id: uuid.UUID) -> Space | None:
    obj = tenancy.get(session, EmbeddingSpace, space_id)
    return _of(obj) if obj is not None else None


def listing(session: Session) -> list[EmbeddingSpace]:
    return tenancy.list_(session, EmbeddingSpace, order_by=[EmbeddingSpace.created_at])


# --------------------------------------------------------------------------- vectors


def missing(space: Space | None) -> sa.ColumnElement[bool]:
    """`Chunk` has no vector in `space` (None: the no-space org's `chunk.embedding`)."""
    if space is None or space.legacy:
        return Chunk.embedding.is_(None)
    t = space.table
    return ~sa.exists().where(t.c.space_id == space.id, t.c.chunk_id == Chunk.id)


_WRITE_LEGACY = sa.text(
    """
    UPDATE chunk AS c SET embedding = CAST(v.vec AS vector), embedding_model = :model
    FROM unnest(CAST(string_to_array(:ids, ',') AS uuid[]), string_to_array(:vecs, ';'))
        AS v(id, vec)
    WHERE c.org_id = :org AND c.id = v.id AND c.embedding IS NULL
    """
)


def _write_table_sql(dim: int) -> sa.TextClause:
    # Only vectors still missing, of chunks still there: duplicates and late tasks are no-ops.
    return sa.text(
        f"""
        INSERT INTO chunk_vector_{dim} (space_id, chunk_id, org_id, embedding)
        SELECT :space, c.id, c.org_id, CAST(v.vec AS vector({dim}))
        FROM unnest(CAST(string_to_array(:ids, ',') AS uuid[]), string_to_array(:vecs, ';'))
        AS v(id, vec)
        JOIN chunk c ON c.id = v.id AND c.org_id = :org
        ON CONFLICT (space_id, chunk_id) DO NOTHING
        """
    )


_WRITE_TABLE = {dim: _write_table_sql(dim) for dim in VECTOR_DIMS}


@functools.lru_cache(maxsize=16)
def _literal_format(dim: int) -> str:
    return "[" + ",".join(["%.9g"] * dim) + "]"


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form, in one C-level format call (~55 us for 384 floats, against
    ~245 us for a join of per-float formats; issue 14). Nine significant digits round-trip a
    float32 exactly, which is what pgvector stores."""
    return _literal_format(len(vector)) % tuple(map(float, vector))


def write_vectors(
    session: Session,
    space: Space | None,
    model: str,
    ids: list[uuid.UUID],
    vectors: list[list[float]],
) -> None:
    """Store the vectors of `ids` in `space` where they are missing: one statement.

    Ids and vectors travel as two delimited strings split by `string_to_array` on the server:
    a Python list would be escaped character by character by pg8000's array encoder, ~25 ms
    per batch of 64 (issue 16), where one string is sent as is. Vector literals hold only
    digits, signs, dots, exponents, commas and brackets, so ';' cannot occur in them."""
    params: dict[str, Any] = {
        "org": tenancy.current_org(session),
        "ids": ",".join(str(i) for i in ids),
        "vecs": ";".join(vector_literal(v) for v in vectors),
    }
    if space is None or space.legacy:
        session.execute(_WRITE_LEGACY, {**params, "model": model})
    else:
        session.execute(_WRITE_TABLE[space.dimension], {**params, "space": space.id})


def _ready_chunks(session: Session) -> sa.Select[Any]:
    """Chunks of the org's ready documents: what a search can return."""
    return (
        sa.select(sa.func.count())
        .select_from(Chunk)
        .join(Document, Document.id == Chunk.document_id)
        .where(
            Chunk.org_id == tenancy.current_org(session),
            Document.status == "ready",
            Document.deleted_at.is_(None),
        )
    )


def missing_count(session: Session, space: Space) -> int:
    """Chunks of ready documents without a vector in `space`."""
    return int(session.scalar(_ready_chunks(session).where(missing(space))) or 0)


def missing_batches(session: Session, space: Space, batch_size: int) -> list[tuple[uuid.UUID, int]]:
    """(document, batch) pairs with a chunk lacking a vector in `space`, over documents that
    are ready or being embedded (the others reach the embed stage on their own)."""
    # Integer division by a literal: one expression in SELECT and GROUP BY (a bound
    # parameter each time would make them two different expressions to Postgres).
    batch = Chunk.ord.op("/")(sa.literal_column(str(int(batch_size))))
    rows = session.execute(
        sa.select(Chunk.document_id, batch)
        .join(Document, Document.id == Chunk.document_id)
        .where(
            Chunk.org_id == tenancy.current_org(session),
            Document.status.in_(("ready", "embedding")),
            Document.deleted_at.is_(None),
            missing(space),
        )
        .group_by(Chunk.document_id, batch)
        .order_by(Chunk.document_id, batch)
    ).all()
    return [(r[0], int(r[1])) for r in rows]


# --------------------------------------------------------------------------- lifecycle


def check_model(provider: str, dimension: int) -> None:
    """Refuse what no vector table (or HNSW) can hold."""
    if provider not in PROVIDERS:
        raise ValidationError(f"unknown embedding provider {provider!r}")
    if dimension > HNSW_MAX_DIM:
        raise ValidationError(
            f"{dimension} dimensions: HNSW indexes vectors of at most {HNSW_MAX_DIM}",
            details={"dimension": dimension, "max": HNSW_MAX_DIM},
        )
    if dimension not in VECTOR_DIMS:
        raise ValidationError(
            f"{dimension} dimensions has no vector table; supported: "
            + ", ".join(map(str, VECTOR_DIMS)),
            details={"dimension": dimension, "supported": list(VECTOR_DIMS)},
        )


def _model_of(embedder: Embedder, settings: Settings) -> str:
    """The model setting that builds `embedder` (MiniLM: its variant)."""
    if settings.embedding_provider == "minilm":
        from ragline.retrieval.embeddings.minilm import MINILM_VARIANTS

        by_name = {name: variant for variant, name in MINILM_VARIANTS.items()}
        return by_name.get(embedder.name, settings.minilm_variant)
    return embedder.name


def ensure_legacy(session: Session, settings: Settings | None = None) -> Space:
    """The org's active space, recorded from the configured model when it has none yet (its
    vectors stay in `chunk.embedding`)."""
    found = active(session)
    if found is not None:
        return found
    settings = settings if settings is not None else get_settings()
    embedder = for_org(session, settings)
    obj = tenancy.add(
        session,
        EmbeddingSpace(
            provider=settings.embedding_provider,
            model=_model_of(embedder, settings),
            dimension=EMBEDDING_DIM,
            state=SpaceState.ACTIVE,
            storage=LEGACY_STORAGE,
            activated_at=sa.func.now(),
        ),
    )
    session.flush()
    session.refresh(obj)
    return _of(obj)


def start_shadow(
    session: Session,
    provider: str,
    model: str,
    dimension: int | None = None,
    settings: Settings | None = None,
) -> tuple[Space, bool]:
    """Create the org's shadow space (or find the same one: a resumed build); returns it and
    whether it is new. Refuses a second, different build and a model no table can hold."""
    settings = settings if settings is not None else get_settings()
    dim = dimension or DEFAULT_DIMS.get(provider, EMBEDDING_DIM)
    check_model(provider, dim)
    if provider == "hashing" and settings.environment != "test":
        raise ConfigurationError("the hashing embedder is a test double: ENVIRONMENT=test only")
    current = ensure_legacy(session, settings)
    # Serialise builds of the org: the active row is the org's lock (the partial unique index
    # on shadows backs it up against a writer that skips this).
    session.execute(
        tenancy.scoped_select(session, EmbeddingSpace, EmbeddingSpace.id == current.id)
        .with_for_update()
        .with_only_columns(EmbeddingSpace.id)
    )
    shadow = session.scalars(
        tenancy.scoped_select(session, EmbeddingSpace, EmbeddingSpace.state == SpaceState.SHADOW)
    ).one_or_none()
    if shadow is not None:
        if (shadow.provider, shadow.model, shadow.dimension) == (provider, model, dim):
            return _of(shadow), False
        raise EmbeddingSpaceError(
            f"a re-embed to {shadow.provider}/{shadow.model} is already running",
            details={"space_id": str(shadow.id)},
        )
    if (current.provider, current.model, current.dimension) == (provider, model, dim):
        raise EmbeddingSpaceError(f"{provider}/{model} ({dim} d) is already the active space")
    embedder = get_embedder(settings_for(provider, model, dim, settings))
    if embedder.dim != dim:
        raise ValidationError(f"{provider}/{model} produces {embedder.dim} dimensions, not {dim}")
    chunks, tokens = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(Chunk.token_count), 0))
        .join(Document, Document.id == Chunk.document_id)
        .where(Chunk.org_id == tenancy.current_org(session), Document.deleted_at.is_(None))
    ).one()
    price = settings.embedding_prices.get(f"{provider}/{model}")
    estimate: dict[str, Any] = {"chunks": int(chunks), "tokens": int(tokens)}
    if price is not None:
        estimate["usd_per_mtok"] = price
        estimate["usd"] = round(int(tokens) / 1e6 * price, 4)
    obj = tenancy.add(
        session,
        EmbeddingSpace(
            provider=provider,
            model=model,
            dimension=dim,
            state=SpaceState.SHADOW,
            storage=VECTOR_TABLES[dim].name,
            estimate=estimate,
        ),
    )
    session.flush()
    session.refresh(obj)
    return _of(obj), True


def _locked(session: Session) -> dict[str, list[EmbeddingSpace]]:
    rows = session.scalars(
        tenancy.scoped_select(session, EmbeddingSpace)
        .order_by(EmbeddingSpace.retired_at.desc().nulls_last())
        .with_for_update()
    ).all()
    by_state: dict[str, list[EmbeddingSpace]] = {s.value: [] for s in SpaceState}
    for row in rows:
        by_state[row.state].append(row)
    return by_state


@dataclass(frozen=True)
class Switch:
    """What a cutover or rollback did: the space now active, the one retired, and the
    chunks of ready documents the new active space still lacks (0 unless forced)."""

    active: Space
    retired: Space
    missing: int


def _switch(session: Session, old: EmbeddingSpace, new: EmbeddingSpace, force: bool) -> Switch:
    gap = missing_count(session, _of(new))
    if gap and not force:
        raise EmbeddingSpaceError(
            f"{gap} chunks have no vector in {new.provider}/{new.model}: searches would not "
            "find them (finish the build, or --force)",
            details={"missing": gap, "space_id": str(new.id)},
        )
    # Retire first: the partial unique index allows one active row at every statement.
    old.state, old.retired_at = SpaceState.RETIRED, sa.func.now()
    session.flush()
    new.state, new.activated_at, new.retired_at = SpaceState.ACTIVE, sa.func.now(), None
    session.flush()
    session.refresh(old)
    session.refresh(new)
    return Switch(_of(new), _of(old), gap)


def cutover(session: Session, *, force: bool = False) -> Switch:
    """The shadow becomes active and the active one retired, in the caller's transaction:
    a search sees one or the other, never a mix. Refused while the shadow lacks vectors of
    ready documents, unless `force`."""
    spaces = _locked(session)
    if not spaces["shadow"] or not spaces["active"]:
        raise EmbeddingSpaceError("no shadow space to cut over to (start one with reembed)")
    return _switch(session, spaces["active"][0], spaces["shadow"][0], force)


def rollback(session: Session, *, force: bool = False) -> Switch:
    """The most recently retired space becomes active again, the active one retired."""
    spaces = _locked(session)
    if not spaces["retired"] or not spaces["active"]:
        raise EmbeddingSpaceError("no retired space to roll back to")
    return _switch(session, spaces["active"][0], spaces["retired"][0], force)


def record_failure(session: Session, space_id: uuid.UUID, error: str) -> None:
    """A build batch failed for good: count it on the space (status reports it)."""
    session.execute(
        tenancy.scoped_update(session, EmbeddingSpace, EmbeddingSpace.id == space_id).values(
            failed_batches=EmbeddingSpace.failed_batches + 1, last_error=error[:2000]
        )
    )


def clear_failures(session: Session, space_id: uuid.UUID) -> None:
    """Forget the failed batches and reconcile's re-enqueues (a resume enqueues them again)."""
    session.execute(
        tenancy.scoped_update(session, EmbeddingSpace, EmbeddingSpace.id == space_id).values(
            failed_batches=0,
            last_error=None,
            requeues=0,
            requeued_at=None,
            watched_at=sa.func.now(),
        )
    )


@dataclass(frozen=True)
class Stall:
    """A stalled shadow build as reconcile found it: the work to re-enqueue (empty when its
    re-enqueues are spent and it was reported instead)."""

    space: Space
    missing: int
    idle_s: float
    work: list[tuple[uuid.UUID, int]]
    requeues: int


STALLED = "stalled"


def _age(column: Any) -> Any:
    return sa.extract("epoch", sa.func.now() - column)


def watch_build(
    session: Session,
    *,
    idle_s: float,
    max_requeues: int,
    batch_size: int,
    limit: int,
    dry_run: bool = False,
) -> Stall | None:
    """Reconcile's look at the org's shadow build (issue 17): a build whose missing count has
    not moved for `idle_s` (nor been re-enqueued within it) lost its tasks; its missing
    batches (at most `limit`) are returned to re-enqueue, at most `max_requeues` times, then
    the stall is recorded on the space (status shows it, cutover refuses) and left to
    `reembed --resume`. A build that moved is only noted. Locked rows are skipped."""
    found = session.execute(
        tenancy.scoped_select(session, EmbeddingSpace, EmbeddingSpace.state == SpaceState.SHADOW)
        .add_columns(
            _age(EmbeddingSpace.watched_at).label("watched_s"),
            _age(EmbeddingSpace.requeued_at).label("requeued_s"),
        )
        .with_for_update(skip_locked=True, of=EmbeddingSpace)
    ).first()
    if found is None:
        return None
    row, watched_s, requeued_s = found
    space = _of(row)
    gap = missing_count(session, space)
    if gap != row.watched_missing or not gap:
        if not dry_run:
            row.watched_missing, row.watched_at = gap, sa.func.now()
        return None
    idle = float(watched_s or 0.0)
    if idle < idle_s or (requeued_s is not None and float(requeued_s) < idle_s):
        return None
    if row.requeues >= max_requeues:
        if (row.last_error or "").startswith(STALLED):
            return None  # reported already
        if not dry_run:
            row.failed_batches += 1
            row.last_error = (
                f"{STALLED}: {gap} vectors missing, no progress for {idle:.0f}s after "
                f"{row.requeues} re-enqueues (reembed --resume)"
            )
        return Stall(space, gap, idle, [], row.requeues)
    work = missing_batches(session, space, batch_size)[:limit]
    if not dry_run:
        row.requeues, row.requeued_at = row.requeues + 1, sa.func.now()
    return Stall(space, gap, idle, work, row.requeues)


def progress(session: Session, space: Space) -> dict[str, Any]:
    """Vectors built, chunks still missing, throughput since the build started."""
    obj = tenancy.get(session, EmbeddingSpace, space.id)
    assert obj is not None
    total = int(session.scalar(_ready_chunks(session)) or 0)
    gap = missing_count(session, space)
    elapsed = session.scalar(
        sa.select(sa.extract("epoch", sa.func.now() - EmbeddingSpace.created_at)).where(
            EmbeddingSpace.id == space.id
        )
    )
    done = total - gap
    seconds = float(elapsed or 0.0)
    return {
        "space_id": str(space.id),
        "provider": space.provider,
        "model": space.model,
        "dimension": space.dimension,
        "state": space.state,
        "storage": space.storage,
        "chunks": total,
        "embedded": done,
        "missing": gap,
        "percent": round(100.0 * done / total, 1) if total else 100.0,
        "chunks_per_s": round(done / seconds, 1)
        if seconds > 0 and space.state == "shadow"
        else None,
        "estimate": dict(obj.estimate),
        "failed_batches": obj.failed_batches,
        "last_error": obj.last_error,
        "created_at": obj.created_at.isoformat(),
        "activated_at": obj.activated_at.isoformat() if obj.activated_at else None,
        "retired_at": obj.retired_at.isoformat() if obj.retired_at else None,
    }


def _due(session: Session, before: datetime) -> list[EmbeddingSpace]:
    return list(
        session.scalars(
            tenancy.scoped_select(
                session,
                EmbeddingSpace,
                EmbeddingSpace.state == SpaceState.RETIRED,
                EmbeddingSpace.retired_at < before,
            ).order_by(EmbeddingSpace.retired_at)
        ).all()
    )


def _vectors_of(session: Session, space: Space) -> sa.Select[Any]:
    """The keys of a space's stored vectors (legacy: chunks with `chunk.embedding`)."""
    if space.legacy:
        return sa.select(Chunk.id).where(
            Chunk.org_id == tenancy.current_org(session), Chunk.embedding.is_not(None)
        )
    t = space.table
    return sa.select(t.c.chunk_id).where(t.c.space_id == space.id)


def purgeable(session: Session, before: datetime) -> int:
    """Rows a purge of the spaces retired before `before` would touch (vectors + spaces)."""
    total = 0
    for obj in _due(session, before):
        sub = _vectors_of(session, _of(obj)).subquery()
        total += int(session.scalar(sa.select(sa.func.count()).select_from(sub)) or 0) + 1
    return total


def purge_retired(session: Session, before: datetime, *, limit: int = 5000) -> int:
    """Delete at most `limit` vectors of spaces retired before `before` (oldest first); a
    space whose vectors are gone is deleted too. A legacy space's vectors are cleared from
    `chunk.embedding`. Returns rows touched: fewer than `limit` means nothing is left."""
    org = tenancy.current_org(session)
    touched = 0
    for obj in _due(session, before):
        left = limit - touched
        if left <= 0:
            break
        space = _of(obj)
        keys = _vectors_of(session, space).limit(left).with_for_update(skip_locked=True)
        stmt: sa.Executable
        if space.legacy:
            stmt = (
                sa.update(Chunk)
                .where(Chunk.org_id == org, Chunk.id.in_(keys.scalar_subquery()))
                .values(embedding=None, embedding_model=None)
            )
        else:
            t = space.table
            stmt = sa.delete(t).where(
                t.c.space_id == space.id, t.c.chunk_id.in_(keys.scalar_subquery())
            )
        result = session.execute(stmt)
        count = int(getattr(result, "rowcount", 0) or 0)
        touched += count
        if count < left:
            session.delete(obj)
            session.flush()
            touched += 1
    return touched
