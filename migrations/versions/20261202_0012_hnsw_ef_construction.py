"""HNSW graphs built with ef_construction 128 (was 64), rebuilt without blocking writes.

With ef_construction 64 a filtered search of a large org in a shared table lost neighbours
whatever its ef_search: on a 211 110-row table, recall@10 of a 100 000-chunk org was 0.966
(min 0.8) at ef_search 200 and at 400. Built with 128, the same queries found all ten at
ef_search 200 (recall 1.000, min 1.0, 10 000- and 100 000-chunk orgs) and ran faster, for a
build about twice as long (issue 14; bench/README.md). Search now runs at ef_search 200.

Each index is built anew under a temporary name (`CREATE INDEX CONCURRENTLY`, outside the
migration's transaction), then swapped in: searches keep their index throughout. A
concurrent build that failed leaves an invalid index; running the upgrade again drops it
first.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The dimensions of migration 0007's vector tables.
VECTOR_DIMS = (256, 384, 768, 1024, 1536)
INDEXES = [("chunk", "ix_chunk_embedding_hnsw")] + [
    (f"chunk_vector_{dim}", f"ix_chunk_vector_{dim}_embedding_hnsw") for dim in VECTOR_DIMS
]


def _rebuild(ef_construction: int) -> None:
    with op.get_context().autocommit_block():
        # SQLAlchemy read the connection's isolation level (a raw `SHOW`) before switching to
        # autocommit, and pg8000 opened a transaction for it: end it, or no CONCURRENTLY runs.
        op.execute("COMMIT")
        for table, index in INDEXES:
            fresh = f"{index}_new"
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {fresh}")
            op.execute(
                f"CREATE INDEX CONCURRENTLY {fresh} ON {table} USING hnsw "
                f"(embedding vector_cosine_ops) WITH (m = 16, ef_construction = {ef_construction})"
            )
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}")
            op.execute(f"ALTER INDEX {fresh} RENAME TO {index}")


def upgrade() -> None:
    _rebuild(128)


def downgrade() -> None:
    _rebuild(64)
