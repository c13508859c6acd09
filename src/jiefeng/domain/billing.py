"""The ledger's clock: statements issued on the statement day, interest and late fees accrued
for each whole local day (the arithmetic is in `jiefeng.domain.ledger`). Whether a statement's
minimum was met is the overdue cause's business (`causes/overdue.py`).
"""

from __future__ import annotations

import datetime as dt

from jiefeng.domain import ledger as L
from jiefeng.domain.clock import (
    local_date,
    local_midnight,
    local_midnight_shifted,
    next_day_of_month,
)
from jiefeng.domain.effects import STATEMENT_ISSUED, Effect
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy


def due_date_for(statement_date: dt.date, due_day: int) -> dt.date:
    return next_day_of_month(statement_date, due_day)


def minimum_terms(policy: Policy) -> L.MinimumTerms:
    billing = policy.billing
    return L.MinimumTerms(billing.minimum_payment_pct, billing.minimum_payment_floor_fen)


def issue_statement(
    state: AccountState, at: dt.datetime, policy: Policy, effects: list[Effect]
) -> None:
    statement_date = state.next_statement_date
    assert statement_date is not None
    state.next_statement_date = next_day_of_month(statement_date, state.statement_day)
    due = due_date_for(statement_date, state.due_day)
    statement = L.issue_statement(state.ledger, statement_date, due, minimum_terms(policy))
    if statement is None:
        return
    effects.append(
        Effect(
            STATEMENT_ISSUED,
            at,
            state.account_id,
            None,
            f"clock:statement:{statement_date}",
            {
                "statement_date": statement_date.isoformat(),
                "due_date": due.isoformat(),
                "amount_fen": statement.billed_fen,
                "new_balance_fen": statement.new_balance_fen,
                "minimum_due_fen": statement.minimum_due_fen,
            },
        )
    )


def accrue(state: AccountState, now: dt.datetime, policy: Policy) -> None:
    """Interest and late fees for the whole local days that passed (see ledger.accrue)."""
    ledger = state.ledger
    if not ledger.statements:
        return  # nothing accrues without a statement; the day count still moves on
    through = ledger.accrued_through
    if through is not None and now < local_midnight_shifted(through, 1, policy.zone):
        return  # still the day already counted: the usual case, without a local-date lookup
    billing = policy.billing
    L.accrue(ledger, local_date(now, policy.zone),
             billing.revolving_interest_daily_bp, billing.late_fee_daily_bp)


def on_time(state: AccountState, at: dt.datetime, policy: Policy, effects: list[Effect]) -> None:
    """Accrue to `at`, then issue every statement whose day has come."""
    tz = policy.zone
    accrue(state, at, policy)
    while (
        state.next_statement_date is not None
        and local_midnight(state.next_statement_date, tz) <= at
    ):
        issue_statement(state, at, policy, effects)


def next_statement_at(state: AccountState, policy: Policy) -> dt.datetime | None:
    """The next statement's instant, if after the state's clock."""
    if state.next_statement_date is None:
        return None
    t = local_midnight(state.next_statement_date, policy.zone)
    return t if state.clock is not None and t > state.clock else None
