"""Files (issue 13): the source format, size, pages and title of a file document, the page of
a chunk, the bytes of a posted file, the parts of a large PDF parsed by page range, and the
last event applied to each object of an ingestion bucket. New tenant tables get row-level
security like every other (isolation for the application role, a permissive policy for
ragline_admin).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "ragline_app"
NEW_TABLES = ("document_file", "document_part", "storage_object")


def upgrade() -> None:
    op.add_column("document", sa.Column("source_format", sa.Text(), nullable=True))
    op.add_column("document", sa.Column("content_type", sa.Text(), nullable=True))
    op.add_column("document", sa.Column("file_bytes", sa.BigInteger(), nullable=True))
    op.add_column("document", sa.Column("page_count", sa.Integer(), nullable=True))
    op.add_column("document", sa.Column("extracted_chars", sa.Integer(), nullable=True))
    op.add_column("document", sa.Column("page_spans", JSONB(), nullable=True))
    op.add_column(
        "document",
        sa.Column("title_from_file", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("document", sa.Column("source_generation", sa.Numeric(40, 0), nullable=True))
    op.add_column("document", sa.Column("replaces_id", UUID(as_uuid=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_document_replaces_id_document"),
        "document",
        "document",
        ["replaces_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("chunk", sa.Column("page", sa.Integer(), nullable=True))
    op.create_table(
        "document_file",
        sa.Column("document_id", UUID(as_uuid=True), nullable=False),
        sa.Column("org_id", UUID(as_uuid=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
            name=op.f("fk_document_file_document_id_document"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_document_file_org_id_org"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_document_file")),
    )
    op.create_index(op.f("ix_document_file_org_id"), "document_file", ["org_id"], unique=False)
    op.create_table(
        "document_part",
        sa.Column("document_id", UUID(as_uuid=True), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("org_id", UUID(as_uuid=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("page_spans", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
            name=op.f("fk_document_part_document_id_document"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_document_part_org_id_org"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("document_id", "part", name=op.f("pk_document_part")),
    )
    op.create_index(op.f("ix_document_part_org_id"), "document_part", ["org_id"], unique=False)
    op.create_table(
        "storage_object",
        sa.Column("org_id", UUID(as_uuid=True), nullable=False),
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("generation", sa.Numeric(40, 0), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("document_id", UUID(as_uuid=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
            name=op.f("fk_storage_object_document_id_document"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_storage_object_org_id_org"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "bucket", "name", name=op.f("pk_storage_object")),
    )
    for table in NEW_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_isolation ON {table} TO {APP_ROLE} "
            "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
            "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
        )
        op.execute(
            f"CREATE POLICY {table}_admin ON {table} TO ragline_admin "
            "USING (true) WITH CHECK (true)"
        )


def downgrade() -> None:
    op.drop_table("storage_object")
    op.drop_index(op.f("ix_document_part_org_id"), table_name="document_part")
    op.drop_table("document_part")
    op.drop_index(op.f("ix_document_file_org_id"), table_name="document_file")
    op.drop_table("document_file")
    op.drop_column("chunk", "page")
    op.drop_constraint(op.f("fk_document_replaces_id_document"), "document", type_="foreignkey")
    for column in (
        "replaces_id",
        "source_generation",
        "title_from_file",
        "page_spans",
        "extracted_chars",
        "page_count",
        "file_bytes",
        "content_type",
        "source_format",
    ):
        op.drop_column("document", column)
