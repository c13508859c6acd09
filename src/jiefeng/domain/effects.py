"""Effects: what a decision did, for the outbox, the audit of decisions and the timeline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from jiefeng.domain.pickled import by_fields

HOLD_PLACED = "hold_placed"
HOLD_UPDATED = "hold_updated"
HOLD_RELEASED = "hold_released"
PURCHASE_DECIDED = "purchase_decided"
STATEMENT_ISSUED = "statement_issued"
NOTICE = "notice"  # advance notices: bureau pre-notice, dormancy, ID expiry
BUREAU_REPORTED = "bureau_reported"
EVENT_IGNORED = "event_ignored"  # an event the fold could not apply (see `reason`)
APPEAL_RECORDED = "appeal_recorded"
APPEAL_DECIDED = "appeal_decided"
INSTALLMENT_PLAN_CREATED = "installment_plan_created"
STATEMENT_JUDGED = "statement_judged"  # a statement's minimum judged: its outcome


# Not frozen: the fold builds one or more per event, and a frozen dataclass's __init__ sets
# each field through object.__setattr__ (3.5 times slower to build, about 5 % of the fold).
# Effects are never changed once made; nothing hashes them.
@dataclass(slots=True)
class Effect:
    kind: str
    at: dt.datetime
    account_id: str
    code: str | None = None
    cause: str | None = None  # the event id, or clock:<what>
    data: dict[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple:
        return by_fields(self)  # the same bytes compiled or not (jiefeng.domain.pickled)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at.isoformat(),
            "account_id": self.account_id,
            "code": self.code,
            "cause": self.cause,
            "data": self.data,
        }
