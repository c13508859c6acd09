"""Decisions are facts: a purchase is decided once, when it is first folded, and never again.

The fold decides a purchase the first time it sees it and says so in a PURCHASE_DECIDED
effect; the service stores that outcome with the event (`events.outcome`). Every later fold of
the event (a late arrival's replay, a snapshot catch-up, `jiefeng replay`, a state as of a
past time) gets it back as data: the service hands the fold `Decided(event, outcome)` instead
of the bare event, and the fold posts or declines as recorded. So a repayment that arrives
after a purchase was declined cannot turn the decline into an approval on replay: the customer
was told "declined" and nothing was bought.

An outcome is stored as text, readable in SQL:

    approved
    declined:<code>,<code>                  jiefeng declined, with every code that applied
    approved;issuer:<code>,<code>           the issuer's authorizer decided (`authorization`);
    declined:issuer_declined;issuer:<code>  after `issuer:`, the codes jiefeng would have
                                            declined with (none: jiefeng would have approved)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

ISSUER_DECLINED = "issuer_declined"  # the decline code of a purchase the issuer declined
_ISSUER = ";issuer"


class Outcome(NamedTuple):
    """A purchase's decision. A NamedTuple: one is built for every purchase folded."""

    approved: bool
    codes: tuple[str, ...] = ()  # why it was declined; empty when approved
    issuer: bool = False  # the issuer's authorizer decided, not jiefeng
    would_decline: tuple[str, ...] = ()  # issuer decisions: jiefeng's own codes, as evidence

    def data(self) -> dict[str, Any]:
        """The decision's part of a PURCHASE_DECIDED effect."""
        data: dict[str, Any] = {"approved": self.approved, "codes": list(self.codes)}
        if self.issuer:
            data["authorization"] = "issuer"
            data["would_decline"] = list(self.would_decline)
        return data

    def to_text(self) -> str:
        text = "approved" if self.approved else "declined:" + ",".join(self.codes)
        if self.issuer:
            text += _ISSUER + (":" + ",".join(self.would_decline) if self.would_decline else "")
        return text


# Most purchases: approved by jiefeng, nothing against them. One immutable instance, not one
# built per purchase.
APPROVED = Outcome(True)


def outcome_from_data(data: dict[str, Any]) -> Outcome:
    """The outcome a PURCHASE_DECIDED effect's data records."""
    if (data["approved"] and not data["codes"] and data.get("authorization") != "issuer"
            and not data.get("would_decline")):
        return APPROVED  # an ingest notes every purchase's: a NamedTuple built in Python each
    return Outcome(data["approved"], tuple(data["codes"]), data.get("authorization") == "issuer",
                   tuple(data.get("would_decline", ())))


@lru_cache(maxsize=4_096)  # a portfolio has few distinct outcomes; "approved" is most of them
def outcome_from_text(text: str) -> Outcome:
    """Read a stored outcome (see the module's docstring); ValueError if it is not one."""
    decision, issuer, would_decline = text.partition(_ISSUER)
    if issuer and would_decline and not would_decline.startswith(":"):
        raise ValueError(f"outcome: not a recorded decision: {text!r}")
    evidence = _codes(would_decline[1:]) if issuer else ()
    if decision == "approved":
        return Outcome(True, (), bool(issuer), evidence)
    verdict, _, codes = decision.partition(":")
    if verdict != "declined":
        raise ValueError(f"outcome: not a recorded decision: {text!r}")
    return Outcome(False, _codes(codes), bool(issuer), evidence)


def _codes(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


class Decided(NamedTuple):
    """A purchase with the outcome recorded when it was first ingested: the fold reuses the
    outcome instead of deciding again (see `core.apply_event`)."""

    event: Any  # events.Purchase
    outcome: Outcome

    @property
    def at(self) -> Any:
        return self.event.at

    @property
    def event_id(self) -> str:
        return self.event.event_id
