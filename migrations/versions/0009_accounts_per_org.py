"""accounts per org: a user row belongs to one tenant; sessions and keys die with their org

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:30:00

Users were global (one row per email, shared by every org that added the address), so one
tenant could plant a password or rename a person another tenant later added. Now every
account belongs to exactly one org, under the same row-level security as any tenant table;
the same email in two orgs is two accounts with their own names and passwords.

Existing people with memberships in several orgs are split: the oldest membership keeps the
row, every other org gets a copy under a new id, and that org's rows that name the person
(sessions, invitations, keys, audit, appraisals, batches, ...) are re-pointed to the copy.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from touchstone.core.rls import enable_tenant_rls, runtime_role, security_definer_function

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every tenant-owned column that holds a user id, as of this revision.
USER_REFERENCES = (
    ("memberships", "user_id"),
    ("invitations", "user_id"),
    ("auth_sessions", "user_id"),
    ("api_keys", "created_by"),
    ("audit_events", "actor_id"),
    ("jobs", "created_by"),
    ("webhook_endpoints", "created_by"),
    ("statement_batches", "created_by"),
    ("appraisal_devices", "appraiser_id"),
    ("appraisal_customers", "created_by"),
    ("appraisals", "appraiser_id"),
    ("appraisals", "decided_by"),
    ("purity_tests", "created_by"),
    ("purity_overrides", "actor_id"),
    ("gold_rates", "set_by"),
    ("appraisal_chain_events", "actor_id"),
    ("appraisal_certificates", "issued_by"),
)

SESSION_ENTRY = """
    #variable_conflict use_column
    BEGIN
        RETURN QUERY
        SELECT m.role::text, m.branch_id, u.is_platform_admin
        FROM memberships m
        JOIN users u ON u.id = m.user_id
        JOIN orgs o ON o.id = m.org_id
        JOIN auth_sessions s ON s.user_id = m.user_id AND s.org_id = m.org_id
        WHERE m.user_id = p_user AND m.org_id = p_org AND s.id = p_session
          AND s.revoked_at IS NULL AND m.is_active AND u.is_active AND o.is_active;
        IF FOUND THEN
            PERFORM set_config('app.org_id', p_org::text, true),
                    set_config('app.user_id', p_user::text, true);
        END IF;
    END
"""

API_KEY_ENTRY = """
    #variable_conflict use_column
    DECLARE
        k record;
    BEGIN
        SELECT a.id, a.org_id, a.scopes::text[], a.last_used_at INTO k
        FROM api_keys a JOIN orgs o ON o.id = a.org_id AND o.is_active
        WHERE a.prefix = p_prefix AND a.secret_hash = p_secret_hash
          AND a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > now())
          AND (a.created_by IS NULL OR EXISTS (
                SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
                WHERE m.user_id = a.created_by AND m.org_id = a.org_id
                  AND m.is_active AND u.is_active));
        IF NOT FOUND THEN
            RETURN;
        END IF;
        -- "last used" to the minute: one write a minute per key, not one per request
        IF k.last_used_at IS NULL OR k.last_used_at < now() - interval '60 seconds' THEN
            UPDATE api_keys SET last_used_at = now() WHERE api_keys.id = k.id;
        END IF;
        PERFORM set_config('app.org_id', k.org_id::text, true),
                set_config('app.user_id', '', true);
        RETURN QUERY SELECT k.id, k.org_id, k.scopes;
    END
