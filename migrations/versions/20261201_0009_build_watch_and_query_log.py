"""Shadow builds watched by reconcile (issue 17).

- `embedding_space.watched_missing` / `watched_at`: the vectors a shadow build still lacked
  when reconcile last saw it change, and when; a build whose count has not moved for
  RECONCILE_STALL_S is stalled (its tasks were lost) and gets its missing batches
  re-enqueued, at most `RECONCILE_MAX_REQUEUES` times (`requeues`, `requeued_at`), then it
  is reported on the space (`last_error`), never silently left.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

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


def downgrade() -> None:
    for column in ("requeued_at", "requeues", "watched_at", "watched_missing"):
        op.drop_column("embedding_space", column)
