"""Token revocation list: revoked customer tokens and spent sweep dry-run tokens.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.String(128)
TIME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(160), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account_id", ID, nullable=True),
        sa.Column("revoked_at_utc", TIME, nullable=False),
        sa.Column("revoked_by", ID, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("revoked_tokens")
