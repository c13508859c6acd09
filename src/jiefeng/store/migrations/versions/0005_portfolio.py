"""The portfolio: the feature table (one row per account with its sweep features, see
service/feature_table) and the backtests run through the API (service/backtest_jobs).

Revision ID: 0005
Revises: 0003

Existing accounts get their row on their next write; until then a query folds them, as it does
any account whose row is not exact at the queried time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(128)
TIME = sa.String(32)
# The stored features as of this revision (a migration never reads the live catalog: a
# feature added later gets a migration of its own).
NUMBERS = ("score", "credit_limit", "available_credit", "utilization", "minimum_due",
           "revolving_balance", "installment_balance", "months_revolving", "deposits",
           "wealth_balance", "purchases_90d")


def upgrade() -> None:
    op.create_table(
        "account_features",
        sa.Column("account_id", ID, primary_key=True),
        sa.Column("clock_utc", TIME, nullable=False),
        sa.Column("stable_until_utc", TIME, nullable=True),
        sa.Column("own_status", sa.String(16), nullable=False),
        sa.Column("hold_codes", sa.String(400), nullable=False),
        sa.Column("opened_ordinal", sa.Integer, nullable=True),
        sa.Column("past_due_ordinal", sa.Integer, nullable=True),
        *(sa.Column(name, sa.Float, nullable=True) for name in NUMBERS),
        sa.Column("segment", ID, nullable=True),
    )
    op.create_index("ix_account_features_stable", "account_features", ["stable_until_utc"])
    op.create_table(
        "backtests",
        sa.Column("backtest_id", ID, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", ID, nullable=False),
        sa.Column("requested_at_utc", TIME, nullable=False),
        sa.Column("finished_at_utc", TIME, nullable=True),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("report_html", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_backtests_requested", "backtests", ["requested_at_utc"])


def downgrade() -> None:
    op.drop_index("ix_backtests_requested", "backtests")
    op.drop_table("backtests")
    op.drop_index("ix_account_features_stable", "account_features")
    op.drop_table("account_features")
