"""Per-org fair share of pipeline stages: `stage_lease` slots, isolated by org like every
tenant table (RLS for the application role, a permissive policy for ragline_admin).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "ragline_app"


def upgrade() -> None:
    op.create_table(
        "stage_lease",
        sa.Column("org_id", UUID(as_uuid=True), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_stage_lease_org_id_org"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "stage", "slot", name=op.f("pk_stage_lease")),
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON stage_lease TO {APP_ROLE}")
    op.execute("ALTER TABLE stage_lease ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE stage_lease FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY stage_lease_isolation ON stage_lease TO {APP_ROLE} "
        "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
        "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
    )
    op.execute(
        "CREATE POLICY stage_lease_admin ON stage_lease TO ragline_admin "
        "USING (true) WITH CHECK (true)"
    )


def downgrade() -> None:
    op.drop_table("stage_lease")
