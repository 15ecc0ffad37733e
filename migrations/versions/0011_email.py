"""email: the outbox of emails and password-reset links

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00

Invitations and password resets are emailed (issue 14, item 7). `outbound_emails` keeps
each email's envelope and, until it is sent, its sealed message; `password_reset_tokens`
keeps the links' digests. Both are tenant tables. A reset link arrives with no tenant, so
its org is found by an owner-run lookup of the digest, as invitations' are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from touchstone.core.rls import enable_tenant_rls, security_definer_function

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column[sa.DateTime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "outbound_emails",
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sealed_message", sa.Text(), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_emails")),
    )
    op.create_index(op.f("ix_outbound_emails_org_id"), "outbound_emails", ["org_id"])
    enable_tenant_rls("outbound_emails")

    op.create_table(
        "password_reset_tokens",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["orgs.id"],
            name=op.f("fk_password_reset_tokens_org_id_orgs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_password_reset_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_reset_tokens_token_hash")),
    )
    op.create_index(op.f("ix_password_reset_tokens_org_id"), "password_reset_tokens", ["org_id"])
    op.create_index(op.f("ix_password_reset_tokens_user_id"), "password_reset_tokens", ["user_id"])
    enable_tenant_rls("password_reset_tokens")

    security_definer_function(
        "auth_password_reset_org(p_hash text)",
        "uuid",
        "SELECT org_id FROM password_reset_tokens WHERE token_hash = p_hash",
    )
    security_definer_function(
        "purge_outbound_emails(p_days integer)",
        "void",
        "DELETE FROM outbound_emails WHERE status IN ('sent', 'failed') "
        "AND created_at < now() - make_interval(days => p_days)",
        volatility="VOLATILE",
    )
    security_definer_function(
        "purge_password_reset_tokens(p_days integer)",
        "void",
        "DELETE FROM password_reset_tokens WHERE expires_at < now() - make_interval(days => p_days)",
        volatility="VOLATILE",
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION purge_password_reset_tokens")
    op.execute("DROP FUNCTION purge_outbound_emails")
    op.execute("DROP FUNCTION auth_password_reset_org")
    op.drop_table("password_reset_tokens")
    op.drop_table("outbound_emails")
