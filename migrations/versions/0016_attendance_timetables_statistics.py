"""attendance: timetables, late marks, group owners, daily summaries, evidence retention

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 18:10:00

Two owner-run lookups let the periodic jobs (no tenant) find the orgs that have work:
orgs with a retention period, and orgs with group owners. They return org ids only; the
work itself runs as a tenant job under row-level security.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from touchstone.core.rls import enable_tenant_rls, security_definer_function

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TABLES = ("attendance_timetable_slots", "attendance_daily_summaries")
_TZ = sa.DateTime(timezone=True)


def _tenant_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", _TZ, server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "attendance_timetable_slots",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("starts_at", sa.Time(), nullable=False),
        sa.Column("ends_at", sa.Time(), nullable=False),
        sa.Column("late_after_minutes", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        *_tenant_columns(),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["attendance_groups.id"],
            name=op.f("fk_attendance_timetable_slots_group_id_attendance_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_timetable_slots")),
        sa.UniqueConstraint(
            "group_id",
            "weekday",
            "starts_at",
            name=op.f("uq_attendance_timetable_slots_group_id_weekday_starts_at"),
        ),
    )
    op.create_index(
        op.f("ix_attendance_timetable_slots_group_id"), "attendance_timetable_slots", ["group_id"]
    )
    op.create_table(
        "attendance_daily_summaries",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("email_id", sa.Uuid(), nullable=True),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("present", sa.Integer(), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        sa.Column("absent", sa.Integer(), nullable=False),
        *_tenant_columns(),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["attendance_groups.id"],
            name=op.f("fk_attendance_daily_summaries_group_id_attendance_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_daily_summaries")),
        sa.UniqueConstraint(
            "group_id", "day", name=op.f("uq_attendance_daily_summaries_group_id_day")
        ),
    )
    op.create_index(
        op.f("ix_attendance_daily_summaries_group_id"), "attendance_daily_summaries", ["group_id"]
    )
    for table in NEW_TABLES:
        op.create_index(op.f(f"ix_{table}_org_id"), table, ["org_id"], unique=False)
        enable_tenant_rls(table)

    op.add_column("attendance_groups", sa.Column("timezone", sa.String(length=60), nullable=True))
    op.add_column("attendance_groups", sa.Column("owner_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_attendance_groups_owner_id_users"),
        "attendance_groups",
        "users",
        ["owner_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_attendance_groups_owner_id"), "attendance_groups", ["owner_id"])

    op.add_column(
        "attendance_settings",
        sa.Column("timezone", sa.String(length=60), server_default="UTC", nullable=False),
    )
    op.add_column(
        "attendance_settings", sa.Column("evidence_retention_days", sa.Integer(), nullable=True)
    )

    op.add_column("attendance_sessions", sa.Column("ends_at", _TZ, nullable=True))
    op.add_column("attendance_sessions", sa.Column("late_after", _TZ, nullable=True))
    op.add_column("attendance_sessions", sa.Column("slot_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_attendance_sessions_slot_id_attendance_timetable_slots"),
        "attendance_sessions",
        "attendance_timetable_slots",
        ["slot_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_attendance_sessions_slot_id"), "attendance_sessions", ["slot_id"])
    op.create_unique_constraint(
        op.f("uq_attendance_sessions_slot_id_starts_at"),
        "attendance_sessions",
        ["slot_id", "starts_at"],
    )

    op.add_column(
        "attendance_marks",
        sa.Column("status", sa.String(length=10), server_default="present", nullable=False),
    )
    op.add_column("attendance_marks", sa.Column("evidence_removed_at", _TZ, nullable=True))
    op.alter_column("attendance_reviews", "photo_key", existing_type=sa.String(200), nullable=True)
    op.add_column("attendance_reviews", sa.Column("evidence_removed_at", _TZ, nullable=True))

    security_definer_function(
        "attendance_retention_orgs()",
        "TABLE(org_id uuid)",
        "SELECT s.org_id FROM attendance_settings s JOIN orgs o ON o.id = s.org_id"
        " WHERE s.evidence_retention_days IS NOT NULL AND o.is_active",
    )
    security_definer_function(
        "attendance_summary_orgs()",
        "TABLE(org_id uuid)",
        "SELECT DISTINCT g.org_id FROM attendance_groups g JOIN orgs o ON o.id = g.org_id"
        " WHERE g.owner_id IS NOT NULL AND o.is_active",
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION attendance_summary_orgs()")
    op.execute("DROP FUNCTION attendance_retention_orgs()")
    op.drop_column("attendance_reviews", "evidence_removed_at")
    op.alter_column("attendance_reviews", "photo_key", existing_type=sa.String(200), nullable=False)
    op.drop_column("attendance_marks", "evidence_removed_at")
    op.drop_column("attendance_marks", "status")
    op.drop_constraint(
        op.f("uq_attendance_sessions_slot_id_starts_at"), "attendance_sessions", type_="unique"
    )
    op.drop_index(op.f("ix_attendance_sessions_slot_id"), table_name="attendance_sessions")
    op.drop_constraint(
        op.f("fk_attendance_sessions_slot_id_attendance_timetable_slots"),
        "attendance_sessions",
        type_="foreignkey",
    )
    for column in ("slot_id", "late_after", "ends_at"):
        op.drop_column("attendance_sessions", column)
    op.drop_column("attendance_settings", "evidence_retention_days")
    op.drop_column("attendance_settings", "timezone")
    op.drop_index(op.f("ix_attendance_groups_owner_id"), table_name="attendance_groups")
    op.drop_constraint(
        op.f("fk_attendance_groups_owner_id_users"), "attendance_groups", type_="foreignkey"
    )
    op.drop_column("attendance_groups", "owner_id")
    op.drop_column("attendance_groups", "timezone")
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
