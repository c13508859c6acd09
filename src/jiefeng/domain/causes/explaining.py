"""The vocabulary of the causes' explanation specs: what every spec reads (`ExplainContext`)
and how values are shown (instants in the policy's zone, dates as "YYYY-MM-DD", money as a
decimal string). `jiefeng.explain.structured` assembles the specs into the explanation.
"""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from typing import Any

from jiefeng.domain.clock import local_date
from jiefeng.domain.money import format_fen
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy

Item = dict[str, Any]

# Instants are shown in the policy's zone (+08:00 by default): the domain holds UTC, the
# customer and the issuer's systems read local time. Set per explanation; safe across threads.
_ZONE: ContextVar[dt.tzinfo] = ContextVar("explanation_zone", default=dt.UTC)


def show_in_zone(tz: dt.tzinfo) -> None:
    """Show the instants of the explanation being built in `tz`."""
    _ZONE.set(tz)


def ts(value: dt.datetime) -> str:
    return value.astimezone(_ZONE.get()).isoformat()


def iso(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return ts(value)
    return value.isoformat()


def money(fen: int) -> str:
    return format_fen(fen)


def jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return iso(value)
    return value


class ExplainContext:
    """What every hold's explanation reads: the state, the moment, the policy."""

    def __init__(self, state: AccountState, at: dt.datetime, policy: Policy):
        self.state = state
        self.at = at
        self.policy = policy
        self.today = local_date(at, policy.zone)

    def past_due_fen(self) -> int:
        """The past-due minimum: paying it lifts the overdue hold."""
        return self.state.ledger.past_due_minimum_fen()

    def total_owed_fen(self) -> int:
        """What clears everything today."""
        return self.state.ledger.total_owed_fen

    def late_fee_fen(self) -> int:
        """Late fees owed: billed and unpaid, and accrued since the last statement."""
        ledger = self.state.ledger
        billed = sum(s.fees_fen - s.paid_fees_fen for s in ledger.statements)
        return billed + ledger.accrued_fees_fen

    def days_past_due(self) -> int:
        return self.state.ledger.days_past_due(self.today)


def decided_param(hold: Any, ctx: ExplainContext, name: str) -> Any:
    """A threshold as the hold was decided under (its trace), else the policy's now: a hold
    placed before a policy change shows the numbers it was placed under."""
    trace = getattr(hold, "trace", None)
    if trace is not None and name in trace.params:
        return trace.params[name]
    section, key = name.split(".", 1)
    return getattr(getattr(ctx.policy, section), key)
