"""Shadow builds watched by reconcile; the search query log (issue 17).

- `embedding_space.watched_missing` / `watched_at`: the vectors a shadow build still lacked
  when reconcile last saw it change, and when; a build whose count has not moved for
  RECONCILE_STALL_S is stalled (its tasks were lost) and gets its missing batches
  re-enqueued, at most `RECONCILE_MAX_REQUEUES` times (`requeues`, `requeued_at`), then it
  is reported on the space (`last_error`), never silently left.
- `query_log`: recent search queries per org, text only, for `ragline embeddings compare`
  without a questions file. A ring of QUERY_LOG_SIZE slots per org (primary key `(org_id,
  slot)`, each search upserts a random slot: bounded, one statement); retention purges
  entries older than `query_log_days`. Row-level security like every tenant table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

APP_ROLE = "ragline_app"

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("embedding_space", sa.Column("watched_missing", sa.Integer()))
    op.add_column(
        "embedding_space",
        sa.Column("watched_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.add_column(
        "embedding_space",
        sa.Column("requeues", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("embedding_space", sa.Column("requeued_at", sa.DateTime(timezone=True)))
    op.create_table(
        "query_log",
        sa.Column("org_id", UUID(as_uuid=True), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_query_log_org_id_org"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "slot", name=op.f("pk_query_log")),
    )
    op.create_index("ix_query_log_created_at", "query_log", ["created_at"])
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON query_log TO {APP_ROLE}")
    op.execute("ALTER TABLE query_log ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE query_log FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY query_log_isolation ON query_log TO {APP_ROLE} "
        "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
        "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
    )
    op.execute(
        "CREATE POLICY query_log_admin ON query_log TO ragline_admin USING (true) WITH CHECK (true)"
    )


def downgrade() -> None:
    op.drop_table("query_log")
    for column in ("requeued_at", "requeues", "watched_at", "watched_missing"):
        op.drop_column("embedding_space", column)
