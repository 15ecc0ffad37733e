"""Row-level security statements for migrations, so every module isolates tenants alike."""

from __future__ import annotations

from alembic import context, op

CURRENT_ORG = "nullif(current_setting('app.org_id', true), '')::uuid"
CURRENT_USER_ID = "nullif(current_setting('app.user_id', true), '')::uuid"


def runtime_role() -> str:
    role: str = context.config.attributes["runtime_role"]
    return role


def enable_tenant_rls(table: str, column: str = "org_id") -> None:
    """ENABLE + FORCE RLS with one policy for reads and writes alike."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = {CURRENT_ORG}) WITH CHECK ({column} = {CURRENT_ORG})"
    )


def make_append_only(table: str) -> None:
    op.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM "{runtime_role()}"')


def security_definer_function(
    signature: str, returns: str, body: str, volatility: str = "STABLE", language: str = "sql"
) -> None:
    """A narrow, owner-run lookup across tenants (authentication needs a few of these).

    The owner has BYPASSRLS; the runtime role may only call the function, never read the
    tables around it. search_path is pinned so a caller cannot shadow the tables.
    """
    name = signature.split("(", 1)[0]
    op.execute(
        f"CREATE FUNCTION {signature} RETURNS {returns} LANGUAGE {language} {volatility} "
        "SECURITY DEFINER "
        f"SET search_path = public, pg_temp AS $$ {body} $$"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {name} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {name} TO "{runtime_role()}"')
