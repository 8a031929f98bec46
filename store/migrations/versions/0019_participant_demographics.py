"""participant_demographics: optional answers for the equity report, apart from the clinical record

Revision ID: 0019
Revises: 0010
Create Date: 2026-12-01 14:00:00

One row per participant who was asked: the consent flag, closed-vocabulary answers (race,
ethnicity, sex, age band, payer; domain/demographics.py) and who recorded them (issue 21).
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0019"
down_revision = "0010"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "participant_demographics",
        sa.Column("participant_id", _text(40), sa.ForeignKey("participants.id"), primary_key=True),
        sa.Column("consented", sa.Boolean(), nullable=False),
        sa.Column("race", _text(48), nullable=True),
        sa.Column("ethnicity", _text(48), nullable=True),
        sa.Column("sex", _text(48), nullable=True),
        sa.Column("age_band", _text(48), nullable=True),
        sa.Column("payer", _text(48), nullable=True),
        sa.Column("recorded_by", _text(32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("participant_demographics")
