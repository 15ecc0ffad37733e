"""appraisal: reference needles per org and per purity test; how a test read its karat

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-07 18:00:00

The org's reference karats (issue 16, "reference needles"), copied onto each test when it
is created, and the test's reading method and acid reaction, which the certificate prints.
No new table, so no new policy: the columns inherit their tables' row-level security.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EMPTY_LIST = sa.text("'[]'::jsonb")


def upgrade() -> None:
    for table in ("appraisal_settings", "purity_tests"):
        op.add_column(
            table,
            sa.Column(
                "reference_karats",
                postgresql.JSONB(astext_type=sa.Text()),
                server_default=_EMPTY_LIST,
                nullable=False,
            ),
        )
    op.add_column("purity_tests", sa.Column("method", sa.String(length=80), nullable=True))
    op.add_column(
        "purity_tests",
        sa.Column("reaction", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("purity_tests", "reaction")
    op.drop_column("purity_tests", "method")
    for table in ("purity_tests", "appraisal_settings"):
        op.drop_column(table, "reference_karats")
