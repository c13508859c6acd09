"""还款逾期: the line's own overdue, and the cure probation after it.

A statement's minimum not met by the end of local day `due_date + grace_days` (less the
tolerance) puts the account `overdue`; the bureau pre-notice and report follow at the policy's
days past due. Paying every past-due minimum lifts it and starts `cure_probation`, which lifts
by itself after `cure_probation.days` (doubled after a repeat overdue) unless a new overdue, on
this line or on the bureau, comes first. A due date inside maintenance or a migration moves
past it. The arithmetic (minimums, allocation, accrual) is the ledger's (`domain/ledger.py`).

Why one long module: the cause is the ledger's judge, the bureau's reporter and the cure
probation, with their explanation specs: one file per cause is the point of `causes/`.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from typing import Any

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain import ledger as L
from jiefeng.domain.causes.base import BEFORE_EXPIRY, Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, decided_param, iso, money
from jiefeng.domain.clock import (
    DAY,
    local_date,
    local_midnight,
    local_midnight_shifted,
)
from jiefeng.domain.effects import BUREAU_REPORTED, NOTICE, STATEMENT_JUDGED, Effect
from jiefeng.domain.holdbook import place, release, trim
from jiefeng.domain.money import format_fen
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import decided, read
from jiefeng.policy.schema import Policy

OVERDUE_MEMORY = dt.timedelta(days=730)  # how far back "a second overdue" looks at most


# --- judging statements -------------------------------------------------------------------------


def _disruption_end(
    state: AccountState, day_start: dt.datetime, now: dt.datetime, scopes: Scopes
) -> dt.datetime | None | bool:
    """Did maintenance or a migration cover this account during [day_start, now)?

    Returns False if not, True if one is still going on at `now`, else the latest end.
    """
    latest: dt.datetime | None = None
    for window in scopes.windows.values():
        if window.applies_to(state.segment, now) and window.start < now and window.end > day_start:
            latest = window.end if latest is None else max(latest, window.end)
    for campaign in scopes.campaigns.values():
        if not campaign.includes(state.account_id, state.segment) or campaign.started_at >= now:
            continue
        done = campaign.completed_at(state.account_id)
        if done is None or done > now:
            return True
        if done > day_start:
            latest = done if latest is None else max(latest, done)
    return False if latest is None else latest


def check_overdue(
    state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes, effects: list[Effect]
) -> None:
    """Judge each statement's minimum at the end of local day `due_date + grace_days`."""
    tz = policy.zone
    grace_days = policy.billing.grace_days
    ledger = state.ledger
    newly_overdue = False
    for statement in ledger.statements:
        if statement.judged:
            continue
        check_at = local_midnight_shifted(statement.due_date, grace_days + 1, tz)
        if check_at > at:
            continue
        disruption = _disruption_end(state, local_midnight(statement.due_date, tz), at, scopes)
        if disruption is not False:
            # A due date inside maintenance or a migration moves past it: no fee, no overdue.
            moved = statement.due_date + DAY
            if isinstance(disruption, dt.datetime):
                # The first local day the disruption does not touch; a window ending after
                # midnight touches its last day, which would otherwise move the date twice.
                first_clear_day = local_date(disruption, tz)
                if local_midnight(first_clear_day, tz) < disruption:
                    first_clear_day += DAY
                moved = max(moved, first_clear_day)
            statement.due_date = moved
            continue
        if L.judge(ledger, statement, check_at, policy.billing.tolerance_fen):
            newly_overdue = True
        _judged(state, statement, at, "clock:overdue", effects)
    if newly_overdue and H.OVERDUE not in state.holds:
        # A new overdue episode (a further statement falling due while the account is already
        # overdue is the same episode): this is what "a second overdue" counts.
        state.overdue_starts.append(at)
        trim(state.overdue_starts, at - OVERDUE_MEMORY)
    if newly_overdue:
        if H.CURE_PROBATION in state.holds:
            release(state, effects, H.CURE_PROBATION, at, "clock:overdue", "superseded_by_overdue")
    _refresh_overdue_hold(state, at, policy, "clock:overdue", effects)


