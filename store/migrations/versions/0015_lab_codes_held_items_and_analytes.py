"""drug-testing codes: explicit method overrides, per-code held items, admin-defined analytes

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-01 13:40:00

code_mappings.method_override: a clinic's explicit choice of method for a code (NULL: the code's
LOINC method decides). lab_quarantine gains the held code and the lab id it is mapped under (and
which MSH field that id came from). analyte_definitions: analytes an admin adds without a code
change (issue 19).
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0015"
down_revision = "0011"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("code_mappings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("method_override", _text(16), nullable=True))
    with op.batch_alter_table("lab_quarantine", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_code", _text(300), nullable=True))
        batch_op.add_column(sa.Column("lab_id", _text(120), nullable=True))
        batch_op.add_column(sa.Column("lab_id_source", _text(16), nullable=True))
    op.create_table(
        "analyte_definitions",
        sa.Column("key", _text(40), primary_key=True),
        sa.Column("label", _text(120), nullable=False),
        sa.Column("drug_class", _text(60), nullable=False),
        sa.Column("medication", _text(60), nullable=True),
        sa.Column("also_explained_by", sa.JSON(), nullable=False),
        sa.Column("initial_cutoff", sa.Float(), nullable=True),
        sa.Column("confirm_cutoff", sa.Float(), nullable=True),
        sa.Column("created_by", _text(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("analyte_definitions")
    with op.batch_alter_table("lab_quarantine", schema=None) as batch_op:
        batch_op.drop_column("lab_id_source")
        batch_op.drop_column("lab_id")
        batch_op.drop_column("held_code")
    with op.batch_alter_table("code_mappings", schema=None) as batch_op:
        batch_op.drop_column("method_override")
