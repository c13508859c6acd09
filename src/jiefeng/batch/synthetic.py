"""A synthetic portfolio: deterministic JSON-ready events for the demo, tests and benchmarks.

    generate_portfolio(PortfolioSpec(accounts=2000, months=18, seed=7)) -> list[dict]
    scenario_of(spec) -> {hold code: [account ids]}
    behaviour_of(spec) -> {behaviour: [account ids]}

Most accounts behave: they open in the first weeks, buy a few times a month at ordinary
merchants with non-round amounts well under their limit, repay every statement by its due date,
keep a score of 650 or more and add a new device at most now and then.

How they repay follows the credit ledger (jiefeng.domain.ledger) under the default policy's
`[billing]` and `[installments]` terms (read from `default_policy()`, not copied here):

- transactors (about half) pay each statement in full a few days before it is due;
- revolvers pay between the minimum and the full balance (now and then all of it) and carry
  the rest, with interest;
- minimum payers pay the minimum, as autopay does: a little above it, on or just before the
  due day;
- installment users (of any of the three kinds) buy something larger now and then and convert
  it with `installment_plan_created` into 3 to 12 monthly installments, during the purchase's
  cycle or after its statement but before the statement is due and before they repay it;
- some customers pay below the minimum (the `overdue` scenario, below): they become overdue,
  pay the past-due minimum some days later and cure.

The generator cannot fold the engine, so each account keeps a small book of what it owes:
billed principal, billed charges (interest, late fees, installments), this cycle's purchases
and the principal of its plans. Every figure the book cannot know exactly (interest accrues
daily on what is unpaid, late fees on the past-due minimum, refunds reduce what is owed) is
bounded from above, so the minimum it computes is never below the engine's and a customer who
pays it on time is never overdue. Customers stop buying while the book says the line would be
more than `CREDIT_CAP` used, so ordinary purchases are never declined for lack of credit.

A share of accounts (about 3.5 % per cause, 5 % for `overdue`, some with two causes) is given a
scenario for each of the twelve hold codes, timed so that the hold is both placed and lifted
well inside the horizon: a statement not paid at all until ten days after its due date, or
paid below its minimum (once, or twice months apart) and the past-due minimum paid some days
late, then a clean cure probation; a sibling product reported overdue then settled, the five
cash-out patterns lifted by 60 quiet days or by an approved appeal, a score dip and recovery,
a year without purchases then renewed activity, account-takeover signals lifted by
verification or by 30 quiet days, an expired ID replaced, five wrong passwords, a policy sweep
in month six with a later reopening; maintenance windows and migration campaigns are operator
commands.

Everything is drawn from `random.Random` seeded from `spec.seed` (one stream for the plan and
one per account), never from the global generator or the wall clock, so a seed always gives the
same events. Event dicts are in wire form: money as decimal strings ("123.45"), timestamps as
RFC 3339 in Asia/Shanghai ("2025-01-03T10:15:00+08:00"), sorted by `at`.

Why one long module: each cause's synthetic scenario is a short function and they share
one plan and one random stream per account; a candidate for one module per scenario family.
"""

from __future__ import annotations

import bisect
import calendar
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jiefeng.batch.limits import MAX_ACCOUNTS, MAX_MONTHS, MIN_ACCOUNTS, MIN_MONTHS
from jiefeng.domain.holds import HOLD_CODES as ALL_HOLD_CODES
from jiefeng.domain.holds import MANUAL_REVIEW
from jiefeng.domain.money import format_fen
from jiefeng.policy.schema import Policy, default_policy

TZ = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)

HOLD_CODES: tuple[str, ...] = tuple(c for c in ALL_HOLD_CODES if c != MANUAL_REVIEW)

# The sweep of month six (see default.toml for the thresholds the other scenarios cross).
SWEEP_CRITERIA = "score < 620 AND utilization > 0.5"
REOPEN_CRITERIA = "score >= 650 OR deposits + wealth_balance >= 10000"
HIGH_RISK_MERCHANTS = ("M-HIGHRISK-001", "M-HIGHRISK-002", "M-HIGHRISK-003")
ROUND_FEN = 100_000  # 1,000 yuan: ordinary amounts are never a multiple of this

SHARE_PER_CAUSE = 0.035
SHARE_OVERRIDES = {"overdue": 0.05}  # more accounts: both ways of missing the minimum occur
SHARE_SECONDARY = 0.15  # of the scenario accounts, these get a second cause later on
OPERATORS = ("ops.alice", "ops.bob", "ops.chen", "risk.wang")

# Variants (what triggers, how it lifts) cycled over the accounts given a cause.
_VARIANTS: dict[str, tuple[tuple[str, str], ...]] = {
    # Nothing paid until ten days after the due date (a transactor who forgot), or paid below
    # the minimum and the past-due minimum paid days later (a revolver or minimum payer), once
    # or twice months apart (the second probation is then doubled).
    "overdue": (
        ("late_repayment", "cure_probation"),
        ("below_minimum", "cure_probation"),
        ("below_minimum_twice", "cure_probation"),
        ("below_minimum", "cure_probation"),
    ),
    "external_overdue": (("bureau_overdue", "settled"), ("bureau_overdue_after_notice", "settled")),
    "cash_out_suspected": tuple(
        (variant, lift)
        for lift in ("quiet", "appeal")
        for variant in ("round_amounts", "quick_refunds", "high_risk_merchant", "brushing",
                        "transfer")
    ),
    "score_below_threshold": (("dip", "recovery"),),
    "dormant": (("no_purchase", "activity"),),
    "account_security": (
        ("bank_card", "verified"),
        ("phone_device", "quiet"),
        ("new_devices", "verified"),
        ("bank_card", "quiet"),
        ("phone_device", "verified"),
        ("new_devices", "quiet"),
    ),
    "id_expired": (("expired", "document_updated"),),
    "password_locked": (("five_failures", "timeout"), ("five_failures", "reset")),
    "policy_tightening": (("sweep", "score"), ("sweep", "assets"), ("sweep", "score")),
}
_PRIMARY = (
    "overdue",
    "external_overdue",
    "cash_out_suspected",
    "score_below_threshold",
    "dormant",
    "account_security",
    "id_expired",
    "password_locked",
    "policy_tightening",
)
_SECONDARY = ("password_locked", "score_below_threshold", "id_expired", "account_security")
_MINIMUM = {"cash_out_suspected": 10, "account_security": 6, "policy_tightening": 3,
            "overdue": 4}

# How customers repay (see the module docstring).
TRANSACTOR, REVOLVER, MINIMUM_PAYER = "transactor", "revolver", "minimum_payer"
PAYERS = (TRANSACTOR, REVOLVER, MINIMUM_PAYER)
_PAYER_SHARES = ((TRANSACTOR, 0.50), (REVOLVER, 0.30), (MINIMUM_PAYER, 0.20))
INSTALLMENT_USER, BELOW_MINIMUM, MISSED_PAYMENT = (
    "installment_user", "below_minimum", "missed_payment")
