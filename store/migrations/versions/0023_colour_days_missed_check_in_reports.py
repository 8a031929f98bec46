"""colour_days_missed_check_in_reports: colour-mode draws, participants' colours, reportable missed check-ins

Revision ID: 0023
Revises: 0020
Create Date: 2026-12-02 10:00:00

A program in colour mode draws colour groups per site and open day (colour_days, one row per program, site
and day, with each colour's roll); a participant carries the colour staff assigned. A missed required
check-in records whether the program made it reportable (issue 15).
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0023"
down_revision = "0025"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "colour_days",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("program_id", _text(64), nullable=False),
        sa.Column("site", _text(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("program_version", sa.Integer(), nullable=False),
        sa.Column("colours", sa.JSON(), nullable=False),
        sa.Column("draws", sa.JSON(), nullable=False),
        sa.Column("drawn_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("program_id", "site", "day"),
    )
    op.create_index("ix_colour_days_program_id", "colour_days", ["program_id"])
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("colour", _text(32), nullable=True))
    with op.batch_alter_table("check_in_days") as batch:
        batch.add_column(sa.Column("missed_reportable", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("check_in_days") as batch:
        batch.drop_column("missed_reportable")
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("colour")
    op.drop_index("ix_colour_days_program_id", table_name="colour_days")
    op.drop_table("colour_days")
