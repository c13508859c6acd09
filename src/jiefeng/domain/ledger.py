"""The credit ledger: statements with a minimum due, revolving interest, installments, payment
allocation and late fees. Pure: no I/O, no clock, no holds.

The freeze causes ask it questions ("is a minimum past due?", "how many days?", "how much
lifts the hold?") and never do arithmetic on money themselves.

The rules, in one place (docs/policy.md and docs/events.md say the same for users):

- A statement bills what the cycle added: late fees and revolving interest accrued since the
  last statement, one installment of every plan, and the purchases of the cycle. Unpaid amounts
  of earlier statements stay on those statements (they are paid first).
- `new_balance` is everything billed and still owed as of the statement. The minimum is
  `min(new_balance, max(floor, pct % of the revolving principal) + installments + interest
  and fees billed + the minimum still unpaid from earlier statements)`, where the revolving
  principal is the purchase principal owed on this and earlier statements.
- A statement's minimum is judged at the end of local day `due_date + grace_days`: the
  repayments received since it was issued (refunds are not payments) must reach
  `minimum_due - tolerance`. What is still unpaid of a minimum is never more than what is
  still owed on that statement and the earlier ones, so a refund that settles a statement
  also settles its minimum.
- Payments are allocated oldest statement first; within a statement fees, then interest, then
  installments, then principal; then what is not billed yet (accrued fees, accrued interest,
  purchases of the cycle, the remaining principal of installment plans, oldest plan first);
  the rest is a credit balance, which the next statement uses first.
- Interest accrues daily on a statement's unpaid principal from the day after its due date,
  late fees daily on the past-due minimum from the day it became past due; both are counted
  exactly in 1/10,000 fen and billed on the next statement as whole fen, the fraction carried.

Why one long module: the ledger is one pure module by design (statements, minimum due,
interest, installments, allocation, late fees); the causes only call it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal

from jiefeng.domain.packing import pack, unpack
from jiefeng.domain.pickled import by_fields, field_values

DAY = dt.timedelta(days=1)
UNITS_PER_FEN = 10_000  # interest and late fees accrue in 1/10,000 fen (basis points of a fen)
MAX_STATEMENT_HISTORY = 12  # settled statements kept for explanations and self-checks
MAX_ACTIVE_PLANS = 50  # installment plans running at once on one account


# --- statements -------------------------------------------------------------------------------


@dataclass(slots=True)
class Statement:
    """One issued statement. Mutable only inside the fold's working copy."""

    statement_date: dt.date
    due_date: dt.date  # effective due date (moved past maintenance and migration)
    # What this statement billed, by kind (allocation order), and what of each was paid.
    fees_fen: int = 0
    interest_fen: int = 0
    installments_fen: int = 0
    principal_fen: int = 0
    paid_fees_fen: int = 0
    paid_interest_fen: int = 0
    paid_installments_fen: int = 0
    paid_principal_fen: int = 0
    # As of the statement.
    new_balance_fen: int = 0
    minimum_due_fen: int = 0
    revolving_principal_fen: int = 0  # purchase principal owed on this and earlier statements
    carried_minimum_fen: int = 0  # minimum still unpaid from earlier statements, included
    charges_fen: int = 0  # fees, interest and installments billed here, net of a credit
    # Since the statement.
    paid_since_issue_fen: int = 0  # repayments received after it was issued
    judged: bool = False  # its minimum was judged at the end of the grace period
    paid_in_full: bool | None = None  # judged: was everything owed up to it paid?
    overdue_since: dt.datetime | None = None
    cured_at: dt.datetime | None = None  # when its past-due minimum was paid
    bureau_notice_sent: bool = False
    bureau_reported: bool = False

    @property
    def billed_fen(self) -> int:
        return self.fees_fen + self.interest_fen + self.installments_fen + self.principal_fen

    @property
    def paid_fen(self) -> int:
        return (self.paid_fees_fen + self.paid_interest_fen + self.paid_installments_fen
                + self.paid_principal_fen)

    @property
    def owed_fen(self) -> int:
        # Asked several times per event for every open statement: one expression, no calls.
        return (self.fees_fen + self.interest_fen + self.installments_fen + self.principal_fen
                - self.paid_fees_fen - self.paid_interest_fen - self.paid_installments_fen
                - self.paid_principal_fen)

    @property
    def principal_due_fen(self) -> int:
        return self.principal_fen - self.paid_principal_fen

    @property
    def past_due(self) -> bool:
        """Overdue and its minimum not yet paid."""
        return self.overdue_since is not None and self.cured_at is None

    def copy(self) -> Statement:
        return replace(self)

    def __reduce__(self) -> tuple:
        return by_fields(self)  # the same bytes compiled or not (jiefeng.domain.pickled)


