"""A graph of its own for each large org: a partial HNSW index per org (issue 14).

One HNSW graph over every org's vectors serves small and mid-sized orgs well (the exact scan
takes orgs up to `search.EXACT_MAX_ROWS`), but a large org's walk in a large shared table
crosses other orgs' nodes: in a 1 000 000-row table a 100 000-chunk org kept recall@10 at
~0.96 (min 0.8) whatever its `ef_search` (bench/README.md). An org with at least
`ORG_GRAPH_MIN_CHUNKS` vectors gets a partial index holding its rows only
(`... USING hnsw (embedding vector_cosine_ops) WHERE org_id = '<org>'`; for an embedding space,
`WHERE space_id = '<space>'` on its vector table): its walks never leave its own vectors.

Search (`search._nearest`) uses it when it exists and is valid (`owned`): the vector
statement names the org by a literal too (`search._pinned`), a constant the planner matches
with the index's predicate, even in the generic plan it runs on. Every other search is
unchanged.

Building needs the table's owner and `CREATE INDEX CONCURRENTLY` (writes go on meanwhile), so
it is an operator job like migrations: `ragline org-graphs [--dry-run]` (`plan` + `apply`),
to run after migrations and then periodically. An org gets its graph at
`ORG_GRAPH_MIN_CHUNKS` vectors and loses it below half of that (no rebuild churn around the
threshold); an index left invalid by an interrupted build is dropped and built again.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ragline.db.models import VECTOR_TABLES

if TYPE_CHECKING:
    from ragline.retrieval.spaces import Space

#: Vectors from which an org (or embedding space) gets its own graph: 5x the exact-scan
#: threshold, where HNSW walks of the shared graph start to cross many other orgs' nodes.
ORG_GRAPH_MIN_CHUNKS = 10_000
#: The graph parameters of the shared graphs (migration 0012).
HNSW_WITH = "m = 16, ef_construction = 128"
#: Seconds a process reuses the list of graphs (a catalog read) before reading it again.
OWNED_TTL_S = 60.0

_NAME = re.compile(r"^ix_(chunk|cv\d+)_own_([0-9a-f]{32})$")


@dataclass(frozen=True)
class Graph:
    """One org's (or space's) graph: the table, the column its predicate tests, the key."""

    table: str
    column: str
    key: uuid.UUID

    def __post_init__(self) -> None:
        if not isinstance(self.key, uuid.UUID):  # it becomes a literal in the index predicate
            raise TypeError(f"a graph's key must be a UUID, not {type(self.key).__name__}")

    @property
    def name(self) -> str:
        short = "chunk" if self.table == "chunk" else "cv" + self.table.rsplit("_", 1)[1]
        return f"ix_{short}_own_{self.key.hex}"

    def create_sql(self) -> str:
        # The key is a uuid.UUID: its text form is hex digits and dashes, safe as a literal.
        return (
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {self.name} ON {self.table} "
            f"USING hnsw (embedding vector_cosine_ops) WITH ({HNSW_WITH}) "
            f"WHERE {self.column} = '{self.key}'"
        )


def _tables() -> list[tuple[str, str]]:
    """(table, key column) of every table with vectors: `chunk` by org, each vector table
    by embedding space."""
    return [("chunk", "org_id")] + [(t.name, "space_id") for t in VECTOR_TABLES.values()]


def graph_for(space: Space | None, org: uuid.UUID) -> Graph:
    """The graph a search of `org` in `space` (None: the org has no embedding spaces) would
    use."""
    if space is None or space.legacy:
        return Graph("chunk", "org_id", org)
    return Graph(space.storage, "space_id", space.id)


# --------------------------------------------------------------------------- search side

_owned: dict[str, bool] = {}
_owned_until = 0.0


def _read_existing(conn: Connection) -> dict[str, bool]:
    """Index name → valid, for every own graph in the database."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname AS name, i.indisvalid AND i.indisready AS valid "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname LIKE 'ix\\_%\\_own\\_%'"
        )
    ).all()
    return {r.name: bool(r.valid) for r in rows if _NAME.match(r.name)}


def owned(conn: Connection, graph: Graph) -> bool:
    """Whether `graph` exists and is valid (read from the catalog at most once per
    OWNED_TTL_S in this process: a graph built or dropped meanwhile is seen that late)."""
    global _owned, _owned_until
    now = time.monotonic()
    if now >= _owned_until:
        _owned = _read_existing(conn)
        _owned_until = now + OWNED_TTL_S
    return _owned.get(graph.name, False)


def valid_count() -> int:
    """How many valid graphs the last catalog read of `owned` found."""
    return sum(_owned.values())


def forget() -> None:
    """Read the catalog again at the next search (after building or dropping graphs)."""
    global _owned_until
    _owned_until = 0.0


# --------------------------------------------------------------------------- operator side


@dataclass
class Plan:
    """What `apply` does: graphs to build (with their vector counts), index names to drop
    (first) and to keep."""

    build: list[tuple[Graph, int]] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)


def plan(conn: Connection, min_chunks: int = ORG_GRAPH_MIN_CHUNKS) -> Plan:
    """What `apply` would do: build a graph for each org or space with at least
    `min_chunks` vectors and none yet (or an invalid one: dropped first), drop those whose
    org or space fell below half of it (or is gone)."""
    existing = _read_existing(conn)
    out = Plan()
    wanted: set[str] = set()
    for table, column in _tables():
        counts = conn.execute(
            sa.text(
                f"SELECT {column} AS key, count(*) AS n FROM {table} "
                f"WHERE embedding IS NOT NULL GROUP BY {column} HAVING count(*) >= :keep"
            ),
            {"keep": max(1, min_chunks // 2)},
        ).all()
        for row in counts:
            graph = Graph(table, column, row.key)
            valid = existing.get(graph.name)
            if valid:
                wanted.add(graph.name)
                out.keep.append(graph.name)
            elif row.n >= min_chunks:
                wanted.add(graph.name)
                if valid is False:
                    out.drop.append(graph.name)  # an interrupted build: dropped, then rebuilt
                out.build.append((graph, int(row.n)))
    out.drop += sorted(name for name in existing if name not in wanted)
    return out


def apply(
    engine: Engine,
    todo: Plan,
    *,
    maintenance_work_mem: str | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> Plan:
    """Drop, then build, each graph of `todo` without blocking writes (`CONCURRENTLY`, one
    statement at a time, autocommit): as the table owner. A build that fails stops the run
    (its invalid index is dropped by the next). Returns `todo`."""
    if maintenance_work_mem and not re.fullmatch(r"\d+\s*(kB|MB|GB)", maintenance_work_mem):
        raise ValueError(f"maintenance_work_mem {maintenance_work_mem!r}: e.g. 1GB")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if maintenance_work_mem:
            try:
                conn.execute(sa.text(f"SET maintenance_work_mem = '{maintenance_work_mem}'"))
            except sa.exc.DBAPIError as exc:  # out of the server's range
                raise ValueError(
                    f"maintenance_work_mem {maintenance_work_mem!r}: {exc.orig}"
                ) from exc
        try:
            for name in todo.drop:
                progress(f"dropping {name}")
                conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
            for graph, rows in todo.build:
                progress(f"building {graph.name} on {graph.table} ({rows} vectors)")
                started = time.monotonic()
                conn.execute(sa.text(graph.create_sql()))
                progress(f"built {graph.name} in {time.monotonic() - started:.1f}s")
        finally:
            if maintenance_work_mem and not conn.invalidated:  # pooled: back as it came
                conn.execute(sa.text("RESET maintenance_work_mem"))
    forget()
    return todo
