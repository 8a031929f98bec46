"""forensic_screenings_report_basis: clinical or forensic per screening, content hash of each report

Revision ID: 0020
Revises: 0021
Create Date: 2026-12-01 14:05:00

A screening is forensic (reportable to a court or employer) or clinical (treatment only), by the
program's default unless staff set it with a reason (issue 16). Each disclosure records the SHA-256
of the document the recipient received, for the accounting of disclosures (42 CFR 2.24).
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0020"
down_revision = "0021"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("screenings") as batch:
        batch.add_column(sa.Column("forensic", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("forensic_reason", _text(500), nullable=True))
        batch.add_column(sa.Column("forensic_set_by", _text(32), nullable=True))
        batch.add_column(sa.Column("forensic_set_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("disclosures") as batch:
        batch.add_column(sa.Column("content_hash", _text(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("disclosures") as batch:
        batch.drop_column("content_hash")
    with op.batch_alter_table("screenings") as batch:
        batch.drop_column("forensic_set_at")
        batch.drop_column("forensic_set_by")
        batch.drop_column("forensic_reason")
        batch.drop_column("forensic")