def _refresh_overdue_hold(
    state: AccountState, at: dt.datetime, policy: Policy, cause: str, effects: list[Effect]
) -> None:
    ledger = state.ledger
    oldest = ledger.oldest_past_due()
    if oldest is None:
        return
    # Evidence holds what changes only with repayments; the live amounts (interest and late
    # fees accrue daily) are read from the ledger when explaining.
    evidence = {
        "statement_date": oldest.statement_date,
        "due_date": oldest.due_date,
        "minimum_past_due_fen": ledger.past_due_minimum_fen(),
        "principal_past_due_fen": ledger.past_due_minimum_fen(),
        "statements_past_due": len(ledger.past_due_statements()),
        "bureau_report_days_past_due": policy.overdue.bureau_report_days_past_due,
        "grace_days": policy.billing.grace_days,
        "tolerance_fen": policy.billing.tolerance_fen,
    }
    if H.OVERDUE in state.holds and state.holds[H.OVERDUE].evidence == evidence:
        return
    trace = decided("overdue.minimum_unpaid", policy, at, read(
        policy, "billing.grace_days", "billing.tolerance_fen", "billing.minimum_payment_pct",
        "billing.minimum_payment_floor_fen", "overdue.bureau_prenotice_days_past_due",
        "overdue.bureau_report_days_past_due"), {
        "statement_date": oldest.statement_date,
        "due_date": oldest.due_date,
        "minimum_due_fen": oldest.minimum_due_fen,
        "paid_since_issue_fen": oldest.paid_since_issue_fen,
        "minimum_past_due_fen": evidence["minimum_past_due_fen"],
        "statements_past_due": evidence["statements_past_due"],
    })
    place(state, effects, H.OVERDUE, at, cause, evidence, trace=trace)


def _judged(state: AccountState, statement: L.Statement, at: dt.datetime, cause: str,
            effects: list[Effect]) -> None:
    effects.append(Effect(STATEMENT_JUDGED, at, state.account_id, None, cause, {
        "statement_date": statement.statement_date.isoformat(),
        "due_date": statement.due_date.isoformat(),
        "outcome": L.judgement(statement),
        "new_balance_fen": statement.new_balance_fen,
        "minimum_due_fen": statement.minimum_due_fen,
        "paid_fen": statement.paid_since_issue_fen,
    }))


# --- the credit bureau ---------------------------------------------------------------------------


def bureau_days(policy: Policy) -> tuple[int, int]:
    """Days past due of the bureau pre-notice and report. Counted past the grace period: an
    account is not past due during it, so the customer still gets the notice's warning."""
    grace_days = policy.billing.grace_days
    return (grace_days + policy.overdue.bureau_prenotice_days_past_due,
            grace_days + policy.overdue.bureau_report_days_past_due)


def check_bureau_reporting(
    state: AccountState, at: dt.datetime, policy: Policy, effects: list[Effect]
) -> None:
    tz = policy.zone
    today = local_date(at, tz)
    notice_days, report_days = bureau_days(policy)
    for statement in state.ledger.past_due_statements():
        days_past_due = (today - statement.due_date).days
        if not statement.bureau_notice_sent and days_past_due >= notice_days:
            statement.bureau_notice_sent = True
            effects.append(Effect(NOTICE, at, state.account_id, H.OVERDUE, "clock:overdue", {
                "notice": "bureau_prenotice",
                "statement_date": statement.statement_date.isoformat(),
                "report_on": (statement.due_date + DAY * report_days).isoformat(),
                "minimum_past_due_fen": state.ledger.past_due_minimum_fen(),
            }))
        if not statement.bureau_reported and days_past_due >= report_days:
            statement.bureau_reported = True
            effects.append(Effect(BUREAU_REPORTED, at, state.account_id, H.OVERDUE,
                                  "clock:overdue", {
                                      "statement_date": statement.statement_date.isoformat(),
                                      "days_past_due": days_past_due,
                                  }))


# --- cure probation ----------------------------------------------------------------------------


def cure_days(state: AccountState, policy: Policy, began: dt.datetime | None = None) -> int:
    """Probation days for the overdue that began at `began` (default: the latest one here).

    Doubled when an earlier overdue on this line began within the repeat window before it. An
    outside (bureau) overdue is not in `overdue_starts`, so its own start is passed in; comparing
    the two latest line overdues instead would judge it by unrelated, possibly old, history.
    """
    days = policy.cure_probation.days
    starts = list(state.overdue_starts)
    if began is None:
        if not starts:
            return days
        began = starts.pop()
    earlier = [start for start in starts if start <= began]
    if earlier and began - earlier[-1] <= DAY * policy.cure_probation.repeat_window_days:
        days *= policy.cure_probation.repeat_multiplier
    return days


