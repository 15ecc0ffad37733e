"""statements: room for the batch status `completed_with_errors`

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09 10:00:00

A batch whose statements failed is not plain `done` (issue 15, item 5): the new status is
21 characters long, one more than the column held.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "statement_batches",
        "status",
        existing_type=sa.String(length=20),
        type_=sa.String(length=32),
        existing_nullable=False,
        existing_server_default="queued",
    )


def downgrade() -> None:
    op.execute(
        "UPDATE statement_batches SET status = 'done' WHERE status = 'completed_with_errors'"
    )
    op.alter_column(
        "statement_batches",
        "status",
        existing_type=sa.String(length=32),
        type_=sa.String(length=20),
        existing_nullable=False,
        existing_server_default="queued",
    )
