"""Admin and ops roles: managed Postgres (Cloud SQL, RDS) has no superuser to bypass RLS.

- `ragline_admin`: members (the migration/owner user) see every row through permissive
  policies, so admin commands and the SECURITY DEFINER functions (owned by that user, with RLS
  forced on its tables) work where the owner is not a superuser.
- `ragline_ops`: the application role plus `ragline_orgs()`, the list of orgs the retention
  job walks; granted only to the retention function's database user.
- `alembic_version` readable by the application role, for the health check.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "org",
    "app_user",
    "api_key",
    "document",
    "chunk",
    "run",
    "idempotency_key",
    "rate_limit_bucket",
)


def _create_role(name: str) -> None:
    op.execute(
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
                CREATE ROLE {name} NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
        END $$"""
    )


def upgrade() -> None:
    _create_role("ragline_admin")
    _create_role("ragline_ops")
    op.execute("GRANT ragline_app TO ragline_ops")
    # The user running migrations owns the tables and the definer functions.
    op.execute(
        """DO $$ BEGIN
            EXECUTE format('GRANT ragline_admin TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'could not grant ragline_admin to %: grant it by hand', current_user;
        END $$"""
    )
    for table in TABLES:
        op.execute(
            f"CREATE POLICY {table}_admin ON {table} TO ragline_admin "
            "USING (true) WITH CHECK (true)"
        )
    op.execute(
        """CREATE FUNCTION ragline_orgs()
        RETURNS TABLE (id uuid, slug text, name text, settings jsonb, created_at timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT id, slug, name, settings, created_at FROM org ORDER BY created_at, id
        $$"""
    )
    op.execute("REVOKE ALL ON FUNCTION ragline_orgs() FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION ragline_orgs() TO ragline_ops, ragline_admin")
    op.execute("GRANT SELECT ON alembic_version TO ragline_app")


def downgrade() -> None:
    op.execute("REVOKE SELECT ON alembic_version FROM ragline_app")
    op.execute("DROP FUNCTION IF EXISTS ragline_orgs()")
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS {table}_admin ON {table}")
    # Roles are cluster-wide and may serve other databases: kept.
