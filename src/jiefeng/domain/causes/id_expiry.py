"""身份证过期: the identity document on file has expired.

A notice goes out `id_expiry.notice_days` before the document expires; the day after it
expires (or at opening, if it already has) the account is held until a new, valid document is
uploaded.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, iso
from jiefeng.domain.clock import DAY, local_date, local_midnight, local_midnight_shifted
from jiefeng.domain.effects import NOTICE, Effect
from jiefeng.domain.holdbook import ignored, place, release
from jiefeng.domain.rejections import DomainRejected
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import decided, read
from jiefeng.policy.schema import Policy


def _notice_if_due(
    state: AccountState, at: dt.datetime, policy: Policy, effects: list[Effect]
) -> None:
    """A document that expires within the notice period gets its notice now, not never."""
    expires_on = state.id_expires_on
    if expires_on is None or state.id_notice_sent_for == expires_on:
        return
    tz = policy.zone
    if at >= local_midnight(expires_on - DAY * policy.id_expiry.notice_days, tz):
        state.id_notice_sent_for = expires_on
        effects.append(Effect(NOTICE, at, state.account_id, H.ID_EXPIRED, "clock:id_expiry",
                              {"notice": "id_expiry_notice", "expires_on": expires_on.isoformat()}))


def on_account_opened(state: AccountState, event: ev.AccountOpened, policy: Policy,
                      scopes: Scopes, effects: list[Effect]) -> None:
    if event.id_expires_on < local_date(event.at, policy.zone):
        place(state, effects, H.ID_EXPIRED, event.at, event.event_id,
              {"expires_on": event.id_expires_on},
              trace=decided("id_expiry.expired_at_opening", policy, event.at, {},
                            {"expires_on": event.id_expires_on}))
    else:
        _notice_if_due(state, event.at, policy, effects)


def admit_id_document(state: AccountState, event: ev.IdDocumentUpdated, policy: Policy,
                      scopes: Scopes) -> None:
    if event.expires_on <= local_date(event.at, policy.zone):
        raise DomainRejected("expires_on", "must be after the day of the update")


def on_id_document_updated(state: AccountState, event: ev.IdDocumentUpdated, policy: Policy,
                           scopes: Scopes, effects: list[Effect]) -> None:
    today = local_date(event.at, policy.zone)
    if event.expires_on <= today:
        effects.append(ignored(state, event, "the new document has already expired"))
        return
    state.id_expires_on = event.expires_on
    state.id_notice_sent_for = None
    release(state, effects, H.ID_EXPIRED, event.at, event.event_id, "id_document_updated")
    _notice_if_due(state, event.at, policy, effects)


def on_time(state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes,
            effects: list[Effect]) -> None:
    expires_on = state.id_expires_on
    if expires_on is None or H.ID_EXPIRED in state.holds:
        return
    if at >= local_midnight(expires_on + DAY, policy.zone):
        place(state, effects, H.ID_EXPIRED, at, "clock:id_expiry", {"expires_on": expires_on},
              trace=decided("id_expiry.expired", policy, at,
                            read(policy, "id_expiry.notice_days"),
                            {"expires_on": expires_on,
                             "notice_sent": state.id_notice_sent_for == expires_on}))
    else:
        _notice_if_due(state, at, policy, effects)


def deadline(state: AccountState, policy: Policy, scopes: Scopes) -> dt.datetime | None:
    """The notice's moment while it is due and ahead, else the end of the expiry day (the
    notice comes first: `id_expiry.notice_days` is never negative)."""
    expires_on = state.id_expires_on
    if expires_on is None or H.ID_EXPIRED in state.holds:
        return None
    clock = state.clock
    assert clock is not None  # deadlines are asked of an opened account
    tz = policy.zone
    if state.id_notice_sent_for != expires_on:
        t = local_midnight_shifted(expires_on, -policy.id_expiry.notice_days, tz)
        if t > clock:
            return t
    t = local_midnight_shifted(expires_on, 1, tz)
    return t if t > clock else None


# --- explanation ----------------------------------------------------------------------------------


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"fact": "id_expired_on", "value": iso(hold.evidence["expires_on"])}]


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "id_document_updated"}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "upload_new_id"}]


def _counterfactual(hold: H.Hold, ctx: ExplainContext) -> Item:
    return {"if": "id_document_updated"}


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    valid_until = dt.date(at.year + 10, at.month, min(at.day, 28))
    return PlanStep({"action": "update_id_document", "code": hold.code},
                    ({"type": "id_document_updated", "expires_on": valid_until.isoformat()},))


CAUSE = Cause(
    name="id_expiry",
    holds=(
        HoldKind(H.ID_EXPIRED, 800, (H.RELEASE_EVENT,),
                 Explanation(_evidence, _release, _steps, _counterfactual), plan=_plan),
    ),
    policy_sections=("id_expiry",),
    listens=MappingProxyType({
        ev.AccountOpened: on_account_opened,
        ev.IdDocumentUpdated: on_id_document_updated,
    }),
    deadline=deadline,
    on_time=on_time,
    admits=MappingProxyType({ev.IdDocumentUpdated: admit_id_document}),
)
