"""End users and document permissions (issue 18).

- `app_user` gains the OIDC identity (issuer, subject; unique per org), the groups of its last
  sign-in, and an optional email (a second identity with a taken email keeps none).
- `run.user_id`: who started a run (answers record the user).
- `rate_limit_bucket.api_key_id` becomes `caller_id`: an API key or a user (per-user limits);
  no foreign key any more (retention removes idle buckets).
- `document.acl` / `chunk.acl` (`text[]`, NULL = the whole org): principals `user:<id>` and
  `group:<name>`. A chunk's ACL is the document's, copied by triggers (on insert, and when
  the document's ACL changes), so no code path can leave a chunk visible wider than its
  document.
- Restrictive policies for the application role, AND-ed with the org policies: a row with an
  ACL is visible only when `app.principals` (set per transaction beside `app.org_id`) is `*`
  (a server key, a pipeline stage) or shares a principal with it. Unset: only ACL-free rows.
  `document_file` and `document_part` (a document's bytes and text) follow their document.
- Definer lookups before the org is known: `ragline_org_by_ref` (the org claim),
  `ragline_oidc_memberships` (membership mode), and the API-key lookup now returns `user_id`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "ragline_app"

#: The one visibility test (document and chunk policies); kept inline so the planner sees it.
VISIBLE = (
    "acl IS NULL OR current_setting('app.principals', true) = '*' "
    "OR acl && string_to_array(NULLIF(current_setting('app.principals', true), ''), ',')"
)


def _definer(sql: str, signature: str) -> None:
    op.execute(sql)
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


def upgrade() -> None:
    # --- users ---
    op.add_column("app_user", sa.Column("issuer", sa.Text(), nullable=True))
    op.add_column("app_user", sa.Column("subject", sa.Text(), nullable=True))
    op.add_column(
        "app_user",
        sa.Column(
            "groups", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False
        ),
    )
    op.alter_column("app_user", "email", existing_type=sa.Text(), nullable=True)
    op.create_unique_constraint(
        op.f("uq_app_user_org_id_issuer_subject"), "app_user", ["org_id", "issuer", "subject"]
    )
    op.create_index("ix_app_user_issuer_subject", "app_user", ["issuer", "subject"])
    op.add_column("run", sa.Column("user_id", UUID(as_uuid=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_run_user_id_app_user"), "run", "app_user", ["user_id"], ["id"], ondelete="SET NULL"
    )
    op.create_index(op.f("ix_run_user_id"), "run", ["user_id"])
    # --- per-caller rate limits ---
    op.drop_constraint(
        "fk_rate_limit_bucket_api_key_id_api_key", "rate_limit_bucket", type_="foreignkey"
    )
    op.alter_column("rate_limit_bucket", "api_key_id", new_column_name="caller_id")
    op.execute(
        "ALTER INDEX ix_rate_limit_bucket_api_key_id RENAME TO ix_rate_limit_bucket_caller_id"
    )
    # --- document permissions ---
    op.add_column("document", sa.Column("acl", sa.ARRAY(sa.Text()), nullable=True))
    op.add_column("chunk", sa.Column("acl", sa.ARRAY(sa.Text()), nullable=True))
    # Definer: the copy must not depend on what the writing caller may see.
    op.execute(
        """CREATE FUNCTION ragline_chunk_acl() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        BEGIN
            SELECT d.acl INTO NEW.acl FROM document d WHERE d.id = NEW.document_id;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'chunk of an unknown document' USING ERRCODE = '23503';
            END IF;
            RETURN NEW;
        END $$"""
    )
    op.execute(
        "CREATE TRIGGER chunk_acl BEFORE INSERT OR UPDATE OF acl, document_id ON chunk "
        "FOR EACH ROW EXECUTE FUNCTION ragline_chunk_acl()"
    )
    op.execute(
        """CREATE FUNCTION ragline_document_acl() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        BEGIN
            UPDATE chunk SET acl = NEW.acl WHERE document_id = NEW.id;
            RETURN NULL;
        END $$"""
    )
    op.execute(
        "CREATE TRIGGER document_acl AFTER UPDATE OF acl ON document FOR EACH ROW "
        "WHEN (OLD.acl IS DISTINCT FROM NEW.acl) EXECUTE FUNCTION ragline_document_acl()"
    )
    op.execute("REVOKE ALL ON FUNCTION ragline_chunk_acl() FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION ragline_document_acl() FROM PUBLIC")
    for table in ("document", "chunk"):
        op.execute(
            f"CREATE POLICY {table}_acl ON {table} AS RESTRICTIVE TO {APP_ROLE} "
            f"USING ({VISIBLE}) WITH CHECK (true)"
        )
    for table in ("document_file", "document_part"):
        op.execute(
            f"CREATE POLICY {table}_acl ON {table} AS RESTRICTIVE TO {APP_ROLE} "
            f"USING (EXISTS (SELECT 1 FROM document d WHERE d.id = {table}.document_id)) "
            "WITH CHECK (true)"
        )
    # --- lookups before the org is known ---
    _definer(
        """CREATE FUNCTION ragline_org_by_ref(p_ref text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT id FROM org WHERE slug = p_ref OR id::text = p_ref LIMIT 1
        $$""",
        "ragline_org_by_ref(text)",
    )
    _definer(
        """CREATE FUNCTION ragline_oidc_memberships(p_issuer text, p_subject text, p_email text)
        RETURNS TABLE (org_id uuid, user_id uuid, bound boolean)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT org_id, id, subject IS NOT NULL FROM app_user
            WHERE (issuer = p_issuer AND subject = p_subject)
               OR (subject IS NULL AND p_email IS NOT NULL AND email = p_email)
        $$""",
        "ragline_oidc_memberships(text, text, text)",
    )
    op.execute("DROP FUNCTION ragline_api_key_by_prefix(text)")
    _definer(
        """CREATE FUNCTION ragline_api_key_by_prefix(p_prefix text)
        RETURNS TABLE (id uuid, org_id uuid, key_hash text, scopes text[],
                       expires_at timestamptz, revoked_at timestamptz, user_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT id, org_id, key_hash, scopes, expires_at, revoked_at, user_id
            FROM api_key WHERE prefix = p_prefix
        $$""",
        "ragline_api_key_by_prefix(text)",
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION ragline_api_key_by_prefix(text)")
    _definer(
        """CREATE FUNCTION ragline_api_key_by_prefix(p_prefix text)
        RETURNS TABLE (id uuid, org_id uuid, key_hash text, scopes text[],
                       expires_at timestamptz, revoked_at timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT id, org_id, key_hash, scopes, expires_at, revoked_at
            FROM api_key WHERE prefix = p_prefix
        $$""",
        "ragline_api_key_by_prefix(text)",
    )
    op.execute("DROP FUNCTION ragline_oidc_memberships(text, text, text)")
    op.execute("DROP FUNCTION ragline_org_by_ref(text)")
    for table in ("document", "chunk", "document_file", "document_part"):
        op.execute(f"DROP POLICY {table}_acl ON {table}")
    op.execute("DROP TRIGGER document_acl ON document")
    op.execute("DROP TRIGGER chunk_acl ON chunk")
    op.execute("DROP FUNCTION ragline_document_acl()")
    op.execute("DROP FUNCTION ragline_chunk_acl()")
    op.drop_column("chunk", "acl")
    op.drop_column("document", "acl")
    op.execute(
        "ALTER INDEX ix_rate_limit_bucket_caller_id RENAME TO ix_rate_limit_bucket_api_key_id"
    )
    op.alter_column("rate_limit_bucket", "caller_id", new_column_name="api_key_id")
    op.execute("DELETE FROM rate_limit_bucket WHERE api_key_id NOT IN (SELECT id FROM api_key)")
    op.create_foreign_key(
        "fk_rate_limit_bucket_api_key_id_api_key",
        "rate_limit_bucket",
        "api_key",
        ["api_key_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_index(op.f("ix_run_user_id"), table_name="run")
    op.drop_constraint(op.f("fk_run_user_id_app_user"), "run", type_="foreignkey")
    op.drop_column("run", "user_id")
    op.drop_index("ix_app_user_issuer_subject", table_name="app_user")
    op.drop_constraint(op.f("uq_app_user_org_id_issuer_subject"), "app_user", type_="unique")
    op.execute("DELETE FROM app_user WHERE email IS NULL")
    op.alter_column("app_user", "email", existing_type=sa.Text(), nullable=False)
    op.drop_column("app_user", "groups")
    op.drop_column("app_user", "subject")
    op.drop_column("app_user", "issuer")
