"""Account state: everything the rules need to remember about one account.

Windows of recent activity are bounded lists, trimmed as time passes, so an account's state
stays small however long it lives. Lists, not deques: most windows are empty or short, and an
empty deque costs 760 bytes against a list's 56 (eleven windows were a quarter of a state's
memory); trimming a short list from the front is as cheap. `clone` is a cheap structural
copy: containers are copied, their items (tuples, frozen holds) are immutable and shared.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from jiefeng.domain.holds import Hold
from jiefeng.domain.ledger import Ledger, Statement
from jiefeng.domain.pickled import by_fields
from jiefeng.domain.remembered import PurchaseRecord, RememberedPurchases

__all__ = ["AccountState", "Appeal", "BureauFact", "DeclinedPurchase", "PurchaseRecord",
           "Statement"]

MAX_WINDOW_ITEMS = 512  # cap on any window of recent events (TigerStyle: a limit on everything)
# Approved purchases kept for refunds, plans and appeals: as many as any window keeps, so the
# 90-day window read from them (`AccountState.recent_purchases`) is the window itself.
MAX_REMEMBERED_PURCHASES = MAX_WINDOW_ITEMS
REMEMBERED_PURCHASE_DAYS = 180
PURCHASES_WINDOW = dt.timedelta(days=90)  # what "recent purchases" means, for features too
MAX_APPEALS = 100


class DeclinedPurchase(NamedTuple):
    """A declined purchase attempt: appeals cite it, the self-check lists it with its codes.

    A tuple starting with its time, so the windows' trimming applies to it as it is."""

    at: dt.datetime
    event_id: str
    amount_fen: int
    merchant_id: str
    codes: tuple[str, ...]  # why it was declined, highest precedence first


