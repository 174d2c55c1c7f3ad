"""Embedding spaces (issue 17): an org's embedding models (`embedding_space`: at most one
active and one shadow per org, by partial unique indexes) and one vector table per supported
dimension (`chunk_vector_<dim>`, HNSW each, vectors stored in line). `chunk.embedding` stays
the storage of each org's first space: nothing is rewritten, and an org without a space row
works as before. New tenant tables get row-level security like every other.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "ragline_app"
#: Written here, not imported: a migration must not change when the models do.
VECTOR_DIMS = (256, 384, 768, 1024, 1536)


def _secure(table: str) -> None:
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {table}_isolation ON {table} TO {APP_ROLE} "
        "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
        "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
    )
    op.execute(
        f"CREATE POLICY {table}_admin ON {table} TO ragline_admin USING (true) WITH CHECK (true)"
    )


def upgrade() -> None:
    op.create_table(
        "embedding_space",
        sa.Column("id", UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()")),
        sa.Column("org_id", UUID(as_uuid=True), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("normalised", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("storage", sa.Text(), nullable=False),
        sa.Column("estimate", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("failed_batches", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('active', 'shadow', 'retired')", name=op.f("ck_embedding_space_state")
        ),
        sa.CheckConstraint(
            "dimension BETWEEN 1 AND 2000", name=op.f("ck_embedding_space_dimension")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_embedding_space_org_id_org"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embedding_space")),
    )
    op.create_index(op.f("ix_embedding_space_org_id"), "embedding_space", ["org_id"])
    for state in ("active", "shadow"):
        op.create_index(
            f"uq_embedding_space_org_id_{state}",
            "embedding_space",
            ["org_id"],
            unique=True,
            postgresql_where=sa.text(f"state = '{state}'"),
        )
    _secure("embedding_space")
    for dim in VECTOR_DIMS:
        name = f"chunk_vector_{dim}"
        op.create_table(
            name,
            sa.Column("space_id", UUID(as_uuid=True), nullable=False),
            sa.Column("chunk_id", UUID(as_uuid=True), nullable=False),
            sa.Column("org_id", UUID(as_uuid=True), nullable=False),
            sa.Column("embedding", Vector(dim), nullable=False),
            sa.ForeignKeyConstraint(
                ["space_id"],
                ["embedding_space.id"],
                name=op.f(f"fk_{name}_space_id_embedding_space"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["chunk_id"],
                ["chunk.id"],
                name=op.f(f"fk_{name}_chunk_id_chunk"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["org_id"], ["org.id"], name=op.f(f"fk_{name}_org_id_org"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("space_id", "chunk_id", name=op.f(f"pk_{name}")),
        )
        op.execute(f"ALTER TABLE {name} ALTER COLUMN embedding SET STORAGE PLAIN")
        op.create_index(op.f(f"ix_{name}_chunk_id"), name, ["chunk_id"])
        op.create_index(op.f(f"ix_{name}_org_id"), name, ["org_id"])
        op.create_index(
            f"ix_{name}_embedding_hnsw",
            name,
            ["embedding"],
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        )
        _secure(name)


def downgrade() -> None:
    for dim in reversed(VECTOR_DIMS):
        op.drop_table(f"chunk_vector_{dim}")
    op.drop_table("embedding_space")