BEHAVIOURS = (*PAYERS, INSTALLMENT_USER, BELOW_MINIMUM, MISSED_PAYMENT)
SHARE_INSTALLMENT_USERS = 0.15  # of the accounts that may convert purchases
CREDIT_CAP = 0.70  # no ordinary purchase while the line would be more than this share used
LARGE_PURCHASE_CAP = 0.50  # an installment user's larger purchase: only below this share


@dataclass(frozen=True)
class PortfolioSpec:
    accounts: int = 2000
    months: int = 18
    seed: int = 7
    start: datetime = datetime(2025, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))


# --- the plan: who gets what, and the operator calendar ----------------------------------------


@dataclass
class _AccountPlan:
    index: int
    account_id: str
    segment: str
    causes: list[tuple[str, str, str]] = field(default_factory=list)  # (code, variant, lift)
    migration_batch: int | None = None
    payer: str = TRANSACTOR
    installments: bool = False  # converts some larger purchases into installments

    @property
    def overdue_variant(self) -> str | None:
        return next((v for code, v, _ in self.causes if code == "overdue"), None)


@dataclass(frozen=True)
class _Terms:
    """The policy's ledger terms the book reads (from the default policy: `_Terms.of`)."""

    pct_hundredths: int  # minimum_payment_pct in hundredths of a percent
    floor_fen: int
    interest_bp: int
    late_fee_bp: int
    grace_days: int
    allowed_months: tuple[int, ...]
    fee_hundredths: dict[int, int]  # months -> total fee in hundredths of a percent
    probation_days: int
    repeat_multiplier: int

    @classmethod
    def of(cls, policy: Policy) -> _Terms:
        billing, installments = policy.billing, policy.installments
        return cls(
            pct_hundredths=int(billing.minimum_payment_pct * 100),
            floor_fen=billing.minimum_payment_floor_fen,
            interest_bp=billing.revolving_interest_daily_bp,
            late_fee_bp=billing.late_fee_daily_bp,
            grace_days=billing.grace_days,
            allowed_months=tuple(installments.allowed_months),
            fee_hundredths={m: int(pct * 100) for m, pct in installments.fee_pct_total.items()},
            probation_days=policy.cure_probation.days,
            repeat_multiplier=policy.cure_probation.repeat_multiplier,
        )


@dataclass
class _Plan:
    spec: PortfolioSpec
    start: datetime
    horizon: datetime
    accounts: list[_AccountPlan]
    migration_a: list[list[str]]  # campaign A account ids, by completion batch
    sweep_at: datetime
    windows: dict[str, tuple[datetime, datetime, str | None]]  # window id -> start, end, segment
    migration_a_start: datetime
    migration_a_done: list[datetime]
    migration_b_start: datetime
    migration_b_done: datetime
    terms: _Terms

    def operator_blocks(self, account: _AccountPlan) -> list[tuple[datetime, datetime]]:
        """Intervals when operator commands freeze this account (no purchases generated)."""
        blocks = []
        for start, end, segment in self.windows.values():
            if segment is None or segment == account.segment:
                blocks.append((start - HOUR, end + HOUR))
        if account.migration_batch is not None:
            done = self.migration_a_done[account.migration_batch]
            blocks.append((self.migration_a_start - HOUR, done + HOUR))
        if account.segment == "legacy":
            blocks.append((self.migration_b_start - HOUR, self.migration_b_done + HOUR))
        return blocks


def _add_months(day: date, months: int) -> date:
    year, month0 = divmod(day.month - 1 + months, 12)
    year += day.year
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def _local(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=TZ)


def _check_spec(spec: PortfolioSpec) -> None:
    if spec.start.tzinfo is None:
        raise ValueError("start: must be timezone-aware")
    if not MIN_MONTHS <= spec.months <= MAX_MONTHS:
        raise ValueError(f"months: from {MIN_MONTHS} to {MAX_MONTHS}, so every scenario is "
                         "placed and lifted")
    if not MIN_ACCOUNTS <= spec.accounts <= MAX_ACCOUNTS:
        raise ValueError(f"accounts: from {MIN_ACCOUNTS} to {MAX_ACCOUNTS}, so every scenario "
                         "has its accounts")


