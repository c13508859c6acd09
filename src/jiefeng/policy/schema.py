"""The policy: every threshold the engine uses, as one validated, versioned document.

A policy is plain data. `load_policy` reads a TOML file and validates it whole; an invalid file
is refused with the field and the reason, and the engine keeps the policy it had.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from decimal import Decimal
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Billing(_Section):
    """The ledger's terms (see jiefeng.domain.ledger). A missing key takes its default, so a
    policy written before minimum payments existed stays valid."""

    # Share of the revolving principal due as the minimum; 100 means pay in full.
    minimum_payment_pct: Decimal = Field(Decimal(10), ge=1, le=100, decimal_places=2)
    minimum_payment_floor_fen: int = Field(0, ge=0, le=10_000_000)
    revolving_interest_daily_bp: int = Field(5, ge=0, le=100)
    grace_days: int = Field(0, ge=0, le=30)
    tolerance_fen: int = Field(0, ge=0, le=100_000)
    late_fee_daily_bp: int = Field(5, ge=0, le=100)


class Installments(_Section):
    allowed_months: tuple[int, ...] = (3, 6, 9, 12)
    # months -> total fee in percent of the converted principal
    fee_pct_total: dict[int, Decimal] = Field(
        default_factory=lambda: {3: Decimal("2.5"), 6: Decimal("4.5"), 9: Decimal("6.5"),
                                 12: Decimal("8.8")})

    @field_validator("allowed_months")
    @classmethod
    def _months(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("must list at least one number of months")
        if any(not 2 <= m <= 36 for m in value):
            raise ValueError("each number of months must be from 2 to 36")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a number of months")
        return tuple(sorted(value))

    @field_validator("fee_pct_total")
    @classmethod
    def _fees(cls, value: dict[int, Decimal]) -> dict[int, Decimal]:
        for months, pct in value.items():
            if not Decimal(0) <= pct <= Decimal(50):
                raise ValueError(f"the fee for {months} months must be from 0 to 50 percent")
            if pct != pct.quantize(Decimal("0.01")):
                raise ValueError(f"the fee for {months} months has more than 2 decimal places")
        return value

    @model_validator(mode="after")
    def _every_term_priced(self) -> Installments:
        missing = [m for m in self.allowed_months if m not in self.fee_pct_total]
        if missing:
            raise ValueError(f"fee_pct_total: no fee for {missing[0]} months")
        return self


class Overdue(_Section):
    bureau_prenotice_days_past_due: int = Field(1, ge=1, le=30)
    bureau_report_days_past_due: int = Field(3, ge=1, le=90)

    @model_validator(mode="after")
    def _notice_first(self) -> Overdue:
        if self.bureau_prenotice_days_past_due >= self.bureau_report_days_past_due:
            raise ValueError(
                "bureau_prenotice_days_past_due: must be below bureau_report_days_past_due"
            )
        return self


class CureProbation(_Section):
    days: int = Field(90, ge=90, le=180)
    repeat_window_days: int = Field(365, ge=1, le=730)
    repeat_multiplier: int = Field(2, ge=1, le=4)


class ExternalOverdue(_Section):
    min_days_past_due: int = Field(30, ge=1, le=365)


class CashOut(_Section):
    quiet_days: int = Field(60, ge=1, le=365)
    rapid_purchase_count: int = Field(3, ge=2, le=50)
    rapid_window_hours: int = Field(24, ge=1, le=168)
    rapid_share_of_available_pct: int = Field(90, ge=1, le=100)
    round_amount_fen: int = Field(100_000, ge=100)
    quick_refund_hours: int = Field(48, ge=1, le=720)
    quick_refund_count: int = Field(3, ge=1, le=50)
    quick_refund_window_days: int = Field(7, ge=1, le=90)
    brushing_repay_minutes: int = Field(60, ge=1, le=1440)
    brushing_cycle_count: int = Field(5, ge=2, le=100)
    brushing_window_days: int = Field(7, ge=1, le=90)
    high_risk_merchants: frozenset[str] = frozenset()


class Score(_Section):
    threshold: int = Field(600, ge=350, le=950)
    release_at: int = Field(600, ge=350, le=950)

    @model_validator(mode="after")
    def _hysteresis(self) -> Score:
        if self.release_at < self.threshold:
            raise ValueError("release_at: must be at or above threshold")
        return self


class Dormancy(_Section):
    days_since_open: int = Field(365, ge=30, le=3650)
    notice_days: int = Field(30, ge=1, le=180)
    reopen_activity_count: int = Field(5, ge=1, le=100)
    reopen_window_days: int = Field(30, ge=1, le=365)


class AccountSecurity(_Section):
    bank_card_changes: int = Field(2, ge=1, le=20)
    bank_card_window_days: int = Field(30, ge=1, le=365)
    phone_device_window_hours: int = Field(72, ge=1, le=720)
    new_devices: int = Field(3, ge=1, le=50)
    new_devices_window_days: int = Field(7, ge=1, le=90)
    quiet_days: int = Field(30, ge=1, le=365)


class IdExpiry(_Section):
    notice_days: int = Field(60, ge=1, le=365)


class Password(_Section):
    max_consecutive_failures: int = Field(5, ge=1, le=20)
    lock_hours: int = Field(24, ge=1, le=720)


class PolicyTightening(_Section):
    min_closed_days: int = Field(90, ge=0, le=3650)


class Appeals(_Section):
    sla_days: int = Field(15, ge=1, le=90)
    fast_sla_hours: int = Field(72, ge=1, le=720)
    fast_sla_codes: frozenset[str] = frozenset({"cash_out_suspected", "account_security"})
    appealable_codes: frozenset[str] = frozenset()

    @field_validator("appealable_codes")
    @classmethod
    def _appealable_on_review(cls, codes: frozenset[str]) -> frozenset[str]:
        # An approved appeal lifts the hold: only a hold whose cause declares that it lifts on
        # review may be appealed (the causes' declarations, jiefeng.domain.causes).
        from jiefeng.domain import holds as H

        for code in sorted(codes):
            if code not in H.RELEASE_PATHS:
                raise ValueError(f"{code!r} is not a hold code")
            if H.RELEASE_REVIEW not in H.RELEASE_PATHS[code]:
                raise ValueError(f"{code!r} cannot be appealed: its hold does not lift on "
                                 "review")
        return codes


class Ingest(_Section):
    """Which event times ingest accepts (new events only: stored ones always replay).

    An event far in the future makes every later event of its account late, so each batch
    replays the account up to it; one before the floor is a typo or a clock at zero."""

    max_future_minutes: int = Field(10, ge=0, le=7 * 24 * 60)
    min_event_date: dt.date = dt.date(2000, 1, 1)

    @field_validator("min_event_date")
    @classmethod
    def _plausible_floor(cls, value: dt.date) -> dt.date:
        if not dt.date(1970, 1, 1) <= value <= dt.date(2200, 1, 1):
            raise ValueError("must be between 1970-01-01 and 2200-01-01")
        return value


class Support(_Section):
    phone: str = "95188"
    appeal_path: str = "/me/appeals"
    # The issuer's repayment page: the customer page's "repay" button (hidden when empty).
    repay_url: str = Field("", max_length=500, pattern=r"^(|https://\S+|/\S*)$")


class Disclosures(_Section):
    """The customer's rights, shown on the customer page: who extends the credit, how to
    dispute a credit bureau record, how to ask for a person to review an automated decision."""

    creditor_name: str = Field("", max_length=200)  # empty: "your card issuer"
    creditor_contact: str = Field("", max_length=200)  # empty: the support phone
    # Days within which a disputed bureau record is checked and answered (20 under China's
    # Regulation on the Administration of Credit Investigation Industry, art. 25).
    bureau_dispute_days: int = Field(20, ge=1, le=365)
    human_review_contact: str = Field("", max_length=200)  # empty: the support phone


class Policy(_Section):
    version: str = Field(min_length=1, max_length=64)
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    billing: Billing = Billing()
    installments: Installments = Installments()
    overdue: Overdue = Overdue()
    cure_probation: CureProbation = CureProbation()
    external_overdue: ExternalOverdue = ExternalOverdue()
    cash_out: CashOut = CashOut()
    score: Score = Score()
    dormancy: Dormancy = Dormancy()
    account_security: AccountSecurity = AccountSecurity()
    id_expiry: IdExpiry = IdExpiry()
    password: Password = Password()
    policy_tightening: PolicyTightening = PolicyTightening()
    appeals: Appeals = Appeals()
    ingest: Ingest = Ingest()
    support: Support = Support()
    disclosures: Disclosures = Disclosures()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        from babel.numbers import is_currency  # explanations format money in it

        if not is_currency(value):
            raise ValueError(f"{value[:20]!r} is not an ISO 4217 currency code such as CNY")
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        # Read by every deadline of every fold step: computed once per policy object.
        return ZoneInfo(self.timezone)


class PolicyInvalid(ValueError):
    """A policy document failed validation; `problems` lists (field, reason)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in problems))


