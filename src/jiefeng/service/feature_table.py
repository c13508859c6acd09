"""The feature table: one row per account with its sweep features, kept by every write.

Each write of an account row (ingest, replay, advance) also writes its `account_features` row,
in the same transaction. A row holds the features as of the account's clock, except the two
that move with the calendar alone, which are stored as instants and computed at query time:

- `account_age_days` = today - `opened_ordinal` (the local opening day, `date.toordinal()`),
- `days_past_due`    = max(0, today - `past_due_ordinal`) (the due day of the oldest statement
  whose minimum is past due; NULL when none), `today` being the query's local day.

Everything else that time alone changes is bounded by `stable_until_utc`, the first instant at
which the row stops being exact: the account's next deadline (a statement, a judgement, a
bureau date, a hold that lifts, a sweep), the next local midnight while interest or late fees
accrue, the moment the oldest purchase leaves the 90-day window, the next policy activation.
A query as of T reads the rows with `clock_utc <= T < stable_until_utc` (or no bound) straight
from SQL; the other accounts, and any without a row, are folded to T as before. So a sweep dry
run over a portfolio whose clocks are kept current (`advance_all`) is one SQL query, and its
answer is the fold's, row for row (see tests/test_feature_table.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jiefeng.domain import holds as H
from jiefeng.domain import rules
from jiefeng.domain.clock import DAY, local_date, local_midnight, zone
from jiefeng.domain.features import PURCHASES_WINDOW, features
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.feature_catalog import FEATURES
from jiefeng.policy.schema import Policy
from jiefeng.store import schema as t
from jiefeng.store.features import FEATURE_ROW_COLUMNS

# Features read from the row as stored; the time-only ones are computed in the query.
TIME_ONLY_FEATURES = ("account_age_days", "days_past_due")
STORED_FEATURES = tuple(name for name in FEATURES if name not in TIME_ONLY_FEATURES)
# feature_values builds its tuple in this order: the table's columns.
assert FEATURE_ROW_COLUMNS == ("account_id", "clock_utc", "stable_until_utc", "own_status",
                               "hold_codes", "opened_ordinal", "past_due_ordinal",
                               *STORED_FEATURES), "feature_values is out of step with the table"
_EPSILON = dt.timedelta(microseconds=1)


def _next_accrual(state: AccountState, tz: Any) -> dt.datetime | None:
    """The first local midnight at which interest or a late fee is added (ledger.accrue)."""
    ledger = state.ledger
    if not ledger.statements:
        return None
    today = local_date(state.clock, tz)
    if ledger.past_due_minimum_fen() > 0:
        return local_midnight(today + DAY, tz)  # late fees: every day
    # Interest runs from the day after the due day and is added once that day is whole.
    days = [max(today + DAY, s.due_date + 2 * DAY) for s in ledger.statements
            if s.principal_fen > s.paid_principal_fen]
    return local_midnight(min(days), tz) if days else None


def stable_until(state: AccountState, policy: Policy, scopes: Scopes) -> dt.datetime | None:
    """The first instant after the clock at which time alone may change the row."""
    clock = state.clock
    assert clock is not None
    candidates = [rules.next_deadline(state, scopes.policy_for(clock, policy), scopes)]
    candidates.append(_next_accrual(state, zone(scopes.policy_for(clock, policy).timezone)))
    window = PURCHASES_WINDOW
    oldest_inside = state.purchases.first_at_since(clock - window)
    if oldest_inside is not None:
        candidates.append(oldest_inside + window + _EPSILON)  # it stops counting after that
    later = [a.at for a in scopes.policy_activations if a.at > clock]
    if later:
        candidates.append(min(later))
    present = [c for c in candidates if c is not None]
    return min(present) if present else None


def feature_values(state: AccountState, policy: Policy, scopes: Scopes) -> tuple | None:
    """The account's `account_features` row as the writers carry it (a tuple in
    FEATURE_ROW_COLUMNS order), or None for an account not open."""
    if not state.opened or state.clock is None:
        return None
    clock = state.clock
    current = scopes.policy_for(clock, policy)
    tz = zone(current.timezone)
    values = features(state, clock, current)
    until = stable_until(state, policy, scopes)
    oldest = state.ledger.oldest_past_due()
    return (
        state.account_id,
        t.utc_text(clock),
        t.utc_text(until) if until is not None else None,
        H.derive_status(list(state.holds.values())),
        ",".join(sorted(state.holds)),
        local_date(state.opened_at, tz).toordinal() if state.opened_at else None,
        oldest.due_date.toordinal() if oldest is not None else None,
        *[values[name] for name in STORED_FEATURES],
    )


def feature_row(state: AccountState, policy: Policy, scopes: Scopes) -> dict[str, Any] | None:
    """The account's `account_features` row by column name, or None for an account not open."""
    values = feature_values(state, policy, scopes)
    return None if values is None else dict(zip(FEATURE_ROW_COLUMNS, values, strict=True))


def own_status_at(row_status: str, segment: str | None, account_id: str, at: dt.datetime,
                  scopes: Scopes) -> str:
    """The status at `at` from a fresh row: its own holds, plus maintenance and migration."""
    if row_status != "active":
        return row_status
    if scopes.in_maintenance(at, segment) or scopes.migrating(at, account_id, segment):
        return "frozen"
    return "active"

