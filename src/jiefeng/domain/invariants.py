"""Invariants of an account's state, asserted after every applied event and advance when
enabled (tests enable them; `JIEFENG_CHECK_INVARIANTS=1` does in the service) and on every
snapshot load. A violation is a bug in the fold, never bad input: bad input is rejected before
it reaches the fold.

- a hold that lifts with time lifts after it was placed (`releases_at > since`), and none is
  still held once its `releases_at` has passed;
- no hold was placed after the state's clock;
- a pending appeal names a hold the account holds;
- every sliding window (recent purchases, signals, device and card changes...) is in time
  order, nothing in it is after the clock, and it is trimmed (bounded);
- the state's deadline floor, when it has one, is not after the next deadline (an advance
  before the floor skips the deadlines: one it hid would never fire);
- the ledger's amounts are consistent: nothing is negative, no statement has more paid of a
  kind than it billed, and the books balance: what is owed less any credit equals everything
  ever charged (purchases, billed fees, interest and installment fees) plus what accrued and
  is not billed yet, less everything ever repaid or refunded.
"""

from __future__ import annotations

import datetime as dt

from jiefeng.domain.state import AccountState

ENABLED = False  # set by the tests and by the service's debug switch

# The state's sliding windows: time-ordered, trimmed by time (so far below this bound).
WINDOWS = ("declined_purchases", "recent_repayments", "activities",
           "overdue_starts", "suspicious_purchases", "quick_refunds", "brushing_cycles",
           "cash_out_signals", "new_devices", "bank_card_changes", "phone_changes")
MAX_WINDOW_ENTRIES = 10_000


class InvariantViolation(AssertionError):
    pass


def _fail(state: AccountState, what: str) -> None:
    raise InvariantViolation(f"account {state.account_id} at {state.clock}: {what}")


def check_deadline_floor(state: AccountState) -> None:
    floor = state.deadline_floor
    if floor is None:
        return
    from jiefeng.domain.rules import next_deadline  # the rules import the state, not this

    floor_at, policy, scopes = floor
    upcoming = next_deadline(state, policy, scopes)
    if upcoming is not None and (floor_at is None or upcoming < floor_at):
        _fail(state, f"the deadline floor ({floor_at}) hides a deadline at {upcoming}")


def check_invariants(state: AccountState) -> None:
    clock = state.clock
    if clock is None:
        return
    if state.purchase_available_fen is not None:
        _fail(state, "a purchase's available credit outlived its decision")
    for code, hold in state.holds.items():
        if hold.since > clock:
            _fail(state, f"hold {code} placed at {hold.since}, after the clock")
        if hold.releases_at is not None:
            if hold.releases_at <= hold.since:
                _fail(state, f"hold {code} lifts at {hold.releases_at}, not after its "
                             f"placement at {hold.since}")
            if hold.releases_at <= clock:
                _fail(state, f"hold {code} should have lifted at {hold.releases_at}")
    for appeal in state.appeals.values():
        if appeal.status == "pending" and appeal.hold_code not in state.holds:
            _fail(state, f"appeal {appeal.appeal_id} is pending for {appeal.hold_code}, "
                         "which the account does not hold")
    for name in WINDOWS:
        window = getattr(state, name)
        if len(window) > MAX_WINDOW_ENTRIES:
            _fail(state, f"window {name} holds {len(window)} entries: it is not trimmed")
        previous = None
        for entry in window:
            at = entry if isinstance(entry, dt.datetime) else entry[0]
            if at > clock or (previous is not None and at < previous):
                _fail(state, f"window {name} is not in time order up to the clock ({at})")
            previous = at
    problem = state.purchases.problem(clock)
    if problem is not None:
        _fail(state, f"remembered purchases: {problem}")
    check_deadline_floor(state)
    ledger = state.ledger
    if ledger.credit_balance_fen < 0 or ledger.unbilled_fen < 0:
        _fail(state, "a negative credit balance or unbilled amount")
    settled_dates = [s.statement_date for s in ledger.history]
    if settled_dates != sorted(settled_dates):
        _fail(state, "the settled statements are not in date order")
    for statement in ledger.statements:
        for billed, paid, kind in (
                (statement.fees_fen, statement.paid_fees_fen, "fees"),
                (statement.interest_fen, statement.paid_interest_fen, "interest"),
                (statement.installments_fen, statement.paid_installments_fen, "installments"),
                (statement.principal_fen, statement.paid_principal_fen, "principal")):
            if paid < 0 or billed < 0 or paid > billed:
                _fail(state, f"statement {statement.statement_date}: {kind} paid {paid} of "
                             f"{billed} billed")
    owed_fen = ledger.total_owed_fen
    if owed_fen < 0:
        _fail(state, f"owes {owed_fen}")
    # The books balance: what is owed, less any credit, is everything ever charged plus what
    # accrued and is not billed yet, less everything ever repaid or refunded. A fen created
    # or lost anywhere in billing, allocation, installments or refunds breaks this.
    books_fen = (ledger.charged_fen + ledger.accrued_fees_fen + ledger.accrued_interest_fen
                 - ledger.credited_fen)
    if owed_fen - ledger.credit_balance_fen != books_fen:
        _fail(state, f"owes {owed_fen} with a credit of {ledger.credit_balance_fen}, but "
                     f"charged {ledger.charged_fen}, accrued "
                     f"{ledger.accrued_fees_fen + ledger.accrued_interest_fen} and was credited "
                     f"{ledger.credited_fen}")
