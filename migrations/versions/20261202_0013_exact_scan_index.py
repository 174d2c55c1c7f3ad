"""The exact scan reads an org's vectors from one index, not from its scattered rows.

An org of up to `EXACT_MAX_ROWS` candidates is searched by computing the distance to each of
its vectors. Read from the heap, that is one page per chunk (a row with its inline vector
and text fills a quarter of a page, and an org's rows are spread over the table as they
were ingested): 990 buffers at a 1 000-chunk org. `ix_chunk_exact_scan` holds each vector
next to its org, model, id, document and ACL (everything the scan and the row-level policy
read), so the scan is an index-only scan of the org's contiguous entries: ~250 buffers, and
the statement's execution fell from 1.8 to 0.5 ms at 1 000 chunks (issue 14; bench/README.md).

The price is a second copy of each 384-dimensional vector: ~2 kB per chunk (219 MB for
111 110 chunks, as much as the table's heap and as its HNSW graph). Only `chunk.embedding`
gets it: the embedding spaces' tables hold vectors of up to 1 536 dimensions, beyond a btree
entry's limit (~2.7 kB).

Built without blocking writes (`CREATE INDEX CONCURRENTLY`, outside the migration's
transaction); a failed build leaves an invalid index, which running the upgrade again drops.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_chunk_exact_scan"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        # As in 0012: end the transaction pg8000 opened for SQLAlchemy's isolation-level read.
        op.execute("COMMIT")
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.execute(
            f"CREATE INDEX CONCURRENTLY {INDEX} ON chunk (org_id, embedding_model) "
            "INCLUDE (acl, id, document_id, embedding)"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("COMMIT")
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
