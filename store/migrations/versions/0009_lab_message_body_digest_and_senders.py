"""lab messages keyed by body digest (conflicting control ids kept); lab tokens bound to a sender

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-01 12:45:00

The unique (sender, control_id) on lab_messages made a second message with a reused control id
impossible to store. It becomes an index; uniqueness moves to `replay_key` (sender, control id,
body digest: the same message) and `claim_key` (sender, control id: held by the first message).
Existing rows get both keys, computed as the code does (unparseable ones no claim_key).
Existing lab tokens stay unbound: their messages are kept and answered AR until an admin issues
a bound token (README "Lab senders").
"""

import hashlib

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def _key(*parts: str) -> str:
    # Must match ingest.lab._key.
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()


def upgrade() -> None:
    from domain.lab_intake import body_digest

    bind = op.get_bind()
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sender_application", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True)
        )
        batch_op.add_column(sa.Column("sender_facility", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))

    if bind.dialect.name == "postgresql":
        op.drop_constraint("lab_messages_sender_control_id_key", "lab_messages", type_="unique")
        batch = op.batch_alter_table("lab_messages", schema=None)
    else:
        # SQLite's unique constraint has no name: name it through a convention to drop it.
        batch = op.batch_alter_table(
            "lab_messages",
            schema=None,
            recreate="always",
            naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s"},
        )
    with batch as batch_op:
        if bind.dialect.name != "postgresql":
            batch_op.drop_constraint("uq_lab_messages_sender_control_id", type_="unique")
        batch_op.add_column(sa.Column("body_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("replay_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("claim_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("conflicts_with", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("token_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.create_unique_constraint("uq_lab_messages_replay_key", ["replay_key"])
        batch_op.create_unique_constraint("uq_lab_messages_claim_key", ["claim_key"])
        batch_op.create_index("ix_lab_messages_sender_control_id", ["sender", "control_id"], unique=False)

    messages = sa.table(
        "lab_messages",
        sa.column("id", sa.Integer),
        sa.column("sender", sa.String),
        sa.column("control_id", sa.String),
        sa.column("raw", sa.Text),
        sa.column("body_sha256", sa.String),
        sa.column("replay_key", sa.String),
        sa.column("claim_key", sa.String),
        sa.column("status", sa.String),
    )
    for row in bind.execute(
        sa.select(messages.c.id, messages.c.sender, messages.c.control_id, messages.c.raw, messages.c.status)
    ).all():
        digest = body_digest(row.raw)
        bind.execute(
            messages.update()
            .where(messages.c.id == row.id)
            .values(
                body_sha256=digest,
                replay_key=_key(row.sender, row.control_id, digest),
                # Messages we could not parse (rejected) hold no control id, as in the code.
                claim_key=None if row.status == "rejected" else _key(row.sender, row.control_id),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("lab_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_lab_messages_sender_control_id")
        batch_op.drop_constraint("uq_lab_messages_claim_key", type_="unique")
        batch_op.drop_constraint("uq_lab_messages_replay_key", type_="unique")
        for column in ("token_id", "conflicts_with", "claim_key", "replay_key", "body_sha256"):
            batch_op.drop_column(column)
        batch_op.create_unique_constraint("uq_lab_messages_sender_control_id", ["sender", "control_id"])
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("sender_facility")
        batch_op.drop_column("sender_application")
