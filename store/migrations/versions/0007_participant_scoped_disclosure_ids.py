"""participant-scoped disclosure ids: room for the longer ids wherever one is stored

Disclosure ids now begin with the participant id (domain.disclosure.disclosure_id, at most 255
characters). Rows recorded under the old ids keep them; nothing is rewritten, since an id already
sent is the recipient's idempotency key (webhook-id) and names a running workflow.

Revision ID: 0007
Revises: 0018
Create Date: 2026-12-01 12:45:00
"""

import sqlmodel.sql.sqltypes
from alembic import op

revision = "0007"
down_revision = "0018"
branch_labels = None
depends_on = None

# (table, column, nullable, old length, new length)
WIDENED = [
    ("disclosures", "id", False, 200, 300),
    ("disclosures", "corrects", True, 200, 300),
    ("email_outbox", "id", False, 200, 300),
    ("alerts", "subject_id", False, 80, 300),
    ("audit_events", "subject_id", True, 200, 300),
]


def _alter(new: bool) -> None:
    for table, column, nullable, old_length, new_length in WIDENED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_nullable=nullable,
                existing_type=sqlmodel.sql.sqltypes.AutoString(length=old_length if new else new_length),
                type_=sqlmodel.sql.sqltypes.AutoString(length=new_length if new else old_length),
            )


def upgrade() -> None:
    _alter(new=True)


def downgrade() -> None:
    _alter(new=False)
