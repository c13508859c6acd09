"""Checkpoints: states of an account part-way through its history, so that a late event is
folded from the nearest one before it instead of from the account's first event.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.String(128)
TIME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "account_checkpoints",
        sa.Column("account_id", ID, primary_key=True),
        # The fold position it is taken after: the (at_utc, seq) of a stored event.
        sa.Column("at_utc", TIME, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("effects_kept", sa.BigInteger, nullable=False),
        sa.Column("state_format", sa.Integer, nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_account_checkpoints_at", "account_checkpoints", ["at_utc"])


def downgrade() -> None:
    op.drop_index("ix_account_checkpoints_at", "account_checkpoints")
    op.drop_table("account_checkpoints")