def _plan(spec: PortfolioSpec) -> _Plan:
    _check_spec(spec)
    rng = random.Random(f"jiefeng-plan-{spec.seed}")
    start = spec.start.astimezone(TZ)
    start_day = start.date()
    horizon = _local(_add_months(start_day, spec.months), start.hour, start.minute, start.second)
    n = spec.accounts
    ids = [f"A{i:06d}" for i in range(1, n + 1)]
    plans = {aid: _AccountPlan(i, aid, "standard") for i, aid in enumerate(ids)}

    # Segments: exact counts over a shuffle.
    order = ids[:]
    rng.shuffle(order)
    n_legacy = max(3, round(n * 0.03))
    n_premium = max(3, round(n * 0.10))
    n_young = round(n * 0.20)
    for k, aid in enumerate(order):
        if k < n_legacy:
            plans[aid].segment = "legacy"
        elif k < n_legacy + n_premium:
            plans[aid].segment = "premium"
        elif k < n_legacy + n_premium + n_young:
            plans[aid].segment = "young"

    # Primary causes: disjoint blocks of a second shuffle.
    order = ids[:]
    rng.shuffle(order)
    position = 0
    for code in _PRIMARY:
        variants = _VARIANTS[code]
        share = SHARE_OVERRIDES.get(code, SHARE_PER_CAUSE)
        count = max(_MINIMUM.get(code, 3), int(n * share + 0.5))
        offset = rng.randrange(len(variants))
        for k in range(count):
            variant, lift = variants[(offset + k) % len(variants)]
            plans[order[position]].causes.append((code, variant, lift))
            position += 1
    if position > n * 0.6:
        raise ValueError("accounts: too few for the scenarios")

    # Second causes, later in the horizon (months 12-14), for some scenario accounts.
    eligible = [aid for aid in order[:position] if plans[aid].causes[0][0] != "dormant"]
    rng.shuffle(eligible)
    count = max(2 * len(_SECONDARY), int(len(eligible) * SHARE_SECONDARY + 0.5))
    for k, aid in enumerate(eligible[:count]):
        code = _SECONDARY[k % len(_SECONDARY)]
        if code == plans[aid].causes[0][0]:
            code = _SECONDARY[(k + 1) % len(_SECONDARY)]
        variant, lift = rng.choice(_VARIANTS[code])
        plans[aid].causes.append((code, variant, lift))

    # Migration campaign A: a list of accounts, completed in three batches.
    chosen = sorted(rng.sample(ids, max(3, round(n * 0.03))))
    third = -(-len(chosen) // 3)
    batches = [chosen[i : i + third] for i in range(0, len(chosen), third)]
    for b, batch in enumerate(batches):
        for aid in batch:
            plans[aid].migration_batch = b

    # How each account repays. Some scenarios fix it: the cash-out patterns and the sweep read
    # a plain ledger (transactors), a missed payment is a transactor's, paying below the
    # minimum a revolver's or a minimum payer's. The rest: exact shares over a shuffle.
    free: list[str] = []
    for aid in ids:
        account = plans[aid]
        codes = {code for code, _, _ in account.causes}
        variant = account.overdue_variant
        if codes & {"policy_tightening", "cash_out_suspected"} or variant == "late_repayment":
            account.payer = TRANSACTOR
        elif variant is not None:
            account.payer = REVOLVER if rng.random() < 0.5 else MINIMUM_PAYER
        else:
            free.append(aid)
    rng.shuffle(free)
    position = 0
    for k, (payer, share) in enumerate(_PAYER_SHARES):
        count = len(free) - position if k == len(_PAYER_SHARES) - 1 else round(len(free) * share)
        for aid in free[position : position + count]:
            plans[aid].payer = payer
        position += count
    # Installment users, of any kind of payer, among the accounts whose ledger stays simple
    # enough for the book to price their installments exactly.
    convertible = list(free)
    rng.shuffle(convertible)
    for aid in convertible[: round(n * SHARE_INSTALLMENT_USERS)]:
        plans[aid].installments = True

    month = lambda m: _add_months(start_day, m)  # noqa: E731
    sweep_at = _local(month(5) + 15 * DAY, 10)
    windows = {
        "MW-PREMIUM-01": (_local(month(3) + 11 * DAY, 1), _local(month(3) + 11 * DAY, 5),
                          "premium"),
        "MW-ALL-01": (_local(month(8) + 19 * DAY, 0, 30), _local(month(8) + 19 * DAY, 4, 30),
                      None),
    }
    mig_a = _local(month(4) + 9 * DAY, 22)
    mig_b = _local(month(10) + 2 * DAY, 23)
    return _Plan(
        spec=spec,
        start=start,
        horizon=horizon,
        accounts=[plans[aid] for aid in ids],
        migration_a=batches,
        sweep_at=sweep_at,
        windows=windows,
        migration_a_start=mig_a,
        migration_a_done=[mig_a + 5 * HOUR, mig_a + 8 * HOUR, mig_a + 30 * HOUR][: len(batches)],
        migration_b_start=mig_b,
        migration_b_done=mig_b + 30 * HOUR,
        terms=_Terms.of(default_policy()),
    )


def scenario_of(spec: PortfolioSpec) -> dict[str, list[str]]:
    """Hold code -> the account ids given a scenario for it (sorted).

    `cure_probation` lists the accounts that reach it (overdue and external overdue);
    `maintenance` lists every account (one window covers all); `migration` lists campaign A's
    accounts and the `legacy` segment that campaign B moves.
    """
    plan = _plan(spec)
    result: dict[str, set[str]] = {code: set() for code in HOLD_CODES}
    for account in plan.accounts:
        for code, _, _ in account.causes:
            result[code].add(account.account_id)
            if code in ("overdue", "external_overdue"):
                result["cure_probation"].add(account.account_id)
        result["maintenance"].add(account.account_id)
        if account.migration_batch is not None or account.segment == "legacy":
            result["migration"].add(account.account_id)
    return {code: sorted(ids) for code, ids in result.items()}


def scenario_details(spec: PortfolioSpec) -> dict[str, list[tuple[str, str, str]]]:
    """Account id -> its scenarios as (hold code, variant, lift), for accounts that have any."""
    return {a.account_id: list(a.causes) for a in _plan(spec).accounts if a.causes}


def behaviour_of(spec: PortfolioSpec) -> dict[str, list[str]]:
    """Behaviour -> the account ids given it (sorted).

    Every account is exactly one of `transactor`, `revolver`, `minimum_payer`;
    `installment_user` (any of the three) converts some larger purchases into installments;
    `below_minimum` (revolvers and minimum payers of the `overdue` scenario) pays below the
    minimum once or twice and cures; `missed_payment` (transactors of the `overdue` scenario)
    pays nothing until ten days after a due date.
    """
    result: dict[str, list[str]] = {behaviour: [] for behaviour in BEHAVIOURS}
    for account in _plan(spec).accounts:
        result[account.payer].append(account.account_id)
        if account.installments:
            result[INSTALLMENT_USER].append(account.account_id)
        variant = account.overdue_variant
        if variant is not None:
            result[MISSED_PAYMENT if variant == "late_repayment" else BELOW_MINIMUM].append(
                account.account_id)
    return {behaviour: sorted(ids) for behaviour, ids in result.items()}


# --- events under construction -------------------------------------------------------------------


class _Ev:
    __slots__ = ("at", "seq", "type", "fields", "account_id", "actor", "event_id")

    def __init__(self, at: datetime, seq: int, type_: str, fields: dict[str, Any],
                 account_id: str | None = None, actor: str | None = None):
        self.at = at
        self.seq = seq
        self.type = type_
        self.fields = fields
        self.account_id = account_id
        self.actor = actor
        self.event_id = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event_id": self.event_id, "type": self.type,
                               "at": self.at.isoformat(timespec="seconds")}
        if self.account_id is not None:
            out["account_id"] = self.account_id
        else:
            out["actor"] = self.actor
        for key, value in self.fields.items():
            if isinstance(value, _Ev):
                value = value.event_id
            elif isinstance(value, list) and value and isinstance(value[0], _Ev):
                value = [item.event_id for item in value]
            elif isinstance(value, datetime):
                value = value.astimezone(TZ).isoformat(timespec="seconds")
            elif isinstance(value, date):
                value = value.isoformat()
            out[key] = value
        return out


def _in(at: datetime, intervals: list[tuple[datetime, datetime]]) -> bool:
    return any(lo <= at <= hi for lo, hi in intervals)


# --- what an account owes, as its customer reckons it -------------------------------------------