def start_cure_probation(
    state: AccountState,
    at: dt.datetime,
    policy: Policy,
    cause: str,
    source: str,
    effects: list[Effect],
    began: dt.datetime | None = None,
) -> None:
    """Start (or extend, never shorten) the probation after an overdue cleared. `source`:
    `overdue` (this line), `external` (a bureau overdue settled), `bureau` (a new one)."""
    days = cure_days(state, policy, began)
    ends = at + DAY * days
    current = state.holds.get(H.CURE_PROBATION)
    if current is not None and current.releases_at is not None and current.releases_at > ends:
        ends = current.releases_at
    repeat = days > policy.cure_probation.days
    trace = decided(f"overdue.cure_after_{source}", policy, at, read(
        policy, "cure_probation.days", "cure_probation.repeat_window_days",
        "cure_probation.repeat_multiplier"), {
        "overdue_began": began if began is not None else (
            state.overdue_starts[-1] if state.overdue_starts else None),
        "repeat": repeat, "probation_days": days, "ends": ends})
    place(state, effects, H.CURE_PROBATION, at, cause, {
        "source": source,
        "probation_days": days,
        "cleared_at": at,
        "repeat": repeat,
    }, releases_at=ends, trace=trace)


# --- events and time ---------------------------------------------------------------------------


def after_payment(state: AccountState, event: Any, policy: Policy, scopes: Scopes,
                  effects: list[Effect]) -> None:
    """A repayment or refund reduced what is owed: statements paid up are judged, and paying
    every past-due minimum lifts `overdue` into `cure_probation`."""
    at, cause = event.at, event.event_id
    for statement in L.judge_paid_up(state.ledger):
        _judged(state, statement, at, cause, effects)
    if H.OVERDUE in state.holds:
        if L.cure(state.ledger, at, policy.billing.tolerance_fen):
            release(state, effects, H.OVERDUE, at, cause, "repaid")
            start_cure_probation(state, at, policy, cause, "overdue", effects)
        else:
            _refresh_overdue_hold(state, at, policy, cause, effects)
    else:
        L.cure(state.ledger, at, policy.billing.tolerance_fen)


def on_bureau_record(state: AccountState, event: ev.BureauRecord, policy: Policy,
                     scopes: Scopes, effects: list[Effect]) -> None:
    # "No new overdue here or on the bureau": a new bureau overdue restarts the probation.
    if event.status == ev.BureauStatus.OVERDUE and H.CURE_PROBATION in state.holds:
        start_cure_probation(state, event.at, policy, event.event_id, "bureau", effects,
                             began=event.at)


def on_time(state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes,
            effects: list[Effect]) -> None:
    check_overdue(state, at, policy, scopes, effects)
    check_bureau_reporting(state, at, policy, effects)


def deadline(state: AccountState, policy: Policy, scopes: Scopes) -> dt.datetime | None:
    """The end of a statement's last day to pay its minimum; then its bureau days."""
    statements = state.ledger.statements
    if not statements:
        return None
    clock = state.clock
    assert clock is not None  # deadlines are asked of an opened account
    tz = policy.zone
    best: dt.datetime | None = None
    for statement in statements:
        if not statement.judged:
            days: tuple[int, ...] = (policy.billing.grace_days + 1,)
        elif statement.overdue_since is not None and statement.cured_at is None:
            notice_days, report_days = bureau_days(policy)
            days = tuple(d for d, done in ((notice_days, statement.bureau_notice_sent),
                                           (report_days, statement.bureau_reported))
                         if not done)
        else:
            continue  # judged and current: time alone changes nothing on it
        for shift in days:
            t = local_midnight_shifted(statement.due_date, shift, tz)
            if t > clock and (best is None or t < best):
                best = t
    return best


