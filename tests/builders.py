"""Small helpers for domain tests: wire-format events, one account's life, a portfolio's scopes.

Everything goes through the public contract: events are built as wire JSON and parsed with
`parse_event`; accounts move only through `decide` and `advance`; scope commands through
`apply_scope_command`.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from jiefeng.domain import effects as E
from jiefeng.domain.core import active_holds, advance, decide, new_account, status_at
from jiefeng.domain.decisions import PurchaseRequest, authorize
from jiefeng.domain.effects import Effect
from jiefeng.domain.events import OPERATOR_TYPES, parse_event
from jiefeng.domain.scopes import SCOPE_TYPES, Scopes, apply_scope_command
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy, default_policy

TZ = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai has no DST: +08:00 all year
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)

# Opening time used by most tests: Monday 2026-01-05 10:00 local. With the default
# statement_day=1 and due_day=9 the first statement is 2026-02-01, due 2026-02-09.
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=TZ)
FIRST_STATEMENT = dt.datetime(2026, 2, 1, tzinfo=TZ)
FIRST_DUE_DAY = dt.date(2026, 2, 9)
LIMIT = "10000.00"


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=TZ)


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=TZ)


def wire(type_: str, when: dt.datetime, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "at": when.isoformat(), **fields}


def codes(holds: Any) -> set[str]:
    return {h.code for h in holds}


def snapshot(state: AccountState) -> AccountState:
    return copy.deepcopy(state)


def policy_with(policy: Policy, **sections: dict[str, Any]) -> Policy:
    """The policy with some keys of some sections replaced, validated as a whole."""
    from jiefeng.policy.schema import parse_policy

    document = policy.model_dump()
    for name, values in sections.items():
        document[name] = {**document[name], **values}
    return parse_policy(document)


def synthetic_by_account(accounts: int, months: int, seed: int
                         ) -> tuple[Scopes, dict[str, list[Any]]]:
    """A synthetic portfolio's events parsed, each account's in the file's (time) order, and
    the scopes of its operator commands."""
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    scopes = Scopes()
    by_account: dict[str, list[Any]] = {}
    for raw in generate_portfolio(PortfolioSpec(accounts=accounts, months=months, seed=seed)):
        event = parse_event(raw)
        if event.type in SCOPE_TYPES:
            scopes = apply_scope_command(scopes, event)
        elif getattr(event, "account_id", None):
            by_account.setdefault(event.account_id, []).append(event)
    return scopes, by_account


def pay_in_full_policy() -> Policy:
    """The default policy with a minimum of 100 %: the ledger before minimum payments.

    The tests written before minimum payments existed run under it: it must reproduce their
    overdue decisions."""
    return policy_with(default_policy(), billing={"minimum_payment_pct": 100})


class World:
    """A portfolio: the scopes shared by every account, and a source of event ids."""

    def __init__(self, policy: Policy | None = None):
        self.policy = policy or pay_in_full_policy()
        self.scopes = Scopes()
        self._next = 0

    def event_id(self) -> str:
        self._next += 1
        return f"e{self._next:05d}"

    def event(self, type_: str, when: dt.datetime, **fields: Any) -> Any:
        return parse_event(wire(type_, when, self.event_id(), **fields))

    def command(self, type_: str, when: dt.datetime, actor: str = "ops-1", **fields: Any) -> Any:
        """A portfolio-wide operator command (maintenance, migration, sweep) into the scopes."""
        assert type_ in SCOPE_TYPES
        event = self.event(type_, when, actor=actor, **fields)
        self.scopes = apply_scope_command(self.scopes, event)
        return event

    def account(self, account_id: str = "A1", opened_at: dt.datetime = T0, **open_fields: Any
                ) -> Account:
        return Account(self, account_id, opened_at, **open_fields)


class Account:
    """One account's life: send events and let time pass; remembers every effect."""

    def __init__(self, world: World, account_id: str, opened_at: dt.datetime | None = T0,
                 **open_fields: Any):
        self.world = world
        self.account_id = account_id
        self.state = new_account(account_id)
        self.effects: list[Effect] = []
        self.events: list[Any] = []
        if opened_at is not None:
            fields = {"credit_limit": LIMIT, "id_expires_on": "2035-12-31", **open_fields}
            self.send("account_opened", opened_at, **fields)

    @property
    def policy(self) -> Policy:
        return self.world.policy

    @property
    def scopes(self) -> Scopes:
        return self.world.scopes

    # --- moving the account -------------------------------------------------------------------

    def apply(self, event: Any) -> list[Effect]:
        self.state, effects = decide(self.state, event, self.policy, self.scopes)
        self.events.append(event)
        self.effects.extend(effects)
        return effects

    def send(self, type_: str, when: dt.datetime, **fields: Any) -> list[Effect]:
        if type_ in OPERATOR_TYPES:
            fields.setdefault("actor", "ops-1")
        if type_ != "appeal_decided" or "account_id" not in fields:
            fields.setdefault("account_id", self.account_id)
        return self.apply(self.world.event(type_, when, **fields))

    def advance(self, when: dt.datetime) -> list[Effect]:
        self.state, effects = advance(self.state, when, self.policy, self.scopes)
        self.effects.extend(effects)
        return effects

    # --- shorthands -----------------------------------------------------------------------------

    def purchase(self, when: dt.datetime, amount: str, merchant: str = "M-SHOP-1",
                 **fields: Any) -> Effect:
        """Send a purchase and return its purchase_decided effect."""
        effects = self.send("purchase", when, amount=amount, merchant_id=merchant, **fields)
        decided = [e for e in effects if e.kind == E.PURCHASE_DECIDED]
        assert len(decided) == 1, effects
        return decided[0]

    def repay(self, when: dt.datetime, amount: str) -> list[Effect]:
        return self.send("repayment", when, amount=amount)

    def score(self, when: dt.datetime, score: int) -> list[Effect]:
        return self.send("score_update", when, score=score)

    def wrong_password(self, when: dt.datetime, times: int = 1) -> None:
        for i in range(times):
            self.send("password_attempt", when + i * MINUTE, ok=False)

    def last_event_id(self) -> str:
        return self.events[-1].event_id

    # --- looking (never moves the account) ------------------------------------------------------

    def peek(self, when: dt.datetime) -> AccountState:
        state, _ = advance(self.state, when, self.policy, self.scopes)
        return state

    def holds(self, when: dt.datetime | None = None) -> set[str]:
        when = when or self.state.clock
        return codes(active_holds(self.peek(when), when, self.scopes))

    def hold(self, code: str, when: dt.datetime | None = None) -> Any:
        when = when or self.state.clock
        found = [h for h in active_holds(self.peek(when), when, self.scopes) if h.code == code]
        return found[0] if found else None

    def status(self, when: dt.datetime | None = None) -> str:
        when = when or self.state.clock
        return status_at(self.peek(when), when, self.scopes)

    def authorize(self, when: dt.datetime, amount_fen: int = 100, **request: Any):
        return authorize(self.state, PurchaseRequest(amount_fen, **request), when, self.policy,
                         self.scopes)

    def owed_fen(self, when: dt.datetime | None = None) -> int:
        state = self.peek(when) if when else self.state
        return state.ledger.total_owed_fen

    def of_kind(self, kind: str, code: str | None = None) -> list[Effect]:
        return [e for e in self.effects if e.kind == kind and (code is None or e.code == code)]
