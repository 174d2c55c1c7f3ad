"""The candidate count stays an index-only scan under document ACLs: the restrictive policy
of migration 0008 reads `chunk.acl`, so `ix_chunk_org_id_embedding_model` now carries it
(`INCLUDE (acl)`). Measured on a scratch database of 111 110 rows: the count at a 1 000-chunk
org read 987 heap buffers without it, 11 with it; at 100 000 chunks a ~590-page sequential
scan became 25 buffers (issue 18).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_chunk_org_id_embedding_model"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="chunk")
    op.create_index(
        INDEX, "chunk", ["org_id", "embedding_model"], unique=False, postgresql_include=["acl"]
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="chunk")
    op.create_index(INDEX, "chunk", ["org_id", "embedding_model"], unique=False)