# --- explanation ----------------------------------------------------------------------------------


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    ledger = ctx.state.ledger
    oldest = ledger.oldest_past_due()
    due_date = oldest.due_date if oldest else hold.evidence["due_date"]
    # `value` is the past-due minimum (what lifts the hold), not the whole balance.
    return [
        {"fact": "past_due_amount", "value": money(ctx.past_due_fen()),
         "late_fee": money(ctx.late_fee_fen()), "full_balance": money(ctx.total_owed_fen())},
        {"fact": "due_date", "value": due_date.isoformat()},
        {"fact": "days_past_due", "value": ctx.days_past_due()},
        {"fact": "statements_past_due", "value": len(ledger.past_due_statements())},
    ]


def probation_days(ctx: ExplainContext) -> int:
    """The probation a cleared overdue would start now (doubled after a repeat overdue)."""
    return cure_days(ctx.state, ctx.policy)


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    # Progress: what was repaid since the hold was placed, against that plus what is still
    # past due ("repaid 320 of 1,020").
    repaid_fen = sum(amount_fen for when, amount_fen, _ in ctx.state.recent_repayments
                     if hold.since <= when <= ctx.at)
    past_due_fen = ctx.past_due_fen()
    return [{"path": H.RELEASE_CONDITION, "condition": "repay_past_due",
             "amount": money(past_due_fen), "full_balance": money(ctx.total_owed_fen()),
             "then_probation_days": probation_days(ctx),
             "progress": {"repaid": money(repaid_fen),
                          "of": money(repaid_fen + past_due_fen)}}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "repay_now", "amount": money(ctx.past_due_fen()),
             "full_balance": money(ctx.total_owed_fen())},
            {"step": "set_autopay"}]


def _counterfactual(hold: H.Hold, ctx: ExplainContext) -> Item:
    return {"if": "repaid", "amount": money(ctx.past_due_fen()),
            "full_balance": money(ctx.total_owed_fen()),
            "then": H.CURE_PROBATION, "probation_days": probation_days(ctx)}


def _bureau(hold: H.Hold, ctx: ExplainContext) -> Item:
    past_due = ctx.state.past_due_statements()
    reported = any(s.bureau_reported for s in past_due)
    unreported = [s for s in past_due if not s.bureau_reported]
    report_on = None
    if not reported and unreported:
        first = min(unreported, key=lambda s: s.due_date)
        # When the fold will report: under the policy in effect now, not the hold's.
        _, report_days = bureau_days(ctx.policy)
        report_on = first.due_date + DAY * report_days
    return {"reported": reported, "report_on": iso(report_on),
            "days_past_due": ctx.days_past_due()}


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep | None:
    owed = state.ledger.past_due_minimum_fen()
    if owed <= 0:
        return None
    return PlanStep({"action": "repay", "code": hold.code, "amount": format_fen(owed)},
                    ({"type": "repayment", "amount": format_fen(owed)},))


_CURE_SOURCE_FACTS = {
    "overdue": "overdue_repaid",
    "external": "external_overdue_settled",
    "bureau": "new_external_overdue",
}


def _cure_evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    evidence = hold.evidence
    items: list[Item] = [
        {"fact": _CURE_SOURCE_FACTS.get(evidence.get("source") or "", "overdue_repaid"),
         "value": iso(evidence.get("cleared_at", hold.since))},
        {"fact": "probation_days", "value": evidence.get("probation_days")},
    ]
    if evidence.get("repeat"):
        items.append({"fact": "repeat_overdue", "value": True,
                      "threshold": decided_param(hold, ctx,
                                                 "cure_probation.repeat_window_days")})
    return items


def _cure_release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_TIME, "condition": "no_new_overdue_until",
             "at": iso(hold.releases_at)}]


def _cure_steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "repay_on_time"}, {"step": "wait_until", "at": iso(hold.releases_at)}]


CAUSE = Cause(
    name="overdue",
    holds=(
        HoldKind(H.OVERDUE, 100, (H.RELEASE_CONDITION,),
                 Explanation(_evidence, _release, _steps, _counterfactual, _bureau),
                 plan=_plan),
        HoldKind(H.CURE_PROBATION, 200, (H.RELEASE_TIME,),
                 Explanation(_cure_evidence, _cure_release, _cure_steps)),
    ),
    policy_sections=("billing", "overdue", "cure_probation"),
    listens=MappingProxyType({
        ev.Refund: after_payment,
        ev.Repayment: after_payment,
        ev.BureauRecord: on_bureau_record,
    }),
    deadline=deadline,
    on_time=on_time,
    time_phase=BEFORE_EXPIRY,
)
