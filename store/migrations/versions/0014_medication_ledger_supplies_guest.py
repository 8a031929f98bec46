"""medication safety: take-home supplies name their dates; orders keep their dose ledger; guest copies

Revision ID: 0014
Revises: 0015
Create Date: 2026-12-01 13:00:00

dispenses.covered_dates: the days a take-home supply covers (so two supplies for one day are
visible as the overlap they are). medication_orders.ledger: the dose ledger the order's workflow
keeps (domain.ledger.DoseLedger: outcomes, supplies, injections; and closed days) so reports count
adherence with the same function as the dashboard. medication_orders.home_order_id: set on a
guest-dosing copy of an order.
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0014"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dispenses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("covered_dates", sa.JSON(), nullable=True))
    with op.batch_alter_table("medication_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ledger", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("home_order_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("medication_orders", schema=None) as batch_op:
        batch_op.drop_column("home_order_id")
        batch_op.drop_column("ledger")
    with op.batch_alter_table("dispenses", schema=None) as batch_op:
        batch_op.drop_column("covered_dates")
