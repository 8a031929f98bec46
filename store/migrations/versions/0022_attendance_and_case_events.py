"""attendance_and_case_events: scheduled sessions and attendance; case events consents end at

Revision ID: 0022
Revises: 0020
Create Date: 2026-12-01 16:00:00

attendance_sessions: group and individual treatment sessions; attendance_records: one row per participant
and session (scheduled, then present / late / excused / absent, by staff or a kiosk), reported under the
attendance category. case_events: final disposition, end of supervision, end of employment as staff recorded
them, with the consents that were told (issue 16).
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0022"
down_revision = "0020"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "case_events",
        sa.Column("id", _text(40), nullable=False),
        sa.Column("participant_id", _text(40), nullable=False),
        sa.Column("kind", _text(32), nullable=False),
        sa.Column("case_system", _text(80), nullable=True),
        sa.Column("occurred_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("note", _text(500), nullable=True),
        sa.Column("consents", sa.JSON(), nullable=False),
        sa.Column("recorded_by", _text(32), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_case_events_participant_id"), "case_events", ["participant_id"], unique=False)
    op.create_table(
        "attendance_sessions",
        sa.Column("id", _text(40), nullable=False),
        sa.Column("kind", _text(16), nullable=False),
        sa.Column("title", _text(200), nullable=False),
        sa.Column("site", _text(64), nullable=False),
        sa.Column("starts_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("facilitator", _text(80), nullable=False),
        sa.Column("created_by", _text(32), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_attendance_sessions_site"), "attendance_sessions", ["site"], unique=False)
    op.create_index(op.f("ix_attendance_sessions_starts_at"), "attendance_sessions", ["starts_at"], unique=False)
    op.create_table(
        "attendance_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", _text(40), nullable=False),
        sa.Column("participant_id", _text(40), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("note", _text(500), nullable=True),
        sa.Column("method", _text(16), nullable=True),
        sa.Column("recorded_by", _text(32), nullable=True),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"]),
        sa.ForeignKeyConstraint(["session_id"], ["attendance_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "participant_id"),
    )
    op.create_index(op.f("ix_attendance_records_session_id"), "attendance_records", ["session_id"], unique=False)
    op.create_index(
        op.f("ix_attendance_records_participant_id"), "attendance_records", ["participant_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("attendance_records")
    op.drop_table("attendance_sessions")
    op.drop_table("case_events")
