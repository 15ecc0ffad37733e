"""billing set by the platform only; jobs that end for good; files readable by their owners

Issue 13 (§5, §7). Every subscription row so far came from `PUT /billing/customer`, where a
tenant named any Stripe customer id and any plan: those claims are cleared (each one kept
in the org's audit trail) and the orgs start again on the default plan, until the platform
links their customer. Job records keep their arguments (the end hook of a cancelled job
reads them), batches say why they failed, and a file key finds its appraisal by index.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-07 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column(
            "arguments",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("statement_batches", sa.Column("error_code", sa.String(length=60)))
    op.add_column("statement_batches", sa.Column("error_detail", sa.String(length=500)))
    op.create_index(
        op.f("ix_appraisal_evidence_storage_key"), "appraisal_evidence", ["storage_key"]
    )
    op.create_index(
        op.f("ix_appraisal_certificates_storage_key"), "appraisal_certificates", ["storage_key"]
    )
    op.alter_column("subscriptions", "status", server_default="none")
    op.execute(
        "INSERT INTO audit_events (id, org_id, occurred_at, actor_type, action, object_type,"
        " object_id, changes)"
        " SELECT gen_random_uuid(), org_id, now(), 'system', 'billing.tenant_claim_cleared',"
        " 'subscription', id::text, jsonb_build_object('customer_id', external_customer_id,"
        " 'subscription_id', external_subscription_id, 'plan', plan, 'status', status,"
        " 'reason', 'set by the tenant, not verified (issue 13)')"
        " FROM subscriptions"
    )
    op.execute(
        "UPDATE subscriptions SET plan = 'free', status = 'none', external_customer_id = NULL,"
        " external_subscription_id = NULL, current_period_end = NULL, updated_at = now()"
    )


def downgrade() -> None:
    op.alter_column("subscriptions", "status", server_default="active")
    op.drop_index(op.f("ix_appraisal_certificates_storage_key"), "appraisal_certificates")
    op.drop_index(op.f("ix_appraisal_evidence_storage_key"), "appraisal_evidence")
    op.drop_column("statement_batches", "error_detail")
    op.drop_column("statement_batches", "error_code")
    op.drop_column("jobs", "arguments")