@dataclass(frozen=True, slots=True)
class BureauFact:
    product: str
    status: str
    days_past_due: int
    amount_fen: int
    at: dt.datetime
    event_id: str

    def __reduce__(self) -> tuple:
        return by_fields(self)  # the same bytes compiled or not (jiefeng.domain.pickled)


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

    def __reduce__(self) -> tuple:
        return by_fields(self)  # the same bytes compiled or not (jiefeng.domain.pickled)


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

    # ledger: all money owed and paid (jiefeng.domain.ledger); the billing calendar here
    ledger: Ledger = field(default_factory=Ledger)
    next_statement_date: dt.date | None = None
    purchases_total_fen: int = 0
    repayments_total_fen: int = 0

    # remembered activity
    purchases: RememberedPurchases = field(default_factory=RememberedPurchases)
    last_purchase_at: dt.datetime | None = None
    declined_purchases: list = field(default_factory=list)  # DeclinedPurchase, 180 days
    recent_repayments: list = field(default_factory=list)  # (at, amount_fen, event_id), 90 days
    score: int | None = None
    score_at: dt.datetime | None = None
    score_dimensions: dict[str, int] = field(default_factory=dict)
    bureau: dict[str, BureauFact] = field(default_factory=dict)
    activities: list = field(default_factory=list)  # (at, category), trimmed to the window
    deposits_fen: int = 0
    wealth_balance_fen: int = 0

    # overdue and cure
    overdue_starts: list = field(default_factory=list)  # datetimes overdue began, 2 years

    # cash-out and brushing signals
    suspicious_purchases: list = field(default_factory=list)  # (at, merchant_id)
    quick_refunds: list = field(default_factory=list)  # (at, purchase_event_id)
    brushing_cycles: list = field(default_factory=list)  # (at, purchase_event_id)
    cash_out_signals: list = field(default_factory=list)  # (at, signal, ref)
    last_cash_out_signal_at: dt.datetime | None = None

    # account security
    known_devices: dict = field(default_factory=dict)  # device_id -> first seen, oldest first
    new_devices: list = field(default_factory=list)  # at
    bank_card_changes: list = field(default_factory=list)  # at
    phone_changes: list = field(default_factory=list)  # at
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

    # Not part of what the account is: a lower bound on the next deadline, as (instant or
    # None for none at all, policy, scopes) it was computed under, so that an advance before
    # it skips computing the deadline (`core.advance_to`). Never pickled nor compared; reset
    # to None by whatever may bring a deadline earlier (see `core.KEEPS_DEADLINE_FLOOR`).
    deadline_floor: tuple | None = field(default=None, compare=False, repr=False)
    # Not part of what the account is either: the available credit while a purchase is being
    # handled, computed once before the causes react (cash-out reads it) and read again by the
    # decision; the causes' signals never move the ledger, so both see the same figure.
    # None outside a purchase; never pickled nor compared.
    purchase_available_fen: int | None = field(default=None, compare=False, repr=False)
    # Not part of what the account is: the fold's caller never reads purchase decisions (a
    # backtest, a state as of a moment), so none is built. Each purchase is still decided and
    # its outcome applied the same way; only its PURCHASE_DECIDED effect is left out (about a
    # twelfth of the fold on a portfolio where half the events are purchases). Never pickled
    # nor compared; False once unpickled.
    omits_decisions: bool = field(default=False, compare=False, repr=False)

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        # The slots' default pickling, without the deadline floor (snapshots stay as they were
        # and never hold a policy) and the purchase's available credit.
        return None, {name: getattr(self, name) for name in _PICKLED_SLOTS}

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        for name, value in state[1].items():
            object.__setattr__(self, name, value)
        for name, value in _TRANSIENT_SLOTS.items():  # never pickled: they start afresh
            object.__setattr__(self, name, value)

    def clone(self) -> AccountState:
        copy = AccountState.__new__(AccountState)
        for name in _SLOTS:
            value = getattr(self, name)
            if isinstance(value, (list, dict, set)):  # containers copy, items are shared
                value = value.copy()
            elif name in ("ledger", "purchases"):
                value = value.copy()
            setattr(copy, name, value)
        return copy

    @property
    def recent_purchases(self) -> list[tuple[dt.datetime, str]]:
        """(at, event_id) of the approved purchases in the PURCHASES_WINDOW up to the last one,
        oldest first: read from the remembered purchases, which hold them all (a window of its
        own kept a second copy, a sixth of a state)."""
        if self.last_purchase_at is None:
            return []
        return self.purchases.since(self.last_purchase_at - PURCHASES_WINDOW)

    # --- ledger views -------------------------------------------------------------------------

    @property
    def statements(self) -> list[Statement]:
        return self.ledger.statements

    @property
    def unbilled_fen(self) -> int:
        return self.ledger.unbilled_fen

    @property
    def credit_balance_fen(self) -> int:
        return self.ledger.credit_balance_fen

    @property
    def billed_owed_fen(self) -> int:
        return self.ledger.billed_owed_fen

    @property
    def available_credit_fen(self) -> int:
        return self.ledger.available_fen(self.credit_limit_fen)

    def available_for_purchase_fen(self) -> int:
        """While a purchase is handled, the available credit computed once before the causes
        reacted (`purchase_available_fen`); otherwise computed now."""
        available_fen = self.purchase_available_fen
        return self.available_credit_fen if available_fen is None else available_fen

    def past_due_statements(self) -> list[Statement]:
        return self.ledger.past_due_statements()

    def summary(self) -> dict[str, Any]:
        ledger = self.ledger
        return {
            "credit_limit_fen": self.credit_limit_fen,
            "available_credit_fen": self.available_credit_fen,
            "unbilled_fen": ledger.unbilled_fen,
            "billed_owed_fen": ledger.billed_owed_fen,
            "credit_balance_fen": ledger.credit_balance_fen,
            "past_due_fen": ledger.past_due_minimum_fen(),
            "minimum_due_fen": ledger.minimum_due_fen(),
            "revolving_fen": ledger.revolving_fen,
            "installment_balance_fen": ledger.installment_balance_fen,
            "total_owed_fen": ledger.total_owed_fen,
        }


# Caches of one process or one decision, and how one fold runs: never pickled, never compared;
# once unpickled, these values.
_TRANSIENT_SLOTS = {"deadline_floor": None, "purchase_available_fen": None,
                    "omits_decisions": False}
_SLOTS = tuple(f.name for f in fields(AccountState))
_PICKLED_SLOTS = tuple(name for name in _SLOTS if name not in _TRANSIENT_SLOTS)
