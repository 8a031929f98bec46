"""keyed audit chain: per-row MAC algorithm and key id, shown participants, the cut-over marker

Rows written before this migration keep their plain SHA-256 hash and are marked mac_alg = 'sha256'; every
row written after it is an HMAC-SHA256 under an audit key named in key_id (store/audit.py).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-01 12:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shown", sa.Text(), nullable=True))
        # Existing rows are the unkeyed kind; the server default marks them so in one statement.
        batch_op.add_column(sa.Column("mac_alg", sa.String(length=16), nullable=False, server_default="sha256"))
        batch_op.add_column(sa.Column("key_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keyed_from", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("keyed_from")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("key_id")
        batch_op.drop_column("mac_alg")
        batch_op.drop_column("shown")
