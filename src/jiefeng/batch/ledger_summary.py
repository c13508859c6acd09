"""What the credit ledger did to a portfolio, read back from the store (the engine's own
effects), not from whoever generated the events:

    summarize_ledger(store, horizon, policy) -> LedgerSummary

Each `statement_issued` effect is counted by the outcome of its `statement_judged` effect
(`paid_in_full`, `minimum_met` and the rest revolving, or `below_minimum`: past due), or as
`not_yet_due` when it was not judged by the horizon.

Installment plans are the `installment_plan_created` effects. The `overdue` share is the
accounts an `overdue` hold was ever placed on, out of the card holders (accounts with at least
one statement).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from jiefeng.domain import holds as H
from jiefeng.domain.effects import (
    HOLD_PLACED,
    INSTALLMENT_PLAN_CREATED,
    STATEMENT_ISSUED,
    STATEMENT_JUDGED,
)
from jiefeng.policy.schema import Policy
from jiefeng.store import schema as t
from jiefeng.store.schema import parse_utc_text, utc_text

PAID_IN_FULL, MINIMUM_MET, BELOW_MINIMUM, NOT_YET_DUE = (
    "paid_in_full", "minimum_met", "below_minimum", "not_yet_due")
OUTCOMES = (PAID_IN_FULL, MINIMUM_MET, BELOW_MINIMUM, NOT_YET_DUE)
OUTCOME_LABELS = {
    PAID_IN_FULL: "paid in full",
    MINIMUM_MET: "minimum met, the rest revolving",
    BELOW_MINIMUM: "below the minimum: overdue",
    NOT_YET_DUE: "not yet due at the horizon",
}
_CHUNK = 500


@dataclass
class LedgerSummary:
    statements: dict[str, int] = field(default_factory=dict)  # outcome -> statements
    accounts: dict[str, int] = field(default_factory=dict)  # outcome -> accounts with one
    card_holders: int = 0  # accounts with at least one statement
    overdue_accounts: int = 0  # accounts an `overdue` hold was ever placed on
    revolving_never_overdue: int = 0  # revolved at least once, never overdue
    plans: int = 0
    plan_accounts: int = 0
    plans_by_months: dict[int, int] = field(default_factory=dict)
    plan_principal_fen: int = 0
    plan_fee_fen: int = 0
    plans_after_statement: int = 0  # created after their purchase's statement was issued
    minimum_due_fen: int = 0  # summed over the statements judged
    new_balance_fen: int = 0

    @property
    def overdue_share(self) -> float:
        return self.overdue_accounts / self.card_holders if self.card_holders else 0.0

    def rows(self) -> list[tuple[str, int, int]]:
        """(label, statements, accounts) per outcome, in order."""
        return [(OUTCOME_LABELS[o], self.statements.get(o, 0), self.accounts.get(o, 0))
                for o in OUTCOMES]

    def to_dict(self) -> dict[str, Any]:
        return {
            "statements": dict(self.statements),
            "accounts": dict(self.accounts),
            "card_holders": self.card_holders,
            "overdue_accounts": self.overdue_accounts,
            "overdue_share": round(self.overdue_share, 4),
            "revolving_never_overdue": self.revolving_never_overdue,
            "plans": self.plans,
            "plan_accounts": self.plan_accounts,
            "plans_by_months": dict(self.plans_by_months),
            "plan_principal_fen": self.plan_principal_fen,
            "plan_fee_fen": self.plan_fee_fen,
            "plans_after_statement": self.plans_after_statement,
        }


@dataclass
class _Statement:
    at: dt.datetime  # issued
    minimum_due_fen: int
    new_balance_fen: int
    outcome: str = NOT_YET_DUE


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def summarize_ledger(store: Any, horizon: dt.datetime, policy: Policy) -> LedgerSummary:
    """Read the statements, their judgements, the plans and the overdue holds back from
    `store` (a SqlStore), up to `horizon`."""
    kinds = [STATEMENT_ISSUED, STATEMENT_JUDGED, INSTALLMENT_PLAN_CREATED, HOLD_PLACED]
    statements: dict[str, dict[str, _Statement]] = defaultdict(dict)
    plans: list[tuple[str, dt.datetime, dict[str, Any]]] = []
    overdue_accounts: set[str] = set()
    purchase_at: dict[str, dt.datetime] = {}
    with store.read() as connection:
        effects = t.effects
        query = (select(effects.c.account_id, effects.c.kind, effects.c.code, effects.c.at_utc,
                        effects.c.data)
                 .where(effects.c.kind.in_(kinds), effects.c.at_utc <= utc_text(horizon))
                 .order_by(effects.c.at_utc, effects.c.seq))
        for account_id, kind, code, at_text, data_text in connection.execute(query):
            if kind == HOLD_PLACED:
                if code == H.OVERDUE:
                    overdue_accounts.add(account_id)
                continue
            data = json.loads(data_text)
            if kind == STATEMENT_ISSUED:
                statements[account_id][data["statement_date"]] = _Statement(
                    parse_utc_text(at_text), int(data["minimum_due_fen"]),
                    int(data["new_balance_fen"]))
            elif kind == STATEMENT_JUDGED:
                statement = statements[account_id].get(data["statement_date"])
                if statement is not None:
                    statement.outcome = data["outcome"]
            else:
                plans.append((account_id, parse_utc_text(at_text), data))
        events = t.events
        purchase_ids = [str(data["purchase_event_id"]) for _, _, data in plans]
        for chunk in _chunks(purchase_ids):
            query = select(events.c.event_id, events.c.at_utc).where(
                events.c.event_id.in_(chunk))
            for event_id, at_text in connection.execute(query):
                purchase_at[event_id] = parse_utc_text(at_text)

    summary = LedgerSummary()
    by_months: Counter[int] = Counter()
    for account_id, at, data in plans:
        summary.plans += 1
        by_months[int(data["months"])] += 1
        summary.plan_principal_fen += int(data["principal_fen"])
        summary.plan_fee_fen += int(data["fee_fen"])
        bought = purchase_at.get(str(data["purchase_event_id"]))
        issued = [s.at for s in statements.get(account_id, {}).values()
                  if bought is not None and bought < s.at]
        if issued and min(issued) < at:  # its statement was out when the plan came
            summary.plans_after_statement += 1
    summary.plan_accounts = len({account_id for account_id, _, _ in plans})
    summary.plans_by_months = dict(sorted(by_months.items()))

    counts: Counter[str] = Counter()
    with_outcome: dict[str, set[str]] = defaultdict(set)
    for account_id, issued in statements.items():
        for s in issued.values():
            if s.outcome != NOT_YET_DUE:
                summary.minimum_due_fen += s.minimum_due_fen
                summary.new_balance_fen += s.new_balance_fen
            counts[s.outcome] += 1
            with_outcome[s.outcome].add(account_id)
    summary.statements = {o: counts.get(o, 0) for o in OUTCOMES}
    summary.accounts = {o: len(with_outcome.get(o, ())) for o in OUTCOMES}
    summary.card_holders = len(statements)
    summary.overdue_accounts = len(overdue_accounts)
    summary.revolving_never_overdue = len(with_outcome.get(MINIMUM_MET, set())
                                          - overdue_accounts)
    return summary
