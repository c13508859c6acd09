"""账户安全: signs of account takeover (confidential).

Signals within the policy's windows: several bank-card changes, a phone change close to a new
device, several new devices (the first device is the customer's own). Placed or refreshed on a
signal; lifts when the identity is verified, after `account_security.quiet_days` without a new
sensitive change, or on an approved appeal; then the windows start afresh.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, iso, ts
from jiefeng.domain.clock import DAY
from jiefeng.domain.effects import Effect
from jiefeng.domain.holdbook import MAX_EVIDENCE_ITEMS, place, release, trim
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import MAX_WINDOW_ITEMS, AccountState
from jiefeng.domain.trace import decided, read
from jiefeng.policy.schema import Policy

HOUR = dt.timedelta(hours=1)


def _check(
    state: AccountState, at: dt.datetime, cause: str, policy: Policy, effects: list[Effect]
) -> None:
    rules = policy.account_security
    trim(state.bank_card_changes, at - DAY * rules.bank_card_window_days)
    trim(
        state.new_devices,
        at - max(DAY * rules.new_devices_window_days, HOUR * rules.phone_device_window_hours),
    )
    trim(state.phone_changes, at - HOUR * rules.phone_device_window_hours)
    signals: list[str] = []
    if len(state.bank_card_changes) >= rules.bank_card_changes:
        signals.append("bank_card_changes")
    pair_window = HOUR * rules.phone_device_window_hours
    if any(
        abs(phone - device) <= pair_window
        for phone in state.phone_changes
        for device in state.new_devices
    ):
        signals.append("phone_and_new_device")
    recent_devices = [t for t in state.new_devices if t >= at - DAY * rules.new_devices_window_days]
    if len(recent_devices) >= rules.new_devices:
        signals.append("new_devices")
    if signals or H.ACCOUNT_SECURITY in state.holds:
        merged = (
            tuple(dict.fromkeys((*state.security_signals, *signals)))
            if (H.ACCOUNT_SECURITY in state.holds)
            else tuple(signals)
        )
        state.security_signals = merged
        assert state.last_sensitive_change_at is not None
        trace = decided(f"account_security.{signals[0]}" if signals
                        else "account_security.sensitive_change", policy, at, read(
            policy, "account_security.bank_card_changes",
            "account_security.bank_card_window_days", "account_security.new_devices",
            "account_security.new_devices_window_days",
            "account_security.phone_device_window_hours", "account_security.quiet_days"), {
            "signals": list(signals), "bank_card_changes": len(state.bank_card_changes),
            "phone_changes": len(state.phone_changes), "new_devices": len(recent_devices),
            "last_sensitive_change_at": state.last_sensitive_change_at})
        place(state, effects, H.ACCOUNT_SECURITY, at, cause, {"signals": list(merged)},
              releases_at=state.last_sensitive_change_at + DAY * rules.quiet_days, trace=trace)


def on_login(state: AccountState, event: ev.Login, policy: Policy, scopes: Scopes,
             effects: list[Effect]) -> None:
    if event.device_id in state.known_devices:
        return
    first_device = not state.known_devices
    # An insertion-ordered dict, not a set: evicting the oldest device is the same in every
    # process (set order depends on the hash seed, and replays must agree).
    state.known_devices[event.device_id] = event.at
    if len(state.known_devices) > MAX_WINDOW_ITEMS:
        del state.known_devices[next(iter(state.known_devices))]
    if first_device:
        return  # the device the customer enrolled with is theirs, not a takeover signal
    state.new_devices.append(event.at)
    state.last_sensitive_change_at = event.at
    _check(state, event.at, event.event_id, policy, effects)


def on_profile_change(state: AccountState, event: ev.ProfileChange, policy: Policy,
                      scopes: Scopes, effects: list[Effect]) -> None:
    if event.field == ev.ProfileField.ADDRESS:
        return  # not a takeover signal on its own
    if event.field == ev.ProfileField.BANK_CARD:
        state.bank_card_changes.append(event.at)
    else:
        state.phone_changes.append(event.at)
    state.last_sensitive_change_at = event.at
    _check(state, event.at, event.event_id, policy, effects)


def forget_signals(state: AccountState, at: dt.datetime) -> None:
    """A verified identity vouches for the recent changes: the windows start afresh."""
    state.bank_card_changes.clear()
    state.phone_changes.clear()
    state.new_devices.clear()
    state.security_signals = ()


def on_identity_verified(state: AccountState, event: ev.IdentityVerified, policy: Policy,
                         scopes: Scopes, effects: list[Effect]) -> None:
    forget_signals(state, event.at)
    release(state, effects, H.ACCOUNT_SECURITY, event.at, event.event_id, "identity_verified")


# --- explanation (confidential: kinds and times only) --------------------------------------------


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    items: list[Item] = [{"fact": "security_signal", "value": s}
                         for s in hold.evidence.get("signals", [])]
    if ctx.state.last_sensitive_change_at is not None:
        items.append({"fact": "last_sensitive_change",
                      "value": ts(ctx.state.last_sensitive_change_at)})
    return items[-MAX_EVIDENCE_ITEMS:]


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "identity_verified"},
            {"path": H.RELEASE_TIME, "condition": "no_new_sensitive_changes_until",
             "at": iso(hold.releases_at)}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "verify_identity"},
            {"step": "keep_details_stable"},
            {"step": "if_not_you_call_support", "phone": ctx.policy.support.phone}]


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    return PlanStep({"action": "verify_identity", "code": hold.code},
                    ({"type": "identity_verified", "method": "plan"},))


CAUSE = Cause(
    name="account_security",
    holds=(
        HoldKind(H.ACCOUNT_SECURITY, 700, (H.RELEASE_EVENT, H.RELEASE_TIME, H.RELEASE_REVIEW),
                 Explanation(_evidence, _release, _steps), confidential=True,
                 on_expiry=forget_signals, on_appeal_approved=forget_signals, plan=_plan),
    ),
    policy_sections=("account_security", "support"),
    listens=MappingProxyType({
        ev.Login: on_login,
        ev.ProfileChange: on_profile_change,
        ev.IdentityVerified: on_identity_verified,
    }),
)
