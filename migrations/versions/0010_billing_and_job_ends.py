"""jobs that end for good; files readable by their owners

Issue 13 (§7). Job records keep their arguments (the end hook of a cancelled job reads
them), batches say why they failed, and a file key finds its appraisal by index.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-07 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0008"
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


def downgrade() -> None:
    op.drop_index(op.f("ix_appraisal_certificates_storage_key"), "appraisal_certificates")
    op.drop_index(op.f("ix_appraisal_evidence_storage_key"), "appraisal_evidence")
    op.drop_column("statement_batches", "error_detail")
    op.drop_column("statement_batches", "error_code")
    op.drop_column("jobs", "arguments")
