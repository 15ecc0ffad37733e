"""attendance: groups, people, consents, face embeddings (pgvector), sessions, marks

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 15:40:00

pgvector is not a trusted extension, so it is created by the connecting (superuser) role
and the owner role is taken again for the tables; where a DBA created it already, nothing
is done.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

from touchstone.core.rls import enable_tenant_rls

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "attendance_groups",
    "attendance_people",
    "attendance_memberships",
    "attendance_consents",
    "attendance_faces",
    "attendance_settings",
    "attendance_sessions",
    "attendance_marks",
    "attendance_reviews",
)


def _tenant_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
    ]


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _org_index(table: str) -> None:
    op.create_index(op.f(f"ix_{table}_org_id"), table, ["org_id"], unique=False)


def upgrade() -> None:
    owner = context.config.attributes["owner_role"]
    op.execute("RESET ROLE")
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(f'SET ROLE "{owner}"')

    op.create_table(
        "attendance_groups",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        *_tenant_columns(),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_groups")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_attendance_groups_org_id_name")),
    )
    op.create_table(
        "attendance_people",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=True),
        *_tenant_columns(),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_people")),
        sa.UniqueConstraint("org_id", "code", name=op.f("uq_attendance_people_org_id_code")),
    )
    op.create_table(
        "attendance_memberships",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["attendance_groups.id"],
            name=op.f("fk_attendance_memberships_group_id_attendance_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["attendance_people.id"],
            name=op.f("fk_attendance_memberships_person_id_attendance_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "person_id", name=op.f("pk_attendance_memberships")),
    )
    op.create_index(
        op.f("ix_attendance_memberships_person_id"), "attendance_memberships", ["person_id"]
    )
    op.create_table(
        "attendance_consents",
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("given_by", sa.String(length=200), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=False),
        *_tenant_columns(),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["attendance_people.id"],
            name=op.f("fk_attendance_consents_person_id_attendance_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_consents")),
    )
    op.create_index(op.f("ix_attendance_consents_person_id"), "attendance_consents", ["person_id"])
    op.create_table(
        "attendance_faces",
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("embedding", Vector(128), nullable=False),
        sa.Column("engine", sa.String(length=40), nullable=False),
        sa.Column("photo_key", sa.String(length=200), nullable=False),
        sa.Column("photo_sha256", sa.String(length=64), nullable=False),
        sa.Column("quality", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("enrolled_by", sa.Uuid(), nullable=False),
        *_tenant_columns(),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["attendance_people.id"],
            name=op.f("fk_attendance_faces_person_id_attendance_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_faces")),
    )
    op.create_index(op.f("ix_attendance_faces_person_id"), "attendance_faces", ["person_id"])
    op.create_index(
        "ix_attendance_faces_embedding",
        "attendance_faces",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_l2_ops"},
    )
    op.create_table(
        "attendance_settings",
        sa.Column("match_threshold", sa.Float(), nullable=False),
        sa.Column("match_margin", sa.Float(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        *_tenant_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_settings")),
        sa.UniqueConstraint("org_id", name=op.f("uq_attendance_settings_org_id")),
    )
    op.create_table(
        "attendance_sessions",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        *_tenant_columns(),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["attendance_groups.id"],
            name=op.f("fk_attendance_sessions_group_id_attendance_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_sessions")),
    )
    op.create_index(op.f("ix_attendance_sessions_group_id"), "attendance_sessions", ["group_id"])
    op.create_table(
        "attendance_marks",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("distance", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("box", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("photo_key", sa.String(length=200), nullable=True),
        sa.Column("marked_by", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        *_tenant_columns(),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["attendance_people.id"],
            name=op.f("fk_attendance_marks_person_id_attendance_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["attendance_sessions.id"],
            name=op.f("fk_attendance_marks_session_id_attendance_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_marks")),
        sa.UniqueConstraint(
            "session_id", "person_id", name=op.f("uq_attendance_marks_session_id_person_id")
        ),
    )
    op.create_index(op.f("ix_attendance_marks_person_id"), "attendance_marks", ["person_id"])
    op.create_index(op.f("ix_attendance_marks_session_id"), "attendance_marks", ["session_id"])
    op.create_table(
        "attendance_reviews",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("box", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("photo_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        *_tenant_columns(),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["attendance_people.id"],
            name=op.f("fk_attendance_reviews_candidate_id_attendance_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["attendance_sessions.id"],
            name=op.f("fk_attendance_reviews_session_id_attendance_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_reviews")),
    )
    op.create_index(
        op.f("ix_attendance_reviews_candidate_id"), "attendance_reviews", ["candidate_id"]
    )
    op.create_index(op.f("ix_attendance_reviews_session_id"), "attendance_reviews", ["session_id"])
    for table in TENANT_TABLES:
        _org_index(table)
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
