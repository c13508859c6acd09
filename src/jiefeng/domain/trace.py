"""Decision traces: why a hold is what it is, as data an auditor can replay.

When a cause places or refreshes a hold it records the rule that fired (`<cause>.<rule>`, e.g.
`cash_out.rapid_merchant`), the policy version, the parameters it read with their values
(`<section>.<key>`) and the facts it compared. Explanations read thresholds from the trace, so
a hold shows the numbers it was decided under, never those of a policy activated later. The
export (`to_export`) is versioned by `TRACE_SCHEMA`; a customer's copy of a confidential hold's
trace keeps the rule's cause and the time only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

TRACE_SCHEMA = "jiefeng.trace/1"


@dataclass(frozen=True, slots=True)
class Trace:
    rule: str
    policy_version: str
    at: dt.datetime
    params: Mapping[str, Any] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


def read(policy: Any, *names: str) -> dict[str, Any]:
    """The named policy parameters (`section.key`) with their values, as a trace records them."""
    values: dict[str, Any] = {}
    for name in names:
        section, key = name.split(".", 1)
        values[name] = getattr(getattr(policy, section), key)
    return values


def decided(rule: str, policy: Any, at: dt.datetime, params: Mapping[str, Any] | None = None,
            facts: Mapping[str, Any] | None = None) -> Trace:
    return Trace(rule, policy.version, at, dict(params or {}), dict(facts or {}))


def _jsonable(value: Any, zone: dt.tzinfo | None) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).isoformat() if zone else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, zone) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v, zone) for v in items]
    if isinstance(value, Decimal):
        return str(value)  # money and percentages stay exact, as everywhere in the API
    return value


def to_export(trace: Trace | None, *, account_id: str, code: str, since: dt.datetime,
              placed_by: str, zone: dt.tzinfo | None = None, redacted: bool = False
              ) -> dict[str, Any]:
    """The trace as the API and `explain --trace` return it (stable keys, `schema` first).
    `redacted`: parameters and facts are left out (confidential holds, for the customer)."""
    body: dict[str, Any] = {
        "schema": TRACE_SCHEMA,
        "account_id": account_id,
        "code": code,
        "since": _jsonable(since, zone),
        "placed_by": placed_by,
        "rule": trace.rule if trace else None,
        "policy_version": (trace.policy_version or None) if trace else None,
        "decided_at": _jsonable(trace.at, zone) if trace else None,
        "params": None,
        "facts": None,
        "redacted": redacted,
    }
    if trace is not None and not redacted:
        body["params"] = _jsonable(dict(trace.params), zone)
        body["facts"] = _jsonable(dict(trace.facts), zone)
    if trace is not None and redacted:
        body["rule"] = trace.rule.split(".", 1)[0]  # the cause, not which detector fired
    return body


def hold_traces(state: Any, at: dt.datetime, scopes: Any, *, zone: dt.tzinfo | None = None,
                for_customer: bool = False, code: str | None = None) -> list[dict[str, Any]]:
    """The exports of the holds active at `at` (the state advanced to `at`), or of the one
    with `code`. For the customer, holds whose kind keeps its trace internal are redacted."""
    from jiefeng.domain import causes
    from jiefeng.domain.core import active_holds

    kinds = causes.tables().kinds
    found = []
    for hold in active_holds(state, at, scopes):
        if code is not None and hold.code != code:
            continue
        kind = kinds[hold.code]
        redacted = for_customer and (kind.confidential or not kind.trace_for_customer)
        found.append(to_export(hold.trace, account_id=state.account_id, code=hold.code,
                               since=hold.since, placed_by=hold.placed_by, zone=zone,
                               redacted=redacted))
    return found