# --- installment plans ------------------------------------------------------------------------


@dataclass(slots=True)
class InstallmentPlan:
    """A purchase converted into `months` monthly installments of principal plus fee."""

    plan_id: str
    purchase_event_id: str
    months: int
    created_at: dt.datetime
    principal_fen: int  # converted principal, less refunds and early repayments
    fee_fen: int  # total fee, less the part waived by refunds and early repayments
    billed_months: int = 0
    billed_principal_fen: int = 0
    billed_fee_fen: int = 0

    @property
    def remaining_principal_fen(self) -> int:
        return self.principal_fen - self.billed_principal_fen

    @property
    def remaining_fee_fen(self) -> int:
        return self.fee_fen - self.billed_fee_fen

    @property
    def remaining_months(self) -> int:
        return self.months - self.billed_months

    @property
    def finished(self) -> bool:
        return self.remaining_months <= 0 or (
            self.remaining_principal_fen <= 0 and self.remaining_fee_fen <= 0)

    def next_installment(self) -> tuple[int, int]:
        """(principal, fee) of the next installment: equal parts, rounding up, so the last
        one takes exactly what is left."""
        months = self.remaining_months
        assert months > 0
        return (-(-self.remaining_principal_fen // months), -(-self.remaining_fee_fen // months))

    def reduce(self, amount_fen: int) -> int:
        """Take `amount_fen` off the principal not yet billed (a refund or an early repayment);
        the fee of the months not yet billed shrinks in proportion. Returns what was taken."""
        remaining = self.remaining_principal_fen
        taken = min(amount_fen, remaining)
        if taken <= 0:
            return 0
        remaining_fee = self.remaining_fee_fen
        kept_fee = remaining_fee * (remaining - taken) // remaining
        self.principal_fen -= taken
        self.fee_fen -= remaining_fee - kept_fee
        return taken

    def copy(self) -> InstallmentPlan:
        return replace(self)

    def __reduce__(self) -> tuple:
        return by_fields(self)  # the same bytes compiled or not (jiefeng.domain.pickled)


# --- the ledger -------------------------------------------------------------------------------


@dataclass(slots=True)
class Ledger:
    unbilled_fen: int = 0  # purchase principal not yet on a statement
    credit_balance_fen: int = 0  # paid beyond everything owed
    # Open statements, oldest first: something owed, the minimum not yet judged, or past due.
    # Settled ones move to `history`: the fold walks the open ones on every event.
    statements: list[Statement] = field(default_factory=list)
    plans: dict[str, InstallmentPlan] = field(default_factory=dict)  # oldest first
    interest_units: int = 0  # revolving interest accrued, not yet billed
    late_fee_units: int = 0  # late fees accrued, not yet billed
    accrued_through: dt.date | None = None  # interest and fees counted before this local day
    months_revolving: int = 0  # consecutive judged statements not paid in full
    # Settled, judged statements, oldest first (at most MAX_STATEMENT_HISTORY): they never
    # change, so they are kept packed (`pack_statement`, about 170 bytes against 470 as
    # objects: a sixth of a cached state); `history` unpacks them.
    settled: list[bytes] = field(default_factory=list)
    # Lifetime totals, for the books to balance (jiefeng.domain.invariants): everything that
    # became owed (purchases; fees, interest and installment fees once billed, or paid before
    # their bill) and everything that reduced it (repayments and refunds). Owed less credit
    # equals their difference plus what accrued and is not billed yet.
    charged_fen: int = 0
    credited_fen: int = 0

    def copy(self) -> Ledger:
        return Ledger(
            self.unbilled_fen,
            self.credit_balance_fen,
            [s.copy() for s in self.statements] if self.statements else [],
            {k: p.copy() for k, p in self.plans.items()} if self.plans else {},
            self.interest_units,
            self.late_fee_units,
            self.accrued_through,
            self.months_revolving,
            self.settled.copy(),  # packed, never change: shared
            self.charged_fen,
            self.credited_fen,
        )

    def __reduce__(self) -> tuple:
        return by_fields(self)  # the same bytes compiled or not (jiefeng.domain.pickled)

    @property
    def history(self) -> list[Statement]:
        """The settled statements, oldest first (new objects: changing them changes nothing)."""
        return [unpack_statement(packed) for packed in self.settled]

    def recent_statements(self, limit: int = MAX_STATEMENT_HISTORY) -> list[Statement]:
        """Settled and open statements together, oldest first, the last `limit` of them."""
        merged = sorted(self.history + self.statements, key=lambda s: s.statement_date)
        return merged[-limit:]

    def latest_statement(self) -> Statement | None:
        last_settled = [unpack_statement(self.settled[-1])] if self.settled else []
        return max(self.statements[-1:] + last_settled, key=lambda s: s.statement_date,
                   default=None)

    # --- what is owed ---------------------------------------------------------------------

    @property
    def billed_owed_fen(self) -> int:
        return sum(s.owed_fen for s in self.statements) if self.statements else 0

    @property
    def accrued_fees_fen(self) -> int:
        return self.late_fee_units // UNITS_PER_FEN

    @property
    def accrued_interest_fen(self) -> int:
        return self.interest_units // UNITS_PER_FEN

    @property
    def plan_principal_fen(self) -> int:
        return sum(p.remaining_principal_fen for p in self.plans.values()) if self.plans else 0

    @property
    def revolving_fen(self) -> int:
        """Purchase principal billed and still owed (installments excluded)."""
        return sum(s.principal_due_fen for s in self.statements) if self.statements else 0

    @property
    def installment_balance_fen(self) -> int:
        """Installments billed and unpaid plus plan principal not yet billed."""
        billed = sum(s.installments_fen - s.paid_installments_fen for s in self.statements)
        return billed + self.plan_principal_fen

    @property
    def total_owed_fen(self) -> int:
        """What clears everything today (fees of installments not yet billed are not owed)."""
        if not self.statements and not self.plans and not self.late_fee_units:
            return self.unbilled_fen + self.accrued_interest_fen  # the usual case: no bill open
        owed = self.unbilled_fen + self.billed_owed_fen
        if self.interest_units or self.late_fee_units:
            owed += self.accrued_fees_fen + self.accrued_interest_fen
        if self.plans:
            owed += self.plan_principal_fen
        return owed

    def available_fen(self, credit_limit_fen: int) -> int:
        """Interest and fees may take the balance over the limit: this floors at zero."""
        used = max(0, self.total_owed_fen - self.credit_balance_fen)
        return max(0, credit_limit_fen - used)

    # --- minimums -------------------------------------------------------------------------

    def unpaid_minimum_fen(self, statement: Statement) -> int:
        """What is still unpaid of a statement's minimum: never more than what is still owed
        on it and the statements before it."""
        short = statement.minimum_due_fen - statement.paid_since_issue_fen
        if short <= 0:
            return 0
        owed = self.owed_through_fen(statement)
        return 0 if owed is None else max(0, min(short, owed))

    def owed_through_fen(self, statement: Statement) -> int | None:
        """What is still owed on an open statement and the ones before it; None for a
        statement no longer open (settled: in the history)."""
        owed = 0
        for s in self.statements:
            owed += s.owed_fen
            if s is statement:
                return owed
        return None

    def past_due_statements(self) -> list[Statement]:
        return [s for s in self.statements if s.past_due] if self.statements else []

    def past_due_minimum_fen(self) -> int:
        """The past-due minimum: a later statement's minimum includes what was unpaid of the
        earlier ones, so the largest unpaid past-due minimum is the whole of it."""
        largest_fen = 0
        owed_fen = 0  # owed on this statement and the ones before it (owed_through_fen)
        # Asked on every accrual, over every open statement: one pass with a running total
        # (calling unpaid_minimum_fen per statement summed the earlier ones again each time).
        for s in self.statements:
            owed_fen += s.owed_fen
            if s.overdue_since is not None and s.cured_at is None:
                short_fen = s.minimum_due_fen - s.paid_since_issue_fen
                if short_fen > 0:
                    unpaid_fen = min(short_fen, owed_fen)
                    if unpaid_fen > largest_fen:
                        largest_fen = unpaid_fen
        return largest_fen

    def oldest_past_due(self) -> Statement | None:
        return next((s for s in self.statements if s.past_due), None)

    def days_past_due(self, today: dt.date) -> int:
        oldest = self.oldest_past_due()
        return max(0, (today - oldest.due_date).days) if oldest is not None else 0

    def minimum_due_fen(self) -> int:
        """The unpaid minimum of the latest statement (it includes every earlier one); none
        when the latest is settled."""
        latest = self.latest_statement()
        if latest is None or not any(s is latest for s in self.statements):
            return 0
        return self.unpaid_minimum_fen(latest)


def minimum_payment_fen(revolving_fen: int, pct: Decimal, floor_fen: int) -> int:
    """max(floor, pct % of the revolving principal), the percentage rounded up to a fen so
    that 100 % is the whole principal."""
    hundredths = int(pct * 100)  # the policy allows two decimal places
    return max(floor_fen, -(-revolving_fen * hundredths // 10_000))


# --- posting ----------------------------------------------------------------------------------


def post_purchase(ledger: Ledger, amount_fen: int) -> None:
    assert amount_fen > 0
    ledger.unbilled_fen += amount_fen
    ledger.charged_fen += amount_fen


def pay(ledger: Ledger, amount_fen: int, *, repayment: bool) -> None:
    """Allocate money to what is owed (see the module docstring for the order).

    A repayment counts toward every open statement's minimum; a refund reduces what is owed
    the same way but is not a payment.
    """
    assert amount_fen > 0
    ledger.credited_fen += amount_fen
    if repayment:
        for statement in ledger.statements:
            statement.paid_since_issue_fen += amount_fen
    remaining = amount_fen
    for s in ledger.statements:
        if remaining <= 0:
            break
        remaining = _pay_statement(s, remaining)
    # Fees and interest paid before they are billed are charged as they are paid.
    if remaining > 0 and ledger.late_fee_units >= UNITS_PER_FEN:
        part = min(remaining, ledger.accrued_fees_fen)
        ledger.late_fee_units -= part * UNITS_PER_FEN
        ledger.charged_fen += part
        remaining -= part
    if remaining > 0 and ledger.interest_units >= UNITS_PER_FEN:
        part = min(remaining, ledger.accrued_interest_fen)
        ledger.interest_units -= part * UNITS_PER_FEN
        ledger.charged_fen += part
        remaining -= part
    if remaining > 0 and ledger.unbilled_fen:
        part = min(remaining, ledger.unbilled_fen)
        ledger.unbilled_fen -= part
        remaining -= part
    if remaining > 0 and ledger.plans:
        # An early repayment: the principal of installments not yet billed, oldest plan first;
        # the fees of the months it covers are not charged.
        for plan in ledger.plans.values():
            remaining -= plan.reduce(remaining)
            if remaining <= 0:
                break
        _drop_finished_plans(ledger)
    ledger.credit_balance_fen += remaining
    retire_settled(ledger)


def _pay_statement(s: Statement, amount_fen: int) -> int:
    """Pay one statement's fees, then interest, then installments, then principal; returns
    what is left of `amount_fen`."""
    remaining = amount_fen
    part = min(remaining, s.fees_fen - s.paid_fees_fen)
    s.paid_fees_fen += part
    remaining -= part
    part = min(remaining, s.interest_fen - s.paid_interest_fen)
    s.paid_interest_fen += part
    remaining -= part
    part = min(remaining, s.installments_fen - s.paid_installments_fen)
    s.paid_installments_fen += part
    remaining -= part
    part = min(remaining, s.principal_fen - s.paid_principal_fen)
    s.paid_principal_fen += part
    return remaining - part


def refund(ledger: Ledger, amount_fen: int, purchase_event_id: str) -> None:
    """A refund of a purchase in a plan first reduces that plan's installments not yet
    billed; the rest (or a refund of any other purchase) reduces what is owed."""
    plan = plan_of_purchase(ledger, purchase_event_id)
    remaining = amount_fen
    if plan is not None:
        taken_fen = plan.reduce(remaining)
        ledger.credited_fen += taken_fen
        remaining -= taken_fen
        _drop_finished_plans(ledger)
    if remaining > 0:
        pay(ledger, remaining, repayment=False)


def judge_paid_up(ledger: Ledger) -> list[Statement]:
    """Judge at once the statements paid in full (with every earlier one) before the end of
    their grace period: payments only add up, so the judgement then could not differ, and the
    fold need not stop there for it. Returns the statements judged, oldest first."""
    judged: list[Statement] = []
    for s in ledger.statements:
        if s.owed_fen > 0:
            break  # this and every later statement still owe something up to them
        if not s.judged:
            s.judged = True
            s.paid_in_full = True
            ledger.months_revolving = 0
            judged.append(s)
    retire_settled(ledger)
    return judged


def judgement(statement: Statement) -> str:
    """paid_in_full, minimum_met or below_minimum (past due when judged)."""
    assert statement.judged
    if statement.paid_in_full:
        return "paid_in_full"
    return "minimum_met" if statement.overdue_since is None else "below_minimum"


def retire_settled(ledger: Ledger) -> None:
    """Move settled, judged statements that are not past due to the history."""
    statements = ledger.statements
    newly = [s for s in statements if _settled(s)]  # oldest first, as the open ones are
    if not newly:
        return
    ledger.statements = [s for s in statements if not _settled(s)]
    settled = ledger.settled + [pack_statement(s) for s in newly]
    if ledger.settled and _packed_statement_date(ledger.settled[-1]) > \
            newly[0].statement_date.toordinal():
        # An older statement settled after a newer one: back into date order (stable).
        # Usually they settle in order and appending keeps it.
        settled.sort(key=_packed_statement_date)
    ledger.settled = settled[-MAX_STATEMENT_HISTORY:]


# --- settled statements, packed ------------------------------------------------------------

# From the dataclass fields, not `__slots__`: a compiled class has none (`make native`).
_STATEMENT_FIELDS = tuple(f.name for f in fields(Statement))
_statement_values = field_values(Statement)  # one C call for the whole tuple
_DATE_INDEXES = tuple(_STATEMENT_FIELDS.index(n) for n in ("statement_date", "due_date"))
_INSTANT_INDEXES = tuple(_STATEMENT_FIELDS.index(n) for n in ("overdue_since", "cured_at"))
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def pack_statement(statement: Statement) -> bytes:
    """A statement as one bytes object (marshal of a tuple of ints, bools and None): dates as
    ordinals, instants (UTC, as the fold keeps them) as microseconds since the epoch."""
    values = list(_statement_values(statement))
    for index in _DATE_INDEXES:
        values[index] = values[index].toordinal()
    for index in _INSTANT_INDEXES:
        if values[index] is not None:
            values[index] = (values[index] - _EPOCH) // _MICROSECOND
    return pack(tuple(values))


def unpack_statement(packed: bytes) -> Statement:
    values = list(unpack(packed))
    for index in _DATE_INDEXES:
        values[index] = dt.date.fromordinal(values[index])
    for index in _INSTANT_INDEXES:
        if values[index] is not None:
            values[index] = _EPOCH + values[index] * _MICROSECOND
    return Statement(*values)


def _packed_statement_date(packed: bytes) -> int:
    return unpack(packed)[0]  # statement_date comes first


def _settled(statement: Statement) -> bool:
    return statement.judged and not statement.past_due and statement.owed_fen <= 0


# --- accrual ----------------------------------------------------------------------------------


def accrue(ledger: Ledger, today: dt.date, interest_daily_bp: int, late_fee_daily_bp: int
           ) -> None:
    """Interest and late fees for every whole local day before `today` not yet counted.

    Both are computed from amounts that change only on events and deadlines, and the fold
    accrues before each, so the total does not depend on how time was chunked (replay equals
    incremental).
    """
    through = ledger.accrued_through
    if through is None or today <= through:
        if through is None:
            ledger.accrued_through = today
        return
    statements = ledger.statements
    if statements:
        # Runs on every event of an account with an open statement: plain loops, no
        # properties, no lists.
        if interest_daily_bp:
            for s in statements:
                principal = s.principal_fen - s.paid_principal_fen
                if principal <= 0:
                    continue
                start = s.due_date + DAY  # interest from the day after due
                days = (today - (start if start > through else through)).days
                if days > 0:
                    ledger.interest_units += principal * interest_daily_bp * days
        if late_fee_daily_bp:
            past_due_fen = ledger.past_due_minimum_fen()
            if past_due_fen > 0:
                days_total = (today - through).days
                ledger.late_fee_units += past_due_fen * late_fee_daily_bp * days_total
    ledger.accrued_through = today


# --- statements -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MinimumTerms:
    """The `[billing]` keys a statement's minimum reads."""

    pct: Decimal
    floor_fen: int


def issue_statement(ledger: Ledger, statement_date: dt.date, due_date: dt.date,
                    terms: MinimumTerms) -> Statement | None:
    """Bill the cycle; None when nothing is billed and nothing is owed."""
    fees_fen, ledger.late_fee_units = divmod(ledger.late_fee_units, UNITS_PER_FEN)
    interest_fen, ledger.interest_units = divmod(ledger.interest_units, UNITS_PER_FEN)
    installments_fen = 0
    # Interest and fees are charged when billed (until then the books count them as accrued);
    # an installment's fee when its month is billed.
    ledger.charged_fen += fees_fen + interest_fen
    if ledger.plans:
        for plan in ledger.plans.values():
            principal, fee = plan.next_installment()
            plan.billed_months += 1
            plan.billed_principal_fen += principal
            plan.billed_fee_fen += fee
            installments_fen += principal + fee
            ledger.charged_fen += fee
        _drop_finished_plans(ledger)
    principal_fen = ledger.unbilled_fen
    ledger.unbilled_fen = 0
    billed_fen = fees_fen + interest_fen + installments_fen + principal_fen
    earlier_owed_fen = ledger.billed_owed_fen
    if billed_fen <= 0 and earlier_owed_fen <= 0:
        return None
    # The latest statement, if still open (a settled one has nothing of its minimum unpaid).
    previous = ledger.statements[-1] if ledger.statements else None
    if previous is not None and ledger.settled \
            and _packed_statement_date(ledger.settled[-1]) > previous.statement_date.toordinal():
        previous = None
    statement = Statement(statement_date, due_date, fees_fen, interest_fen, installments_fen,
                          principal_fen)
    if ledger.credit_balance_fen:
        # A credit balance exists only when nothing billed was owed: it pays the new bill.
        credit_fen = min(ledger.credit_balance_fen, billed_fen)
        ledger.credit_balance_fen -= credit_fen - _pay_statement(statement, credit_fen)
        if statement.owed_fen <= 0 and earlier_owed_fen <= 0:
            return None  # the credit balance paid the whole bill: nothing to state
    ledger.statements.append(statement)
    statement.new_balance_fen = ledger.billed_owed_fen
    statement.revolving_principal_fen = ledger.revolving_fen
    statement.carried_minimum_fen = (
        ledger.unpaid_minimum_fen(previous) if previous is not None else 0)
    statement.charges_fen = ((statement.fees_fen - statement.paid_fees_fen)
                             + (statement.interest_fen - statement.paid_interest_fen)
                             + (statement.installments_fen - statement.paid_installments_fen))
    _set_minimum(statement, terms)
    return statement


def _set_minimum(statement: Statement, terms: MinimumTerms) -> None:
    statement.minimum_due_fen = min(
        statement.new_balance_fen,
        minimum_payment_fen(statement.revolving_principal_fen, terms.pct, terms.floor_fen)
        + statement.charges_fen + statement.carried_minimum_fen,
    )


def judge(ledger: Ledger, statement: Statement, at: dt.datetime, tolerance_fen: int) -> bool:
    """Judge a statement's minimum at the end of its grace period; True if now past due."""
    assert not statement.judged
    statement.judged = True
    statement.paid_in_full = (ledger.owed_through_fen(statement) or 0) <= 0
    ledger.months_revolving = 0 if statement.paid_in_full else ledger.months_revolving + 1
    if ledger.unpaid_minimum_fen(statement) > tolerance_fen:
        statement.overdue_since = at
        return True
    retire_settled(ledger)
    return False


def cure(ledger: Ledger, at: dt.datetime, tolerance_fen: int) -> bool:
    """Mark past-due statements whose minimum is now paid (within tolerance); True if one
    was past due and none is left."""
    was_past_due = False
    for s in ledger.statements:
        if s.past_due:
            was_past_due = True
            if ledger.unpaid_minimum_fen(s) <= tolerance_fen:
                s.cured_at = at
    cleared = was_past_due and not any(s.past_due for s in ledger.statements)
    retire_settled(ledger)
    return cleared


# --- installment plans ------------------------------------------------------------------------


def plan_of_purchase(ledger: Ledger, purchase_event_id: str) -> InstallmentPlan | None:
    if not ledger.plans:
        return None
    return next((p for p in ledger.plans.values() if p.purchase_event_id == purchase_event_id),
                None)


def convertible_principal_fen(ledger: Ledger, billed_on: dt.date | None, amount_fen: int
                              ) -> int:
    """How much of a purchase an installment plan can take: the purchase amount, no more
    than the principal still owed where it sits: the current cycle (`billed_on` None) or the
    statement of `billed_on` (0 if that statement is gone: settled, or never issued because a
    credit balance paid it)."""
    if billed_on is None:
        return max(0, min(amount_fen, ledger.unbilled_fen))
    statement = statement_of(ledger, billed_on)
    return max(0, min(amount_fen, statement.principal_due_fen)) if statement else 0


def statement_of(ledger: Ledger, statement_date: dt.date) -> Statement | None:
    return next((s for s in ledger.statements if s.statement_date == statement_date), None)


def create_plan(ledger: Ledger, plan: InstallmentPlan, billed_on: dt.date | None,
                terms: MinimumTerms) -> None:
    """Move the plan's principal off the cycle or statement it sat on."""
    if billed_on is None:
        assert plan.principal_fen <= ledger.unbilled_fen
        ledger.unbilled_fen -= plan.principal_fen
    else:
        statement = statement_of(ledger, billed_on)
        assert statement is not None and plan.principal_fen <= statement.principal_due_fen
        statement.principal_fen -= plan.principal_fen
        _restate(ledger, statement, terms)
    ledger.plans[plan.plan_id] = plan


def _restate(ledger: Ledger, statement: Statement, terms: MinimumTerms) -> None:
    """Recompute a statement's balance and minimum after principal left it for a plan."""
    before = statement.revolving_principal_fen
    statement.revolving_principal_fen = ledger.revolving_fen
    moved_fen = before - statement.revolving_principal_fen
    statement.new_balance_fen = max(0, statement.new_balance_fen - moved_fen)
    _set_minimum(statement, terms)


def _drop_finished_plans(ledger: Ledger) -> None:
    if any(p.finished for p in ledger.plans.values()):
        ledger.plans = {k: p for k, p in ledger.plans.items() if not p.finished}


def installment_fee_fen(principal_fen: int, fee_pct_total: Decimal) -> int:
    """The plan's total fee, rounded to the nearest fen (half up)."""
    hundredths = int(fee_pct_total * 100)
    return (principal_fen * hundredths + 5_000) // 10_000