"""


def upgrade() -> None:
    op.add_column("users", sa.Column("org_id", sa.Uuid(), nullable=True))
    op.drop_index("uq_users_email_lower", table_name="users")
    op.execute(
        "CREATE TEMPORARY TABLE account_split ON COMMIT DROP AS "
        "SELECT user_id AS old_id, org_id, CASE WHEN row_number() OVER "
        "(PARTITION BY user_id ORDER BY created_at, org_id) = 1 "
        "THEN user_id ELSE gen_random_uuid() END AS new_id FROM memberships"
    )
    op.execute(
        "UPDATE users u SET org_id = s.org_id FROM account_split s "
        "WHERE s.old_id = u.id AND s.new_id = u.id"
    )
    op.execute(
        "INSERT INTO users (id, org_id, email, full_name, password_hash, is_active, "
        "is_platform_admin, password_changed_at, created_at) "
        "SELECT s.new_id, s.org_id, u.email, u.full_name, u.password_hash, u.is_active, "
        "u.is_platform_admin, u.password_changed_at, u.created_at "
        "FROM account_split s JOIN users u ON u.id = s.old_id WHERE s.new_id <> s.old_id"
    )
    for table, column in USER_REFERENCES:
        op.execute(
            f"UPDATE {table} t SET {column} = s.new_id FROM account_split s "
            f"WHERE s.new_id <> s.old_id AND t.org_id = s.org_id AND t.{column} = s.old_id"
        )
    op.execute("DELETE FROM users WHERE org_id IS NULL")  # no membership: nobody can sign in
    op.alter_column("users", "org_id", nullable=False)
    op.create_foreign_key(
        op.f("fk_users_org_id_orgs"), "users", "orgs", ["org_id"], ["id"], ondelete="CASCADE"
    )
    op.create_index(op.f("ix_users_org_id"), "users", ["org_id"])
    op.create_index(
        "uq_users_org_email_lower",
        "users",
        ["org_id", sa.literal_column("lower(email)")],
        unique=True,
    )
    for policy in ("users_read", "users_update", "users_insert"):
        op.execute(f"DROP POLICY {policy} ON users")
    enable_tenant_rls("users")

    op.execute("DROP FUNCTION auth_find_user(text)")
    op.execute("DROP FUNCTION auth_user_orgs(uuid)")
    security_definer_function(
        "auth_find_accounts(p_email text)",
        "TABLE(user_id uuid, org_id uuid, org_name text, org_slug text, role text, "
        "branch_id uuid, password_hash text, is_platform_admin boolean)",
        "SELECT u.id, o.id, o.name::text, o.slug::text, m.role::text, m.branch_id, "
        "u.password_hash, u.is_platform_admin FROM users u "
        "JOIN memberships m ON m.user_id = u.id AND m.org_id = u.org_id "
        "JOIN orgs o ON o.id = u.org_id "
        "WHERE lower(u.email) = lower(p_email) AND u.is_active AND m.is_active AND o.is_active "
        "ORDER BY o.name, o.id",
    )
    op.execute("DROP FUNCTION auth_enter_session(uuid, uuid, uuid)")
    op.execute("DROP FUNCTION auth_enter_api_key(text, text)")
    security_definer_function(
        "auth_enter_session(p_user uuid, p_org uuid, p_session uuid)",
        "TABLE(role text, branch_id uuid, is_platform_admin boolean)",
        SESSION_ENTRY,
        volatility="VOLATILE",
        language="plpgsql",
    )
    security_definer_function(
        "auth_enter_api_key(p_prefix text, p_secret_hash text)",
        "TABLE(id uuid, org_id uuid, scopes text[])",
        API_KEY_ENTRY,
        volatility="VOLATILE",
        language="plpgsql",
    )
    # The runtime role only reads the schema version (readiness); writing it is the owner's.
    op.execute(
        f'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM "{runtime_role()}"'
    )


def downgrade() -> None:
    """Back to global users; refused while an email has accounts in more than one org.

    The stricter entry functions stay: they read only columns the old schema has too.
    """
    op.execute(f'GRANT INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version TO "{runtime_role()}"')
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM users GROUP BY lower(email) HAVING count(*) > 1) "
        "THEN RAISE EXCEPTION 'an email has accounts in several orgs; merge them first'; "
        "END IF; END $$"
    )
    op.execute("DROP FUNCTION auth_find_accounts(text)")
    security_definer_function(
        "auth_find_user(p_email text)",
        "TABLE(id uuid, password_hash text, is_active boolean, is_platform_admin boolean)",
        "SELECT id, password_hash, is_active, is_platform_admin FROM users "
        "WHERE lower(email) = lower(p_email)",
    )
    security_definer_function(
        "auth_user_orgs(p_user uuid)",
        "TABLE(org_id uuid, org_name text, org_slug text, role text, branch_id uuid)",
        "SELECT o.id, o.name, o.slug, m.role, m.branch_id FROM memberships m "
        "JOIN orgs o ON o.id = m.org_id "
        "WHERE m.user_id = p_user AND m.is_active AND o.is_active ORDER BY o.name",
    )
    op.execute("DROP POLICY tenant_isolation ON users")
    visible = (
        "id = nullif(current_setting('app.user_id', true), '')::uuid "
        "OR EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = users.id)"
    )
    op.execute(f"CREATE POLICY users_read ON users FOR SELECT USING ({visible})")
    op.execute(f"CREATE POLICY users_update ON users FOR UPDATE USING ({visible})")
    op.execute("CREATE POLICY users_insert ON users FOR INSERT WITH CHECK (true)")
    op.drop_index("uq_users_org_email_lower", table_name="users")
    op.drop_index(op.f("ix_users_org_id"), table_name="users")
    op.drop_constraint(op.f("fk_users_org_id_orgs"), "users", type_="foreignkey")
    op.drop_column("users", "org_id")
    op.create_index(
        "uq_users_email_lower", "users", [sa.literal_column("lower(email)")], unique=True
    )
