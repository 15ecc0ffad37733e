"""arcontent: projects and AR contents (marker, overlay video, renditions, publication)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from touchstone.core.rls import enable_tenant_rls

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("ar_projects", "ar_contents")
_TZ = sa.DateTime(timezone=True)


def _common() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", _TZ, server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "ar_projects",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.Column("archived_at", _TZ, nullable=True),
        *_common(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ar_projects")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_ar_projects_org_id_name")),
    )
    op.create_table(
        "ar_contents",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("processing", sa.String(length=20), nullable=False),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.Column("placement", JSONB(), nullable=False),
        sa.Column("marker_key", sa.String(length=200), nullable=True),
        sa.Column("marker_sha256", sa.String(length=64), nullable=True),
        sa.Column("marker_width", sa.Integer(), nullable=True),
        sa.Column("marker_height", sa.Integer(), nullable=True),
        sa.Column("marker_score", sa.Float(), nullable=True),
        sa.Column("marker_quality", JSONB(), nullable=True),
        sa.Column("video_key", sa.String(length=200), nullable=True),
        sa.Column("video_sha256", sa.String(length=64), nullable=True),
        sa.Column("renditions", JSONB(), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("public_token", sa.String(length=40), nullable=True),
        sa.Column("published_at", _TZ, nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        *_common(),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["ar_projects.id"],
            name=op.f("fk_ar_contents_project_id_ar_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ar_contents")),
        sa.UniqueConstraint("public_token", name=op.f("uq_ar_contents_public_token")),
    )
    op.create_index(op.f("ix_ar_contents_project_id"), "ar_contents", ["project_id"])
    for table in TENANT_TABLES:
        op.create_index(op.f(f"ix_{table}_org_id"), table, ["org_id"], unique=False)
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