@dataclass
class _BookPlan:
    principal: int  # not yet billed
    fee: int  # not yet billed (rounded up: never below the engine's)
    months: int  # not yet billed
    first: date | None  # the statement that bills its first installment (None: beyond the horizon)

    def bill(self) -> int:
        """The next installment: equal parts rounded up, as the ledger bills them."""
        principal = -(-self.principal // self.months)
        fee = -(-self.fee // self.months)
        self.principal -= principal
        self.fee -= fee
        self.months -= 1
        return principal + fee


class _Book:
    """What one account owes, never less than the engine's ledger says (so a minimum reckoned
    here is at least the statement's): billed principal and charges (interest, late fees,
    installments), this cycle's purchases, the plans. Interest and late fees are bounded from
    above, refunds are ignored, and a repayment pays the charges before the principal (the
    ledger may pay older principal first: it then owes less principal, never more)."""

    def __init__(self, terms: _Terms):
        self.terms = terms
        self.principal = 0
        self.charges = 0
        self.unbilled = 0
        self.fees = 0  # late fees accrued since the last statement
        self.plans: list[_BookPlan] = []
        # The last statement: its date, due date, the principal owed before it and the
        # principal owed at the end of its due day (the most interest can run on until the next).
        self.last: list[Any] | None = None

    @property
    def outstanding(self) -> int:
        plans = sum(plan.principal for plan in self.plans) if self.plans else 0
        return self.principal + self.charges + self.unbilled + plans

    def pay(self, amount_fen: int) -> None:
        to_charges = min(self.charges, amount_fen)
        self.charges -= to_charges
        self.principal -= min(self.principal, amount_fen - to_charges)

    def due_end(self) -> None:
        """The repayments made by the due date are in."""
        assert self.last is not None
        self.last[3] = self.principal

    def late_fee(self, past_due_fen: int, days: int) -> None:
        units = past_due_fen * self.terms.late_fee_bp * (days + 1)
        self.fees += -(-units // 10_000) + 1

    def statement(self, day: date, due: date) -> tuple[int, int] | None:
        """Bill the cycle: (new balance, minimum due), or None if nothing is owed."""
        terms = self.terms
        interest = 0
        if self.last is not None:
            # Interest runs daily on principal past its due date: the older principal from the
            # last statement's date, all of it from the day after its due date.
            since, last_due, older, at_due = self.last
            units = (older * (last_due + DAY - since).days
                     + at_due * (day - last_due - DAY).days) * terms.interest_bp
            interest = -(-units // 10_000) + 1 if units > 0 else 0
        installments = 0
        if self.plans:
            for plan in self.plans:
                if plan.first is not None and plan.first <= day and plan.months > 0:
                    installments += plan.bill()
            self.plans = [plan for plan in self.plans if plan.months > 0]
        older = self.principal
        self.principal += self.unbilled
        self.unbilled = 0
        self.charges += interest + self.fees + installments
        self.fees = 0
        self.last = [day, due, older, self.principal]
        new_balance = self.principal + self.charges
        if new_balance <= 0:
            return None
        revolving = -(-self.principal * terms.pct_hundredths // 10_000)
        return new_balance, min(new_balance, max(terms.floor_fen, revolving) + self.charges)


# --- one account ----------------------------------------------------------------------------------


class _Account:
    """Builds one account's events: scenarios first (they reserve time), then the routine."""

    def __init__(self, plan: _Plan, account: _AccountPlan, operator_events: list[_Ev]):
        self.plan = plan
        self.account = account
        self.aid = account.account_id
        self.rng = random.Random(f"jiefeng-{plan.spec.seed}-{account.account_id}")
        self.ops = operator_events
        self.events: list[_Ev] = []
        self.start_day = plan.start.date()
        self.horizon = plan.horizon
        self.codes = {code for code, _, _ in account.causes}
        self.operator_blocks = plan.operator_blocks(account)
        self.blocked: list[tuple[datetime, datetime]] = list(self.operator_blocks)
        self.score_quiet: list[tuple[datetime, datetime]] = []
        self.activity_quiet: list[tuple[datetime, datetime]] = []
        self.password_quiet: list[tuple[datetime, datetime]] = []
        self.billable: list[tuple[datetime, int]] = []
        self.purchase_times: list[datetime] = []
        # The overdue scenario, by statement date: days after the due date (and its grace
        # days) it is paid at all; or (percent of the minimum paid on time, days after the due
        # date the past-due minimum is paid).
        self.late: dict[date, int] = {}
        self.short: dict[date, tuple[int, int]] = {}
        self.payer = account.payer
        self.installment_user = account.installments
        self.terms = plan.terms
        self.devices: list[tuple[datetime, str]] = []
        self.small_assets = "policy_tightening" in self.codes
        # Credits from refunds or overpayments would blur the utilization the sweep reads and
        # the "repaid in full" of the brushing pattern.
        self.plain_ledger = bool(self.codes & {"policy_tightening", "cash_out_suspected"})
        # Refunds and overpayments make the book overstate what is owed: harmless for most,
        # but an installment plan must find its purchase unpaid, and paying below the minimum
        # must really be below it.
        self.refunds = not (self.plain_ledger or self.installment_user
                            or account.overdue_variant is not None)
        self.security_quiet = "account_security" in self.codes
        self.password_scenario = "password_locked" in self.codes
        self.seq = 0

    # --- primitives

    def emit(self, at: datetime, type_: str, **fields: Any) -> _Ev:
        if not self.plan.start <= at < self.horizon:
            raise AssertionError(f"{self.aid}: {type_} at {at} is outside the horizon")
        self.seq += 1
        event = _Ev(at, self.seq, type_, fields, account_id=self.aid)
        self.events.append(event)
        return event

    def emit_operator(self, at: datetime, type_: str, **fields: Any) -> _Ev:
        self.seq += 1
        event = _Ev(at, self.seq, type_, fields, actor=self.rng.choice(OPERATORS))
        self.ops.append(event)
        return event

    def on_day(self, day: date, hour_lo: int = 9, hour_hi: int = 21) -> datetime:
        r = self.rng
        return _local(day, r.randint(hour_lo, hour_hi), r.randint(0, 59), r.randint(0, 59))

    def when(self, day_lo: int, day_hi: int, hour_lo: int = 9, hour_hi: int = 21) -> datetime:
        day = self.start_day + DAY * self.rng.randint(day_lo, day_hi)
        return self.on_day(day, hour_lo, hour_hi)

    def clear(self, at: datetime, span: timedelta = DAY) -> datetime:
        """Move a scenario's start by whole days until [at, at + span] avoids operator freezes."""
        while any(lo <= at + span and at <= hi for lo, hi in self.operator_blocks):
            at += DAY
        return at

    def block(self, lo: datetime, hi: datetime) -> None:
        self.blocked.append((lo, hi))

    def day_of(self, at: datetime) -> int:
        return (at.date() - self.start_day).days

    def amount(self, lo: float = 0.004, hi: float = 0.03) -> int:
        """An ordinary amount in fen: a share of the limit, never a whole yuan."""
        fen = max(100, int(self.limit_fen * self.rng.uniform(lo, hi)))
        return fen - fen % 100 + self.rng.randint(1, 99)

    def merchant(self) -> str:
        if self.rng.random() < 0.75:
            return self.rng.choice(self.favorites)
        return f"M-{self.rng.randint(1, 20000):06d}"

    def purchase(self, at: datetime, amount_fen: int, merchant: str, *, billable: bool = True,
                 kind: str | None = None) -> _Ev:
        fields: dict[str, Any] = {"amount": format_fen(amount_fen), "merchant_id": merchant}
        if kind is not None:
            fields["kind"] = kind
        event = self.emit(at, "purchase", **fields)
        self.purchase_times.append(at)
        if billable:
            self.billable.append((at, amount_fen))
        return event

    def known_devices(self, at: datetime) -> list[str]:
        return [device for first, device in self.devices if first <= at]

    def new_device(self, at: datetime) -> str:
        device = f"{self.aid}-dev{len(self.devices) + 1}"
        self.devices.append((at, device))
        self.emit(at, "login", device_id=device)
        return device

    def statement_dates(self) -> list[date]:
        """Statement dates after the opening and before the horizon (local days)."""
        day = date(self.open_at.year, self.open_at.month, self.statement_day)
        out = []
        while _local(day) < self.horizon:
            if _local(day) > self.open_at:
                out.append(day)
            day = _add_months(day, 1)
        return out

    def due_of(self, statement: date) -> date:
        due = statement.replace(day=self.due_day)
        return due if due > statement else _add_months(due, 1)

    def score_update(self, at: datetime, score: int) -> None:
        fields: dict[str, Any] = {"score": score}
        if self.rng.random() < 0.5:
            base = (score - 350) * 100 // 600
            fields["dimensions"] = {
                name: max(0, min(100, base + self.rng.randint(-12, 12)))
                for name in ("compliance", "behaviour", "identity", "assets", "connections")
            }
        self.emit(at, "score_update", **fields)

    # --- the account

    def build(self) -> list[_Ev]:
        r = self.rng
        dormant = "dormant" in self.codes
        open_day = r.randint(1, 10 if dormant else 20)
        self.open_at = self.when(open_day, open_day, 9, 20)
        limits = (3000, 5000, 8000, 10000, 12000, 15000, 20000, 30000, 50000)
        if "cash_out_suspected" in self.codes:
            limits = (15000, 20000, 30000, 50000)
        self.limit_fen = r.choice(limits) * 100
        fixed_cycle = self.plain_ledger
        self.statement_day, self.due_day = (1, 9) if fixed_cycle or r.random() < 0.85 else (10, 20)
        self.id_expires_on = date(r.randint(2028, 2045), r.randint(1, 12), r.randint(1, 28))
        self.favorites = [f"M-{r.randint(1, 20000):06d}" for _ in range(r.randint(4, 8))]
        self.devices.append((self.open_at + r.randint(2, 50) * MINUTE, f"{self.aid}-dev1"))

        for k, (code, variant, lift) in enumerate(self.account.causes):
            getattr(self, f"_scenario_{code}")(variant, lift, k > 0)

        opened: dict[str, Any] = {
            "credit_limit": format_fen(self.limit_fen),
            "statement_day": self.statement_day,
            "due_day": self.due_day,
            "id_expires_on": self.id_expires_on,
            "segment": self.account.segment,
        }
        self.emit(self.open_at, "account_opened", **opened)
        self.emit(self.devices[0][0], "login", device_id=self.devices[0][1])
        self._routine()
        return self.events

    # --- scenarios (each reserves its time with `block` and the quiet lists)

    def _scenario_overdue(self, variant: str, lift: str, secondary: bool) -> None:
        r = self.rng
        terms = self.terms
        statements = [d for d in self.statement_dates()
                      if _local(d - 16 * DAY) > self.open_at + HOUR]

        def day(d: date) -> int:
            return (d - self.start_day).days

        def episode(candidates: list[date], probation_days: int) -> datetime:
            statement = r.choice(candidates)
            # Something to owe: a purchase in the period, so the statement is not empty.
            at = self.clear(self.on_day(statement - DAY * r.randint(8, 15)))
            self.purchase(at, self.amount(0.02, 0.05), self.merchant())
            due = self.due_of(statement)
            if variant == "late_repayment":
                days_late = 10
                self.late[statement] = days_late
            else:  # a share of the minimum paid on time, the past-due rest days later
                days_late = r.randint(4, 12)
                self.short[statement] = (r.randint(15, 50), days_late)
            paid = _local(due + DAY * (terms.grace_days + days_late), 23)  # an upper bound
            # Overdue from the end of the due day; cure probation runs from the late payment.
            end = paid + DAY * (probation_days + 5)
            self.block(_local(due), end)
            return end

        if variant == "below_minimum_twice":
            end = episode([d for d in statements if 30 <= day(d) <= 75], terms.probation_days)
            # Again after the probation, within the repeat window: the probation is doubled.
            later = [d for d in statements if _local(d - 16 * DAY) > end and day(d) <= 240]
            if later:
                episode(later, terms.probation_days * terms.repeat_multiplier)
        else:
            episode([d for d in statements if 60 <= day(d) <= 230], terms.probation_days)

    def _scenario_external_overdue(self, variant: str, lift: str, secondary: bool) -> None:
        r = self.rng
        product = r.choice(("jiebei", "mybank", "beiyongjin", "other"))
        at = self.when(50, 200)
        owed = r.randint(800, 30000) * 100 + r.randint(0, 99)
        if variant == "bureau_overdue_after_notice":
            # A first report under the threshold: no hold yet.
            self.emit(at - DAY * r.randint(20, 30), "bureau_record", product=product,
                      status="overdue", days_past_due=r.randint(5, 20), amount=format_fen(owed))
        self.emit(at, "bureau_record", product=product, status="overdue",
                  days_past_due=r.randint(30, 75), amount=format_fen(owed + r.randint(0, 5000)))
        settled = at + DAY * r.randint(25, 60) + HOUR * r.randint(0, 6)
        self.emit(settled, "bureau_record", product=product, status="settled", days_past_due=0,
                  amount="0.00")
        self.block(at - HOUR, settled + DAY * 95)

    def _scenario_cash_out_suspected(self, variant: str, lift: str, secondary: bool) -> None:
        r = self.rng
        evidence: list[_Ev] = []
        if variant == "brushing":
            statement = r.choice([d for d in self.statement_dates()
                                  if 40 <= (d - self.start_day).days <= 200])
            first_day = self.clear(_local(self.due_of(statement) + 2 * DAY), 6 * DAY).date()
            first = _local(statement)  # nothing bought from the statement to the cycles
            for k in range(5):
                at = self.on_day(first_day + k * DAY, 10, 20)
                amount = self.amount(0.02, 0.06)
                evidence.append(self.purchase(at, amount, self.merchant(), billable=False))
                last = at + MINUTE * r.randint(5, 40)
                self.emit(last, "repayment", amount=format_fen(amount))
        else:
            first = self.clear(self.when(40, 230), 6 * DAY)
            if variant == "round_amounts":
                merchant = f"M-{r.randint(20001, 30000):06d}"
                times = [first, first + HOUR * r.randint(1, 4), first + HOUR * r.randint(5, 10)]
                for k, at in enumerate(times):
                    amount = r.choice((1, 2)) * ROUND_FEN
                    # The purchase that completes the pattern is itself declined.
                    evidence.append(self.purchase(at, amount, merchant, billable=k < 2))
                last = times[-1]
            elif variant == "quick_refunds":
                last = first
                for k in range(3):
                    at = first + DAY * (k * 2) + HOUR * r.randint(0, 5)
                    amount = self.amount(0.02, 0.05)
                    bought = self.purchase(at, amount, self.merchant())
                    evidence.append(bought)
                    last = at + HOUR * r.randint(3, 40)
                    self.emit(last, "refund", amount=format_fen(amount), purchase_event_id=bought)
            elif variant == "high_risk_merchant":
                merchant = r.choice(HIGH_RISK_MERCHANTS)
                evidence.append(self.purchase(first, self.amount(0.01, 0.04), merchant,
                                              billable=False))
                last = first
            else:  # transfer / cash withdrawal: always declined, and a signal
                kind = r.choice(("transfer", "cash_withdrawal"))
                merchant = "M-P2P-TRANSFER" if kind == "transfer" else "M-ATM-CASH"
                amount = r.randint(5, 50) * 10_000 + r.randint(1, 9999)
                evidence.append(self.purchase(first, amount, merchant, billable=False, kind=kind))
                last = first
        if lift == "appeal":
            submitted = last + DAY * r.randint(1, 3) + HOUR * r.randint(0, 6)
            appeal_id = f"APL-{self.aid}-1"
            self.emit(submitted, "appeal_submitted", appeal_id=appeal_id,
                      hold_code="cash_out_suspected",
                      statement="这几笔是正常消费，可以提供购物凭证。"
                                "These were ordinary purchases; receipts attached.",
                      purchase_event_ids=evidence[:5])
            decided = submitted + DAY * r.randint(1, 3) + HOUR * r.randint(0, 6)
            self.emit_operator(decided, "appeal_decided", appeal_id=appeal_id,
                               decision="approve", reason="凭证核实无误 receipts verified")
            end = decided + DAY
        else:
            end = last + DAY * 63  # 60 days without a new signal
        self.block(first - HOUR, end)

    def _scenario_score_below_threshold(self, variant: str, lift: str, secondary: bool) -> None:
        r = self.rng
        sweep_day = self.day_of(self.plan.sweep_at)
        if secondary:
            at = self.when(380, 430)
        elif r.random() < 0.5:
            at = self.when(40, sweep_day - 85)  # recovered well before the sweep
        else:
            at = self.when(sweep_day + 10, sweep_day + 150)
        recovered = at + DAY * r.randint(20, 60) + HOUR * r.randint(0, 8)
        self.score_update(at, r.randint(520, 595))
        if r.random() < 0.5:
            middle = at + (recovered - at) / 2
            self.score_update(middle, r.randint(560, 599))  # still below: the hold stays
        self.score_update(recovered, r.randint(650, 710) if recovered < self.plan.sweep_at
                          else r.randint(602, 700))
        self.score_quiet.append((at - 20 * DAY, recovered + DAY))
        self.block(at - HOUR, recovered + HOUR)

    def _scenario_dormant(self, variant: str, lift: str, secondary: bool) -> None:
        r = self.rng
        begin = self.open_at + DAY * (365 + r.randint(15, 40))
        times = sorted(begin + DAY * r.randint(0, 12) + HOUR * r.randint(0, 10)
                       for _ in range(r.randint(5, 6)))
        for at in times:
            self.emit(at, "activity",
                      category=r.choice(("financial_service", "life_service", "payment")))
        self.block(self.open_at, times[-1] + 2 * DAY)
        self.activity_quiet.append((self.open_at, times[-1] + DAY))

    def _scenario_account_security(self, variant: str, lift: str, secondary: bool) -> None:
        r = self.rng
        first = self.when(380, 430) if secondary else self.when(40, 230)
        if variant == "bank_card":
            self.emit(first, "profile_change", field="bank_card")
            trigger = first + DAY * r.randint(2, 20) + HOUR * r.randint(0, 5)
            self.emit(trigger, "profile_change", field="bank_card")
        elif variant == "phone_device":
            self.emit(first, "profile_change", field="phone")
            trigger = first + HOUR * r.randint(2, 48)
            self.new_device(trigger)
        else:  # three new devices within a week
            self.new_device(first)
            self.new_device(first + DAY + HOUR * r.randint(0, 12))
            trigger = first + DAY * 3 + HOUR * r.randint(0, 40)
            self.new_device(trigger)
        if lift == "verified":
            verified = trigger + HOUR * r.randint(1, 72)
            self.emit(verified, "identity_verified",
                      method=r.choice(("face_recognition", "bank_card_sms", "id_document")))
            end = verified + HOUR
        else:
            end = trigger + DAY * 33  # 30 days with no sensitive change
        self.block(first - HOUR, end)

    def _scenario_id_expired(self, variant: str, lift: str, secondary: bool) -> None:
        r = self.rng
        expires = self.start_day + DAY * (r.randint(380, 410) if secondary else r.randint(60, 230))
        self.id_expires_on = expires
        updated = self.clear(self.on_day(expires + DAY * r.randint(10, 45)), HOUR)
        renewed = date(expires.year + r.choice((10, 20)), expires.month, min(expires.day, 28))
        self.emit(updated, "id_document_updated", expires_on=renewed)
        self.block(_local(expires), updated + HOUR)

    def _scenario_password_locked(self, variant: str, lift: str, secondary: bool) -> None:
        r = self.rng
        at = self.clear(self.when(380, 430) if secondary else self.when(30, 300), 2 * DAY)
        first = at
        for _ in range(5):
            self.emit(at, "password_attempt", ok=False)
            at += MINUTE * r.randint(1, 4) + timedelta(seconds=r.randint(0, 59))
        if lift == "reset":
            if r.random() < 0.4:
                at += MINUTE * r.randint(10, 40)
                self.emit(at, "password_reset", identity_verified=False)  # does not unlock
            at += HOUR * r.randint(1, 6)
            self.emit(at, "password_reset", identity_verified=True)
        else:
            at = first + HOUR * r.randint(25, 30)  # the 24-hour lock has run out
        at += MINUTE * r.randint(1, 10)
        self.emit(at, "password_attempt", ok=True)
        self.block(first - HOUR, at + HOUR)
        self.password_quiet.append((first - DAY, at + DAY))

    def _scenario_policy_tightening(self, variant: str, lift: str, secondary: bool) -> None:
        r = self.rng
        sweep = self.plan.sweep_at
        # A score in 600-619 before the sweep ...
        self.score_update(sweep - DAY * r.randint(15, 30) - HOUR * r.randint(0, 8),
                          r.randint(601, 618))
        # ... and more than half the line used at the sweep: purchases since the last statement.
        period_start = max(d for d in self.statement_dates() if _local(d) < sweep)
        target = self.limit_fen * r.uniform(0.58, 0.72)
        spent = 0
        day = period_start + DAY
        while spent < target:
            at = self.on_day(day, 10, 20)
            amount = self.amount(0.10, 0.17)
            if amount > target - spent:
                rest = int(target - spent) + 100
                amount = rest - rest % 100 + r.randint(1, 99)
            self.purchase(at, amount, f"M-{r.randint(30001, 40000):06d}")
            spent += amount
            day += DAY
        if day >= sweep.date():
            raise AssertionError("policy scenario purchases ran into the sweep")
        reopen = sweep + DAY * r.randint(100, 130) + HOUR * r.randint(0, 8)
        if lift == "assets":
            deposits = r.randint(6_000, 20_000) * 100 + r.randint(0, 99)
            wealth = r.randint(4_500, 15_000) * 100
            self.emit(reopen, "asset_update", deposits=format_fen(deposits),
                      wealth_balance=format_fen(wealth))
        else:
            self.score_update(reopen, r.randint(660, 720))
        self.score_quiet.append((sweep - DAY * 45, reopen + DAY))
        self.block(_local(period_start), reopen + 3 * DAY)

    # --- the routine of every account

    def _months(self) -> list[date]:
        month = date(self.open_at.year, self.open_at.month, 1)
        out = []
        while _local(month) < self.horizon:
            out.append(month)
            month = _add_months(month, 1)
        return out

    def _ok(self, at: datetime) -> bool:
        return self.open_at + HOUR < at < self.horizon

    def _routine(self) -> None:
        r = self.rng
        months = self._months()
        # purchases: candidates, made (or not, when the line is too used) by `_ledger`
        candidates: list[tuple[datetime, int, str, bool]] = []
        for month in months:
            length = calendar.monthrange(month.year, month.month)[1]
            for _ in range(r.randint(4, 8)):
                at = self.on_day(month + DAY * r.randrange(length), 8, 22)
                if not self._ok(at) or _in(at, self.blocked):
                    continue
                candidates.append((at, self.amount(), self.merchant(), False))
            if self.installment_user and r.random() < 0.3:
                # Something larger (a phone, a course): to be paid in installments.
                at = self.on_day(month + DAY * r.randrange(length), 10, 21)
                if self._ok(at) and not _in(at, self.blocked):
                    candidates.append((at, self.amount(0.06, 0.20), self.merchant(), True))
        bought = self._ledger(candidates)
        # refunds, well after the quick-refund window
        if self.refunds:
            for event, at, amount in bought:
                if r.random() < 0.015:
                    refund_at = at + DAY * r.randint(4, 20) + HOUR * r.randint(0, 12)
                    if refund_at < self.horizon:
                        part = amount if r.random() < 0.5 else max(1, amount * r.randint(10, 90)
                                                                   // 100)
                        self.emit(refund_at, "refund", amount=format_fen(part),
                                  purchase_event_id=event)
        # devices and logins
        if not self.security_quiet and r.random() < 0.25:
            at = self.when(60, 500, 8, 22)
            if self._ok(at):
                self.new_device(at)
        for month in months:
            length = calendar.monthrange(month.year, month.month)[1]
            for _ in range(r.choice((1, 1, 2))):
                at = self.on_day(month + DAY * r.randrange(length), 7, 23)
                devices = self.known_devices(at)
                if self._ok(at) and devices:
                    self.emit(at, "login", device_id=r.choice(devices))
        # activity
        for month in months:
            length = calendar.monthrange(month.year, month.month)[1]
            for _ in range(r.choice((0, 1, 1, 2))):
                at = self.on_day(month + DAY * r.randrange(length), 8, 22)
                if self._ok(at) and not _in(at, self.activity_quiet):
                    self.emit(at, "activity",
                              category=r.choice(("financial_service", "life_service", "payment")))
        # scores: at opening, then every few months; never below 650 outside scenarios
        base = r.randint(665, 790)
        at = self.open_at + HOUR * r.randint(2, 40)
        while at < self.horizon:
            if not _in(at, self.score_quiet):
                self.score_update(at, max(650, min(950, base + r.randint(-10, 15))))
            at += DAY * r.randint(75, 120) + HOUR * r.randint(0, 12)
        # assets
        at = self.open_at + DAY * r.randint(1, 15)
        while at < self.horizon:
            if self.small_assets:
                deposits, wealth = r.randint(200, 5_000) * 100, r.randint(0, 3_000) * 100
            else:
                deposits = r.randint(500, 200_000) * 100 + r.randint(0, 99)
                wealth = 0 if r.random() < 0.3 else r.randint(1_000, 500_000) * 100
            self.emit(at, "asset_update", deposits=format_fen(deposits),
                      wealth_balance=format_fen(wealth))
            at += DAY * r.randint(60, 150) + HOUR * r.randint(0, 12)
        # passwords: an occasional check, rarely a slip followed by the right one
        for month in months:
            length = calendar.monthrange(month.year, month.month)[1]
            at = self.on_day(month + DAY * r.randrange(length), 8, 22)
            if not self._ok(at) or _in(at, self.password_quiet):
                continue
            if not self.password_scenario and r.random() < 0.04:
                self.emit(at, "password_attempt", ok=False)
                at += MINUTE * r.randint(1, 3)
                self.emit(at, "password_attempt", ok=True)
            elif r.random() < 0.25:
                self.emit(at, "password_attempt", ok=True)
        # profile changes that are not takeover signals on their own
        if not self.security_quiet:
            if r.random() < 0.08:
                at = self.when(30, 500)
                if self._ok(at):
                    self.emit(at, "profile_change", field="address")
            if r.random() < 0.04:
                at = self.when(30, 500)
                if self._ok(at):
                    self.emit(at, "profile_change", field="bank_card")
        # a sibling product in good standing, now and then
        if "external_overdue" not in self.codes and r.random() < 0.03:
            at = self.when(30, 500)
            if self._ok(at):
                self.emit(at, "bureau_record", product="other", status="settled",
                          days_past_due=0, amount="0.00")

    def _repayment_time(self, lo: date, hi: date) -> datetime:
        """A time on a day in [lo, hi] with no purchase in the hour before (not brushing)."""
        r = self.rng
        span = (hi - lo).days
        at = self.on_day(lo + DAY * r.randint(0, span), 9, 22)
        times = self.purchase_times  # sorted by `_ledger`
        for _ in range(50):
            k = bisect.bisect_left(times, at - 70 * MINUTE)
            clash = k < len(times) and times[k] <= at
            if not clash and not _in(at, self.operator_blocks):
                return at
            at = self.on_day(lo + DAY * r.randint(0, span), 9, 22)
        raise AssertionError(f"{self.aid}: no free time to repay between {lo} and {hi}")

    def _ledger(self, candidates: list[tuple[datetime, int, str, bool]]
                ) -> list[tuple[_Ev, datetime, int]]:
        """Walk the statement cycles in time order: buy while the line has room, convert the
        larger purchases into installments, repay each statement as this payer does. Returns
        the ordinary purchases made (event, time, amount)."""
        book = _Book(self.terms)
        statements = self.statement_dates()
        cuts = [_local(d) for d in statements] + [self.horizon]
        scenario = sorted(self.billable)  # the scenarios' purchases, already made
        candidates.sort(key=lambda c: c[0])
        bought: list[tuple[_Ev, datetime, int]] = []
        self.pending: list[tuple[datetime, int]] = []  # (repaid by, amount) of repayments
        self.repayments: list[tuple[date, date, list[int]]] = []  # (first day, last day, parts)
        self.plans_made = 0
        ci = si = 0
        for k, cut in enumerate(cuts):
            # The cycle's scenario purchases count from its start: the room left is understated.
            while si < len(scenario) and scenario[si][0] < cut:
                book.unbilled += scenario[si][1]
                si += 1
            while ci < len(candidates) and candidates[ci][0] < cut:
                at, amount, merchant, large = candidates[ci]
                ci += 1
                owed = book.outstanding + sum(a for until, a in self.pending if until > at)
                if owed + amount > self.limit_fen * (LARGE_PURCHASE_CAP if large else CREDIT_CAP):
                    continue  # near the limit: this customer does without
                event = self.purchase(at, amount, merchant)
                plan = self._installment_plan(event, at, amount, statements, k) if large else None
                if plan is None:
                    book.unbilled += amount
                    if not large:
                        bought.append((event, at, amount))
                else:
                    book.plans.append(plan)
            if k == len(statements):
                break
            statement = statements[k]
            billed = book.statement(statement, self.due_of(statement))
            if billed is not None:
                self._repay(book, statement, *billed)
        self.purchase_times.sort()
        for lo, hi, parts in self.repayments:
            if len(parts) == 1:
                at = self._repayment_time(lo, hi)
                self.emit(at, "repayment", amount=format_fen(parts[0]))
            else:  # in two parts, days apart
                first = self._repayment_time(lo, hi - DAY)
                self.emit(first, "repayment", amount=format_fen(parts[0]))
                second = self._repayment_time(first.date() + DAY, hi)
                self.emit(second, "repayment", amount=format_fen(parts[1]))
        return bought

    def _installment_plan(self, purchase: _Ev, at: datetime, amount_fen: int,
                          statements: list[date], k: int) -> _BookPlan | None:
        """Convert a larger purchase (made in cycle `k`) into installments: mostly within its
        cycle, else after its statement but days before that statement is due (and repaid)."""
        r = self.rng
        if r.random() < 0.15:
            return None  # not every larger purchase is converted
        cut = _local(statements[k]) if k < len(statements) else self.horizon
        when = at + HOUR * r.randint(1, 72)
        if when < cut - HOUR and r.random() < 0.65:
            first = statements[k] if k < len(statements) else None  # billed from this statement
        elif k < len(statements):
            when = self.on_day(statements[k] + DAY * r.randint(0, 2), 9, 21)
            first = statements[k + 1] if k + 1 < len(statements) else None  # restated, then next
        else:
            return None
        if when >= self.horizon or _in(when, self.operator_blocks):
            return None
        months = r.choice(self.terms.allowed_months)
        self.plans_made += 1
        self.emit(when, "installment_plan_created", plan_id=f"IP-{self.aid}-{self.plans_made}",
                  purchase_event_id=purchase, months=months)
        fee = -(-amount_fen * self.terms.fee_hundredths[months] // 10_000)  # rounded up
        return _BookPlan(amount_fen, fee, months, first)

    def _repay(self, book: _Book, statement: date, new_balance: int, minimum: int) -> None:
        """Decide what repays this statement, and when (the time is drawn once every purchase
        is known: `_ledger`)."""
        r = self.rng
        terms = self.terms
        due = self.due_of(statement)
        # What autopay pays: a little above the minimum, in whole yuan.
        above = min(new_balance, -(-(minimum + minimum // 50 + 1) // 100) * 100)

        def schedule(lo: date, hi: date, parts: list[int]) -> None:
            owed_before = book.outstanding
            book.pay(sum(parts))
            self.repayments.append((lo, hi, parts))
            # Until the end of `hi` the purchases' room must not count on this repayment.
            self.pending.append((_local(hi + DAY), owed_before - book.outstanding))

        lo, hi = max(statement + DAY, due - DAY * 5), due - DAY
        if statement in self.late:  # nothing by the due date; everything days later
            days_late = terms.grace_days + self.late[statement]
            book.due_end()
            book.late_fee(minimum, days_late)
            schedule(due + DAY * days_late, due + DAY * days_late, [new_balance])
            return
        if statement in self.short:  # a share of the minimum on time, the past-due rest later
            percent, days_late = self.short[statement]
            days_late += terms.grace_days
            part = max(1, minimum * percent // 100)
            schedule(lo, hi, [part])
            book.due_end()
            past_due = minimum - part
            book.late_fee(past_due, days_late)
            cure = past_due + past_due // 50 + 100
            if r.random() < 0.5:  # some pay off more than the past-due minimum
                cure = max(cure, (new_balance - part) * r.randint(30, 100) // 100)
            schedule(due + DAY * days_late, due + DAY * days_late, [cure])
            return
        if self.payer == MINIMUM_PAYER:
            lo, hi = due - 2 * DAY, due  # autopay, on the due day at the latest
        if _local(hi) >= self.horizon:
            return
        if self.payer == TRANSACTOR:
            if r.random() < 0.05 and hi > lo:
                part = new_balance * r.randint(30, 70) // 100
                parts = [part, new_balance - part] if part > 0 else [new_balance]
            elif self.refunds and r.random() < 0.03:
                parts = [new_balance + r.randint(10, 300) * 100]  # a credit for next month
            else:
                parts = [new_balance]
        elif self.payer == REVOLVER:
            if r.random() < 0.15:
                parts = [new_balance]  # all of it, this month
            else:
                parts = [min(new_balance, max(above, new_balance * r.randint(20, 90) // 100))]
        else:
            parts = [above]
        schedule(lo, hi, parts)
        book.due_end()


# --- the portfolio -------------------------------------------------------------------------------


def _operator_calendar(plan: _Plan) -> list[_Ev]:
    rng = random.Random(f"jiefeng-operators-{plan.spec.seed}")
    events: list[_Ev] = []

    def op(at: datetime, type_: str, **fields: Any) -> None:
        events.append(_Ev(at, len(events), type_, fields, actor=rng.choice(OPERATORS)))

    for window_id, (start, end, segment) in plan.windows.items():
        fields: dict[str, Any] = {"window_id": window_id, "start": start, "end": end}
        if segment is not None:
            fields["segment"] = segment
        op(_local(start.date() - DAY * 7, 10), "maintenance_scheduled", **fields)
    # A window scheduled, then called off before it starts.
    start_day = plan.start.date()
    cancelled_day = _add_months(start_day, 10) + DAY * 14
    op(_local(cancelled_day - DAY * 14, 11), "maintenance_scheduled", window_id="MW-ALL-02",
       start=_local(cancelled_day, 2), end=_local(cancelled_day, 6))
    op(_local(cancelled_day - DAY * 6, 16), "maintenance_cancelled", window_id="MW-ALL-02")

    op(plan.migration_a_start, "migration_started", campaign_id="MIG-CORE-A",
       account_ids=[aid for batch in plan.migration_a for aid in batch])
    for batch, done in zip(plan.migration_a, plan.migration_a_done, strict=True):
        op(done, "migration_completed", campaign_id="MIG-CORE-A", account_ids=batch)
    op(plan.migration_b_start, "migration_started", campaign_id="MIG-LEGACY-B", segment="legacy")
    op(plan.migration_b_done, "migration_completed", campaign_id="MIG-LEGACY-B")

    op(plan.sweep_at, "policy_sweep", sweep_id=f"SWEEP-{plan.sweep_at:%Y-%m}",
       criteria=SWEEP_CRITERIA, reopen_criteria=REOPEN_CRITERIA)
    return events


def generate_portfolio(spec: PortfolioSpec) -> list[dict]:
    """Every event of the portfolio in wire form, sorted by `at` (then event id)."""
    plan = _plan(spec)
    operator_events = _operator_calendar(plan)
    out: list[dict] = []
    for account in plan.accounts:
        events = _Account(plan, account, operator_events).build()
        events.sort(key=lambda e: (e.at, e.seq))
        for n, event in enumerate(events, 1):
            event.event_id = f"{account.account_id}-{n:05d}"
        out.extend(event.to_dict() for event in events)
    ordered = sorted(enumerate(operator_events), key=lambda pair: (pair[1].at, pair[0]))
    for n, (_, event) in enumerate(ordered, 1):
        event.event_id = f"OP-{n:05d}"
    out.extend(event.to_dict() for _, event in ordered)
    out.sort(key=lambda d: (d["at"], d["event_id"]))
    return out
