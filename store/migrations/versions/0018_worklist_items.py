"""worklist: every alert, held lab message and blocked report as an item staff claim, comment on and resolve

Revision ID: 0018
Revises: 0019
Create Date: 2026-12-01 13:40:00

worklist_items: one row per (source, source_ref): an alert, a lab quarantine item or a blocked
disclosure (store/worklist.py opens it in the same transaction as its source). Existing unresolved
alerts and quarantine items are not back-filled here: the escalation workflow's first pass does it
(activities/worklist.py backfill), so the rules of domain/worklist.py apply to them too.
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0018"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "worklist_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", text(length=24), nullable=False),
        sa.Column("source_ref", text(length=200), nullable=False),
        sa.Column("raw_kind", text(length=40), nullable=False),
        sa.Column("kind", text(length=40), nullable=False),
        sa.Column("severity", text(length=16), nullable=False),
        sa.Column("participant_id", text(length=40), nullable=True),
        sa.Column("site", text(length=64), nullable=True),
        sa.Column("subject_type", text(length=32), nullable=False),
        sa.Column("subject_id", text(length=200), nullable=False),
        sa.Column("why", text(length=2000), nullable=False),
        sa.Column("todo", text(length=400), nullable=False),
        sa.Column("owner_role", text(length=16), nullable=False),
        sa.Column("status", text(length=16), nullable=False),
        sa.Column("assignee", text(length=32), nullable=True),
        sa.Column("due_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("escalated_to", text(length=16), nullable=True),
        sa.Column("escalated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("next_escalation_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("outcome", text(length=32), nullable=True),
        sa.Column("resolution_note", text(length=1000), nullable=True),
        sa.Column("resolved_by", text(length=32), nullable=True),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "source_ref"),
    )
    with op.batch_alter_table("worklist_items", schema=None) as batch_op:
        for column in ("kind", "participant_id", "site", "status", "assignee", "due_at", "next_escalation_at"):
            batch_op.create_index(batch_op.f(f"ix_worklist_items_{column}"), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("worklist_items", schema=None) as batch_op:
        for column in ("kind", "participant_id", "site", "status", "assignee", "due_at", "next_escalation_at"):
            batch_op.drop_index(batch_op.f(f"ix_worklist_items_{column}"))
    op.drop_table("worklist_items")
