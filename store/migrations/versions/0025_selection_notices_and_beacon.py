"""selection_notices_and_beacon: recipients subscribe to selection notices; each notice's delivery record

Revision ID: 0025
Revises: 0020
Create Date: 2026-12-02 10:00:00

A recipient may subscribe to each period's commitment and reveal notices (recipients.notices); each notice
sent is recorded in selection_notices (no participant's information: not a Part 2 disclosure). A period
records when its public beacon was entered (issue 21).
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0025"
down_revision = "0022"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("recipients") as batch:
        batch.add_column(sa.Column("notices", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("selection_periods") as batch:
        batch.add_column(sa.Column("beacon_entered_at", sa.DateTime(), nullable=True))
    op.create_table(
        "selection_notices",
        sa.Column("id", _text(200), primary_key=True),
        sa.Column("program", _text(64), nullable=False),
        sa.Column("period", _text(7), nullable=False),
        sa.Column("kind", _text(16), nullable=False),
        sa.Column("recipient_id", _text(40), sa.ForeignKey("recipients.id"), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("reason", _text(1000), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_selection_notices_recipient_id", "selection_notices", ["recipient_id"])
    op.create_index("ix_selection_notices_status", "selection_notices", ["status"])


def downgrade() -> None:
    op.drop_index("ix_selection_notices_status", table_name="selection_notices")
    op.drop_index("ix_selection_notices_recipient_id", table_name="selection_notices")
    op.drop_table("selection_notices")
    with op.batch_alter_table("selection_periods") as batch:
        batch.drop_column("beacon_entered_at")
    with op.batch_alter_table("recipients") as batch:
        batch.drop_column("notices")