_NAMED_REASON = re.compile(r"^[a-z_]+: ")


def parse_policy(document: dict[str, Any]) -> Policy:
    try:
        return Policy.model_validate(document)
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False):
            loc = [str(part) for part in item["loc"]]
            reason = "unknown setting" if item["type"] == "extra_forbidden" else item["msg"]
            reason = reason.removeprefix("Value error, ")
            # Cross-field validators name their field in the message: "release_at: must be ...".
            if item["type"] == "value_error" and _NAMED_REASON.match(reason):
                name, reason = reason.split(": ", 1)
                loc.append(name)
            problems.append((".".join(loc) or "(policy)", reason))
        raise PolicyInvalid(problems) from None


def parse_policy_text(text: str) -> Policy:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyInvalid([("(file)", f"not valid TOML: {error}")]) from None
    return parse_policy(document)


def read_policy_text(path: str | Path) -> str:
    """A policy file's text. Raises OSError if it cannot be read, PolicyInvalid if it is not
    UTF-8 (TOML is UTF-8 text). A byte-order mark before it, as some Windows editors write, is
    not part of the text."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PolicyInvalid([("(file)", (
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at byte {error.start + 1}); "
            "save the policy file as UTF-8"))]) from None


def load_policy(path: str | Path) -> Policy:
    return parse_policy_text(read_policy_text(path))


def default_policy_text() -> str:
    return resources.files("jiefeng.policy").joinpath("default.toml").read_text(encoding="utf-8")


_DEFAULT: Policy | None = None


def default_policy() -> Policy:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = parse_policy_text(default_policy_text())
    return _DEFAULT
