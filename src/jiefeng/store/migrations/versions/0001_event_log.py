"""Event log, account snapshots, effects, appeals.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")
ID = sa.String(128)
TIME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("event_id", ID, nullable=False, unique=True),
        sa.Column("account_id", ID, nullable=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("at_utc", TIME, nullable=False),
        sa.Column("actor", ID, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(200), nullable=True),
        sa.Column("ingested_at_utc", TIME, nullable=False),
    )
    op.create_index("ix_events_account_time", "events", ["account_id", "at_utc", "seq"])
    # Operator commands only: a partial index costs account events nothing on insert.
    op.create_index("ix_events_operator_type", "events", ["type", "seq"],
                    sqlite_where=sa.text("account_id IS NULL"),
                    postgresql_where=sa.text("account_id IS NULL"))
    op.create_table(
        "accounts",
        sa.Column("account_id", ID, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("events_applied", sa.BigInteger, nullable=False),
        sa.Column("snapshot", sa.LargeBinary, nullable=True),
        sa.Column("snapshot_format", sa.Integer, nullable=False),
        sa.Column("snapshot_events", sa.BigInteger, nullable=False),
        sa.Column("clock_utc", TIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("segment", ID, nullable=True),
        sa.Column("hold_codes", sa.String(400), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
    )
    op.create_table(
        "effects",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("code", sa.String(40), nullable=True),
        sa.Column("at_utc", TIME, nullable=False),
        sa.Column("cause", ID, nullable=True),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_effects_account", "effects", ["account_id", "seq"])
    op.create_index("ix_effects_kind_code", "effects", ["kind", "code"])
    op.create_table(
        "appeals",
        sa.Column("appeal_id", ID, primary_key=True),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("hold_code", sa.String(40), nullable=False),
        sa.Column("submitted_at_utc", TIME, nullable=False),
        sa.Column("sla_due_at_utc", TIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("decided_at_utc", TIME, nullable=True),
        sa.Column("decided_by", ID, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_appeals_status", "appeals", ["status", "submitted_at_utc"])


def downgrade() -> None:
    op.drop_table("appeals")
    op.drop_table("effects")
    op.drop_table("accounts")
    op.drop_table("events")
