"""Holds: why an account is frozen, with the evidence and the way out.

A hold is immutable; placing or releasing one replaces the account's entry. Hold codes are a
public contract (API, explanations, message catalogs): add codes, never rename them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

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

HOLD_CODES: tuple[str, ...] = (
    OVERDUE,
    CURE_PROBATION,
    EXTERNAL_OVERDUE,
    CASH_OUT_SUSPECTED,
    SCORE_BELOW_THRESHOLD,
    DORMANT,
    ACCOUNT_SECURITY,
    ID_EXPIRED,
    MAINTENANCE,
    MIGRATION,
    PASSWORD_LOCKED,
    POLICY_TIGHTENING,
    MANUAL_REVIEW,
)

# Holds that close the line (limit reclaimed) rather than freeze it.
LINE_CLOSING_CODES = frozenset({DORMANT, POLICY_TIGHTENING})

# Holds whose detection thresholds must never reach the customer.
CONFIDENTIAL_CODES = frozenset({CASH_OUT_SUSPECTED, ACCOUNT_SECURITY})

# Holds that live once in the portfolio's scopes, not in each account's state.
SCOPED_CODES = frozenset({MAINTENANCE, MIGRATION})

# What a hold blocks. Repayment is deliberately absent from every list: a frozen customer must
# always be able to pay.
BLOCKS_PURCHASES: tuple[str, ...] = ("purchase",)

# How each hold can be released (the release paths; every hold has at least one).
RELEASE_TIME = "time"  # lifts by itself at `releases_at`
RELEASE_CONDITION = "condition"  # lifts when a condition clears
RELEASE_EVENT = "event"  # lifts on a customer or outside event
RELEASE_REVIEW = "review"  # lifts when an appeal is approved

RELEASE_PATHS: dict[str, tuple[str, ...]] = {
    OVERDUE: (RELEASE_CONDITION,),
    CURE_PROBATION: (RELEASE_TIME,),
    EXTERNAL_OVERDUE: (RELEASE_EVENT, RELEASE_REVIEW),
    CASH_OUT_SUSPECTED: (RELEASE_TIME, RELEASE_REVIEW),
    SCORE_BELOW_THRESHOLD: (RELEASE_CONDITION, RELEASE_REVIEW),
    DORMANT: (RELEASE_CONDITION, RELEASE_REVIEW),
    ACCOUNT_SECURITY: (RELEASE_EVENT, RELEASE_TIME, RELEASE_REVIEW),
    ID_EXPIRED: (RELEASE_EVENT,),
    MAINTENANCE: (RELEASE_TIME,),
    MIGRATION: (RELEASE_EVENT,),
    PASSWORD_LOCKED: (RELEASE_TIME, RELEASE_EVENT),
    POLICY_TIGHTENING: (RELEASE_CONDITION, RELEASE_REVIEW),
    MANUAL_REVIEW: (RELEASE_EVENT, RELEASE_REVIEW),
}


@dataclass(frozen=True, slots=True)
class Hold:
    """One reason the account is frozen.

    `evidence` holds structured facts (numbers, dates, ids), never prose; `placed_by` is the
    event id that caused the hold, or `clock:<what>` for holds the passage of time places.
    """

    code: str
    since: dt.datetime
    placed_by: str
    evidence: dict[str, Any] = field(default_factory=dict)
    releases_at: dt.datetime | None = None
    placed_by_actor: str | None = None

    def __post_init__(self) -> None:
        assert self.code in RELEASE_PATHS, f"unknown hold code {self.code}"
        assert self.since.tzinfo is not None, "hold times are timezone-aware"
        assert self.releases_at is None or self.releases_at > self.since, "release after placement"

    @property
    def closes_line(self) -> bool:
        return self.code in LINE_CLOSING_CODES

    @property
    def blocks(self) -> tuple[str, ...]:
        return BLOCKS_PURCHASES

    @property
    def release_paths(self) -> tuple[str, ...]:
        return RELEASE_PATHS[self.code]


def derive_status(holds: list[Hold] | tuple[Hold, ...]) -> str:
    """`closed` if a line-closing hold is active, else `frozen` if any hold is, else `active`."""
    if any(hold.code in LINE_CLOSING_CODES for hold in holds):
        return "closed"
    if holds:
        return "frozen"
    return "active"
