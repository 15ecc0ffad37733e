"""statements: the underwriting analysis stored with the batch

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 18:30:00

The analysis is computed when the workbook is built (at the end of the batch's job and after
a category is changed by hand) and served as stored, rather than computed from every row of
the batch on each read. Batches finished before this revision have none: their analysis is
computed on read, as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("statement_batches", sa.Column("analysis", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("statement_batches", "analysis")
