"""programs as data (versioned), notification attempts, staff call list, participant PINs, channel lockouts

Revision ID: 0016
Revises: 0007
Create Date: 2026-12-01 13:35:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
# Assigned '0006' by the integrator, who re-chains; chained after this branch's head so it upgrades.
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "program_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("program_id", sa.String(length=64), sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("program_id", "version"),
    )
    op.create_index("ix_program_versions_program_id", "program_versions", ["program_id"])
    op.create_table(
        "notification_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notification_id", sa.String(length=120), nullable=False),
        sa.Column("participant_id", sa.String(length=40), sa.ForeignKey("participants.id"), nullable=False),
        sa.Column("screening_id", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=120), nullable=True),
        sa.Column("error", sa.String(length=400), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("receipt_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_notification_attempts_notification_id", "notification_attempts", ["notification_id"])
    op.create_index("ix_notification_attempts_provider_ref", "notification_attempts", ["provider_ref"])
    op.create_table(
        "call_list",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subject_id", sa.String(length=120), nullable=False, unique=True),
        sa.Column("participant_id", sa.String(length=40), sa.ForeignKey("participants.id"), nullable=False),
        sa.Column("screening_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=400), nullable=False),
        sa.Column("window_closes_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=400), nullable=True),
    )
    op.create_index("ix_call_list_participant_id", "call_list", ["participant_id"])
    op.create_table(
        "participant_pins",
        sa.Column("participant_id", sa.String(length=40), sa.ForeignKey("participants.id"), primary_key=True),
        sa.Column("pin_hash", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("window_start", sa.DateTime(), nullable=True),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "channel_lockouts",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("window_start", sa.DateTime(), nullable=True),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
    )
    with op.batch_alter_table("selection_draws", schema=None) as batch_op:
        batch_op.add_column(sa.Column("program_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("program_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("check_in_days", schema=None) as batch_op:
        batch_op.add_column(sa.Column("missed_required", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("check_in_days", schema=None) as batch_op:
        batch_op.drop_column("missed_required")
    with op.batch_alter_table("selection_draws", schema=None) as batch_op:
        batch_op.drop_column("program_version")
        batch_op.drop_column("program_id")
    op.drop_table("channel_lockouts")
    op.drop_table("participant_pins")
    op.drop_index("ix_call_list_participant_id", "call_list")
    op.drop_table("call_list")
    op.drop_index("ix_notification_attempts_provider_ref", "notification_attempts")
    op.drop_index("ix_notification_attempts_notification_id", "notification_attempts")
    op.drop_table("notification_attempts")
    op.drop_index("ix_program_versions_program_id", "program_versions")
    op.drop_table("program_versions")
    op.drop_table("programs")
