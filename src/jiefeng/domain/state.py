"""Account state: everything the rules need to remember about one account.

Windows of recent activity are bounded deques, trimmed as time passes, so an account's state
stays small however long it lives. `clone` is a cheap structural copy: containers are copied,
their items (tuples, frozen holds) are immutable and shared.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from jiefeng.domain.holds import Hold

MAX_WINDOW_ITEMS = 512  # cap on any window of recent events (TigerStyle: a limit on everything)
MAX_REMEMBERED_PURCHASES = 500  # approved purchases kept for refunds and appeals
REMEMBERED_PURCHASE_DAYS = 180
MAX_APPEALS = 100


@dataclass(slots=True)
class Statement:
    """One issued statement. Mutable only inside the fold's working copy."""

    statement_date: dt.date
    due_date: dt.date  # effective due date (moved past maintenance and migration)
    principal_fen: int
    paid_principal_fen: int = 0
    late_fee_fen: int = 0
    paid_late_fee_fen: int = 0
    overdue_since: dt.datetime | None = None
    bureau_notice_sent: bool = False
    bureau_reported: bool = False
    late_fee_units: int = 0  # late fee in 1/10,000 fen; late_fee_fen is its floor

    @property
    def principal_due_fen(self) -> int:
        return self.principal_fen - self.paid_principal_fen

    @property
    def late_fee_due_fen(self) -> int:
        return self.late_fee_fen - self.paid_late_fee_fen

    @property
    def owed_fen(self) -> int:
        return self.principal_due_fen + self.late_fee_due_fen

    def copy(self) -> Statement:
        return Statement(
            self.statement_date,
            self.due_date,
            self.principal_fen,
            self.paid_principal_fen,
            self.late_fee_fen,
            self.paid_late_fee_fen,
            self.overdue_since,
            self.bureau_notice_sent,
            self.bureau_reported,
            self.late_fee_units,
        )


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    event_id: str
    at: dt.datetime
    amount_fen: int
    merchant_id: str
    refunded_fen: int = 0


@dataclass(frozen=True, slots=True)
class BureauFact:
    product: str
    status: str
    days_past_due: int
    amount_fen: int
    at: dt.datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class Appeal:
    appeal_id: str
    hold_code: str
    submitted_at: dt.datetime
    statement: str
    purchase_event_ids: tuple[str, ...]
    status: str = "pending"  # pending | approved | rejected | lapsed (hold lifted otherwise) | void
    decided_at: dt.datetime | None = None
    decided_by: str | None = None
    reason: str = ""


@dataclass(slots=True)
class AccountState:
    account_id: str
    opened: bool = False
    opened_at: dt.datetime | None = None
    credit_limit_fen: int = 0
    statement_day: int = 1
    due_day: int = 9
    segment: str | None = None
    id_expires_on: dt.date | None = None

    clock: dt.datetime | None = None  # the latest time folded in (event or advance)
    events_applied: int = 0
    last_event_id: str | None = None

    # ledger
    unbilled_fen: int = 0
    credit_balance_fen: int = 0
    statements: list[Statement] = field(default_factory=list)
    next_statement_date: dt.date | None = None
    fees_accrued_through: dt.date | None = None  # late fee counted up to this local date
    purchases_total_fen: int = 0
    repayments_total_fen: int = 0

    # remembered activity
    purchases: dict[str, PurchaseRecord] = field(default_factory=dict)
    recent_purchases: deque = field(default_factory=deque)  # (at, event_id), last 90 days
    last_purchase_at: dt.datetime | None = None
    declined_purchases: deque = field(default_factory=deque)  # (at, event_id): appeals cite them
    recent_repayments: deque = field(default_factory=deque)  # (at, amount_fen, event_id), 90 days
    score: int | None = None
    score_at: dt.datetime | None = None
    score_dimensions: dict[str, int] = field(default_factory=dict)
    bureau: dict[str, BureauFact] = field(default_factory=dict)
    activities: deque = field(default_factory=deque)  # (at, category), trimmed to the window
    deposits_fen: int = 0
    wealth_balance_fen: int = 0

    # overdue and cure
    overdue_starts: deque = field(default_factory=deque)  # datetimes overdue began, 2 years

    # cash-out and brushing signals
    suspicious_purchases: deque = field(default_factory=deque)  # (at, merchant_id)
    quick_refunds: deque = field(default_factory=deque)  # (at, purchase_event_id)
    brushing_cycles: deque = field(default_factory=deque)  # (at, purchase_event_id)
    cash_out_signals: deque = field(default_factory=deque)  # (at, signal, ref)
    last_cash_out_signal_at: dt.datetime | None = None

    # account security
    known_devices: dict = field(default_factory=dict)  # device_id -> first seen, oldest first
    new_devices: deque = field(default_factory=deque)  # at
    bank_card_changes: deque = field(default_factory=deque)  # at
    phone_changes: deque = field(default_factory=deque)  # at
    last_sensitive_change_at: dt.datetime | None = None
    security_signals: tuple[str, ...] = ()

    # password
    password_failures: int = 0

    # dormancy
    dormancy_anchor: dt.datetime | None = None  # opening, or the last reopening
    dormancy_notice_sent: bool = False
    id_notice_sent_for: dt.date | None = None

    holds: dict[str, Hold] = field(default_factory=dict)
    appeals: dict[str, Appeal] = field(default_factory=dict)
    sweeps_seen: int = 0  # number of portfolio sweeps already evaluated for this account

    def clone(self) -> AccountState:
        copy = AccountState.__new__(AccountState)
        for name in AccountState.__slots__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            if isinstance(value, (list, dict, set, deque)):  # containers copy, items are shared
                if name == "statements":
                    value = [s.copy() for s in value]
                else:
                    value = value.copy()
            setattr(copy, name, value)
        return copy

    # --- ledger views -------------------------------------------------------------------------

    @property
    def billed_owed_fen(self) -> int:
        return sum(s.owed_fen for s in self.statements)

    @property
    def principal_owed_fen(self) -> int:
        if not self.statements:  # the usual case, asked for every purchase
            return self.unbilled_fen
        return self.unbilled_fen + sum(s.principal_due_fen for s in self.statements)

    @property
    def available_credit_fen(self) -> int:
        used = max(0, self.principal_owed_fen - self.credit_balance_fen)
        return max(0, self.credit_limit_fen - used)

    def past_due_statements(self) -> list[Statement]:
        return [s for s in self.statements if s.overdue_since is not None and s.owed_fen > 0]

    def summary(self) -> dict[str, Any]:
        return {
            "credit_limit_fen": self.credit_limit_fen,
            "available_credit_fen": self.available_credit_fen,
            "unbilled_fen": self.unbilled_fen,
            "billed_owed_fen": self.billed_owed_fen,
            "credit_balance_fen": self.credit_balance_fen,
            "past_due_fen": sum(s.owed_fen for s in self.past_due_statements()),
        }
