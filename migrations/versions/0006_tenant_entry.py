"""tenant entry: check a credential and enter its tenant in one statement

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 02:20:00

Authentication used to be a lookup, then a `set_config`, then (for API keys) an update,
each a round trip. These functions do all of it and set the tenant only when the
credential holds, so the one-round-trip reader (`core.reads`) and the ORM session share
one definition of a valid credential.
"""

from collections.abc import Sequence

from alembic import op

from touchstone.core.rls import security_definer_function

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    security_definer_function(
        "auth_enter_session(p_user uuid, p_org uuid, p_session uuid)",
        "TABLE(role text, branch_id uuid, is_platform_admin boolean)",
        """
        #variable_conflict use_column
        BEGIN
            RETURN QUERY
            SELECT m.role::text, m.branch_id, u.is_platform_admin
            FROM memberships m
            JOIN users u ON u.id = m.user_id
            JOIN auth_sessions s ON s.user_id = m.user_id AND s.org_id = m.org_id
            WHERE m.user_id = p_user AND m.org_id = p_org AND s.id = p_session
              AND s.revoked_at IS NULL AND m.is_active AND u.is_active;
            IF FOUND THEN
                PERFORM set_config('app.org_id', p_org::text, true),
                        set_config('app.user_id', p_user::text, true);
            END IF;
        END
        """,
        volatility="VOLATILE",
        language="plpgsql",
    )
    security_definer_function(
        "auth_enter_api_key(p_prefix text, p_secret_hash text)",
        "TABLE(id uuid, org_id uuid, scopes text[])",
        """
        #variable_conflict use_column
        DECLARE
            k record;
        BEGIN
            SELECT a.id, a.org_id, a.scopes::text[], a.last_used_at INTO k
            FROM api_keys a JOIN orgs o ON o.id = a.org_id AND o.is_active
            WHERE a.prefix = p_prefix AND a.secret_hash = p_secret_hash
              AND a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > now());
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
        """,
        volatility="VOLATILE",
        language="plpgsql",
    )
    op.execute("DROP FUNCTION auth_api_key(text)")  # replaced by auth_enter_api_key


def downgrade() -> None:
    security_definer_function(
        "auth_api_key(p_prefix text)",
        "TABLE(id uuid, org_id uuid, secret_hash text, scopes text[], "
        "expires_at timestamptz, revoked_at timestamptz)",
        "SELECT k.id, k.org_id, k.secret_hash, k.scopes, k.expires_at, k.revoked_at "
        "FROM api_keys k JOIN orgs o ON o.id = k.org_id AND o.is_active WHERE k.prefix = p_prefix",
    )
    op.execute("DROP FUNCTION auth_enter_api_key(text, text)")
    op.execute("DROP FUNCTION auth_enter_session(uuid, uuid, uuid)")
