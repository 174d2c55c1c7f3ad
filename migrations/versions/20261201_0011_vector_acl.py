"""The vectors of a restricted chunk follow its ACL (issue 18): a restrictive policy on each
`chunk_vector_<dim>` table (embedding spaces other than an org's first, migration 0007) shows a
row only when its chunk is visible to the caller — a server key or a pipeline stage
(`app.principals = '*'`) without a lookup, anyone else through `chunk`'s own policies. Search
already joined `chunk`; raw SQL as the application role no longer reads the vectors of chunks
it cannot see.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "ragline_app"
#: The dimensions of migration 0007's vector tables.
VECTOR_DIMS = (256, 384, 768, 1024, 1536)


def upgrade() -> None:
    for dim in VECTOR_DIMS:
        table = f"chunk_vector_{dim}"
        op.execute(
            f"CREATE POLICY {table}_acl ON {table} AS RESTRICTIVE TO {APP_ROLE} "
            "USING (current_setting('app.principals', true) = '*' "
            f"OR EXISTS (SELECT 1 FROM chunk c WHERE c.id = {table}.chunk_id)) "
            "WITH CHECK (true)"
        )


def downgrade() -> None:
    for dim in VECTOR_DIMS:
        table = f"chunk_vector_{dim}"
        op.execute(f"DROP POLICY IF EXISTS {table}_acl ON {table}")
