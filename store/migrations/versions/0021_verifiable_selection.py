"""verifiable_selection: per-period committed seeds and the recorded inputs of each draw

Revision ID: 0021
Revises: 0016
Create Date: 2026-12-01 14:20:00

selection_periods holds each program period's sealed seed, its published commitment, the optional
beacon and the reveal; selection_draws gains what anyone needs to recompute a draw (issue 21).
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0021"
down_revision = "0016"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "selection_periods",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("program", _text(64), nullable=False),
        sa.Column("period", _text(7), nullable=False),
        sa.Column("seed_sealed", _text(200), nullable=False),
        sa.Column("commitment", _text(64), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.Column("beacon", _text(200), nullable=True),
        sa.Column("first_roll_at", sa.DateTime(), nullable=True),
        sa.Column("revealed_at", sa.DateTime(), nullable=True),
        sa.Column("seed_revealed", _text(64), nullable=True),
        sa.UniqueConstraint("program", "period"),
    )
    with op.batch_alter_table("selection_draws") as batch:
        batch.add_column(sa.Column("verifiable", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("draw_minute", _text(5), nullable=True))
        batch.add_column(sa.Column("inputs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("selection_draws") as batch:
        batch.drop_column("inputs")
        batch.drop_column("draw_minute")
        batch.drop_column("verifiable")
    op.drop_table("selection_periods")
