"""The per-account feature snapshot that sweep criteria read (the catalog is docs/criteria.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jiefeng.domain.clock import local_date
from jiefeng.domain.state import PURCHASES_WINDOW, AccountState
from jiefeng.policy.schema import Policy

__all__ = ["PURCHASES_WINDOW", "features"]


def features(state: AccountState, at: dt.datetime, policy: Policy) -> dict[str, Any]:
    """The features of `state` as of `at` (money in yuan, as the criteria are written)."""
    tz = policy.zone
    today = local_date(at, tz)
    limit_fen = state.credit_limit_fen
    ledger = state.ledger
    used_fen = max(0, ledger.total_owed_fen - ledger.credit_balance_fen)
    cutoff = at - PURCHASES_WINDOW
    return {
        "score": state.score,
        "credit_limit": limit_fen / 100,
        "available_credit": state.available_credit_fen / 100,
        "utilization": min(1.0, used_fen / limit_fen) if limit_fen else 0.0,
        "days_past_due": ledger.days_past_due(today),
        "minimum_due": ledger.minimum_due_fen() / 100,
        "revolving_balance": ledger.revolving_fen / 100,
        "installment_balance": ledger.installment_balance_fen / 100,
        "months_revolving": ledger.months_revolving,
        "deposits": state.deposits_fen / 100,
        "wealth_balance": state.wealth_balance_fen / 100,
        "account_age_days": (today - local_date(state.opened_at, tz)).days
        if state.opened_at
        else 0,
        "purchases_90d": state.purchases.count_since(cutoff),
        "segment": state.segment,
    }
