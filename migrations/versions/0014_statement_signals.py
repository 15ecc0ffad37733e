"""statements: document signals per statement

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-07 15:00:00

The PDF's producer, creator, dates, incremental updates and restyled figures, with findings
(issue 15, item 3). An empty object until the statement is read (or read again).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "statements",
        sa.Column(
            "signals",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("statements", "signals")
