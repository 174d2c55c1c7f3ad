"""Reconcile: how often and when a stalled document's work was re-enqueued, why a document
failed, and an index to find recent progress per org.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "document",
        sa.Column("requeues", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("document", sa.Column("failure_reason", sa.Text(), nullable=True))
    op.add_column("document", sa.Column("requeued_at", sa.DateTime(timezone=True), nullable=True))
    # Reconcile asks each org "did anything progress lately?" every few minutes.
    op.create_index(
        op.f("ix_document_org_id_updated_at"), "document", ["org_id", "updated_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_document_org_id_updated_at"), table_name="document")
    op.drop_column("document", "requeued_at")
    op.drop_column("document", "failure_reason")
    op.drop_column("document", "requeues")
