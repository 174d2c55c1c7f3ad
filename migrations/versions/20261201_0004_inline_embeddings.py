"""Search reads vectors without TOAST: `chunk.embedding` is stored inline (STORAGE PLAIN) and
`chunk.tsv` compressed in line before anything else moves out (STORAGE MAIN). A 384-d vector
is 1.5 kB, so with a chunk's text it used to cross the 2 kB TOAST threshold and an exact scan
paid one TOAST index lookup per row (issue 14). Existing rows are rewritten (the HNSW index is
rebuilt around the rewrite, which is faster than updating it row by row).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HNSW = (
    "CREATE INDEX ix_chunk_embedding_hnsw ON chunk USING hnsw (embedding vector_cosine_ops) "
    "WITH (m = 16, ef_construction = 64)"
)


def _rewrite(embedding_storage: str, tsv_storage: str) -> None:
    op.execute(f"ALTER TABLE chunk ALTER COLUMN embedding SET STORAGE {embedding_storage}")
    op.execute(f"ALTER TABLE chunk ALTER COLUMN tsv SET STORAGE {tsv_storage}")
    # SET STORAGE only applies to new tuples: rewrite the stored vectors (a new datum, so the
    # toaster applies the new storage) with the vector index dropped meanwhile.
    op.execute("DROP INDEX IF EXISTS ix_chunk_embedding_hnsw")
    op.execute("UPDATE chunk SET embedding = embedding::real[]::vector WHERE embedding IS NOT NULL")
    op.execute(HNSW)


def upgrade() -> None:
    _rewrite("PLAIN", "MAIN")


def downgrade() -> None:
    _rewrite("EXTERNAL", "EXTENDED")
