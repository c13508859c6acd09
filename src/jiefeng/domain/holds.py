"""Holds: why an account is frozen, with the evidence and the way out.

A hold is immutable; placing or releasing one replaces the account's entry. Hold codes are a
public contract (API, explanations, message catalogs): add codes, never rename them. The names
below are the built-in causes' codes; each cause declares its own (`jiefeng.domain.causes`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from jiefeng.domain.trace import Trace

OVERDUE = "overdue"
CURE_PROBATION = "cure_probation"
EXTERNAL_OVERDUE = "external_overdue"
CASH_OUT_SUSPECTED = "cash_out_suspected"
SCORE_BELOW_THRESHOLD = "score_below_threshold"
DORMANT = "dormant"
ACCOUNT_SECURITY = "account_security"
ID_EXPIRED = "id_expired"
MAINTENANCE = "maintenance"
MIGRATION = "migration"
PASSWORD_LOCKED = "password_locked"
POLICY_TIGHTENING = "policy_tightening"
MANUAL_REVIEW = "manual_review"  # extension: a hold an operator places by hand

# How each hold can be released (the release paths; every hold has at least one).
RELEASE_TIME = "time"  # lifts by itself at `releases_at`
RELEASE_CONDITION = "condition"  # lifts when a condition clears
RELEASE_EVENT = "event"  # lifts on a customer or outside event
RELEASE_REVIEW = "review"  # lifts when an appeal is approved

# What a hold blocks. Repayment is deliberately absent from every list: a frozen customer must
# always be able to pay.
BLOCKS_PURCHASES: tuple[str, ...] = ("purchase",)

# Every hold code's kind (release paths, closes the line, confidential, ...), as the causes
# declare them (jiefeng.domain.causes fills this in, in descending precedence).
KINDS: dict[str, Any] = {}

# Tables derived from the causes' declarations, read through the module (`H.HOLD_CODES`):
# HOLD_CODES (descending precedence), RELEASE_PATHS, LINE_CLOSING_CODES (holds that close the
# line rather than freeze it), CONFIDENTIAL_CODES (detection thresholds never reach the
# customer), SCOPED_CODES (holds that live once in the portfolio's scopes).
_DERIVED = {
    "HOLD_CODES": "hold_codes",
    "RELEASE_PATHS": "release_paths",
    "LINE_CLOSING_CODES": "line_closing",
    "CONFIDENTIAL_CODES": "confidential",
    "SCOPED_CODES": "scoped",
}


def _tables() -> Any:
    from jiefeng.domain import causes  # the causes import this module: load them on first use

    return causes.tables()


def __getattr__(name: str) -> Any:
    if name in _DERIVED:
        return getattr(_tables(), _DERIVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, slots=True)
class Hold:
    """One reason the account is frozen.

    `evidence` holds structured facts (numbers, dates, ids), never prose; `placed_by` is the
    event id that caused the hold, or `clock:<what>` for holds the passage of time places;
    `trace` the rule, policy version, parameters and facts of the decision (`domain/trace.py`).
    """

    code: str
    since: dt.datetime
    placed_by: str
    evidence: dict[str, Any] = field(default_factory=dict)
    releases_at: dt.datetime | None = None
    placed_by_actor: str | None = None
    trace: Trace | None = None  # the decision that placed or last refreshed it

    def __post_init__(self) -> None:
        if self.code not in KINDS:
            _tables()  # the causes fill KINDS in when first imported
        assert self.code in KINDS, f"unknown hold code {self.code}"
        assert self.since.tzinfo is not None, "hold times are timezone-aware"
        assert self.releases_at is None or self.releases_at > self.since, "release after placement"

    @property
    def closes_line(self) -> bool:
        return KINDS[self.code].closes_line

    @property
    def blocks(self) -> tuple[str, ...]:
        return KINDS[self.code].blocks

    @property
    def release_paths(self) -> tuple[str, ...]:
        return KINDS[self.code].release_paths


def derive_status(holds: list[Hold] | tuple[Hold, ...]) -> str:
    """`closed` if a line-closing hold is active, else `frozen` if any hold is, else `active`."""
    if any(KINDS[hold.code].closes_line for hold in holds):
        return "closed"
    if holds:
        return "frozen"
    return "active"
