"""The structured explanation: why an account is frozen and what the customer can do, as data.

`build_explanation` turns an account's state into a JSON-ready dict of codes and parameters and
nothing else: no prose, so every language renders the same facts (see `render.py` and the
message catalogs). Datetimes are ISO 8601 strings with their offset, dates are "YYYY-MM-DD",
money is a decimal string ("121.64").

Holds in CONFIDENTIAL_CODES (suspected cash-out, account security) name only the kind of signal
and the transaction refs and times: never a detection threshold, count or window, so a customer
cannot learn how to stay just under them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from jiefeng.domain import holds as H
from jiefeng.domain import ledger as L
from jiefeng.domain import rules
from jiefeng.domain.clock import DAY, local_date, zone
from jiefeng.domain.core import active_holds
from jiefeng.domain.decline_order import in_precedence
from jiefeng.domain.money import format_fen
from jiefeng.domain.plan import unfreeze_plan
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState, Appeal
from jiefeng.policy.schema import Policy

MAX_EVIDENCE = rules.MAX_EVIDENCE_ITEMS  # the principal reasons shown per hold (4)
MAX_SELF_CHECK_ITEMS = 5  # recent purchases / repayments listed for the customer to check
MAX_STATEMENTS = 12  # statements listed in the ledger

# Features whose snapshot value is yuan (a float in `rules.features`); shown as money.
_MONEY_FEATURES = frozenset({"credit_limit", "available_credit", "deposits", "wealth_balance"})

Item = dict[str, Any]


# --- small conversions --------------------------------------------------------------------------


# Instants are shown in the policy's zone (+08:00 by default): the domain holds UTC, the
# customer and the issuer's systems read local time. Set per explanation; safe across threads.
_ZONE: ContextVar[dt.tzinfo] = ContextVar("explanation_zone", default=dt.UTC)


def _ts(value: dt.datetime) -> str:
    return value.astimezone(_ZONE.get()).isoformat()


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _ts(value)
    return value.isoformat()


def _money(fen: int) -> str:
    return format_fen(fen)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return _iso(value)
    return value


# --- the explanation -----------------------------------------------------------------------------


def build_explanation(
    state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes
) -> dict[str, Any]:
    """Explain the account at `at`. The caller has already advanced `state` to `at`."""
    policy = scopes.policy_for(at, policy)  # the version in effect then, named in the answer
    _ZONE.set(policy.zone)
    holds = active_holds(state, at, scopes)
    ctx = _Context(state, at, policy)
    items = [_hold_item(hold, ctx) for hold in holds]
    if holds:
        works = ["repayment", "statements", "queries"]
        if any(hold.code in policy.appeals.appealable_codes for hold in holds):
            works.append("appeal")
    else:
        works = ["purchase", "repayment", "statements", "queries"]
    return {
        "account_id": state.account_id,
        "at": _ts(at),
        "status": H.derive_status(holds),
        "can_purchase": not holds,
        "can_repay": True,  # repayment is never blocked, whatever the holds
        "policy_version": policy.version,
        # The hold to clear first (descending precedence, domain/decline_order.py).
        "primary_code": in_precedence([hold.code for hold in holds])[0] if holds else None,
        "holds": items,
        "what_still_works": works,
        "plan": _plan(state, at, policy, scopes) if holds else None,
        "ledger": _ledger(state, policy, H.derive_status(holds)),
        "self_checks": _self_checks(state, policy, at),
    }


class _Context:
    """What every hold's explanation reads: the state, the moment, the policy."""

    def __init__(self, state: AccountState, at: dt.datetime, policy: Policy):
        self.state = state
        self.at = at
        self.policy = policy
        self.today = local_date(at, zone(policy.timezone))

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

    def activities_in_window(self) -> int:
        start = self.at - DAY * self.policy.dormancy.reopen_window_days
        return sum(1 for when, _ in self.state.activities if start <= when <= self.at)

    def probation_days(self) -> int:
        # The probation a cleared overdue would start now (doubled after a repeat overdue).
        return rules._cure_days(self.state, self.policy)


def _hold_item(hold: H.Hold, ctx: _Context) -> Item:
    policy = ctx.policy
    spec = _SPECS[hold.code]
    appeals = [a for a in ctx.state.appeals.values() if a.hold_code == hold.code]
    pending = [a for a in appeals if a.status == "pending"]
    appealable_code = hold.code in policy.appeals.appealable_codes
    appealable = appealable_code and not pending
    latest = max(appeals, key=lambda a: a.submitted_at, default=None)

    release = spec.release(hold, ctx)
    if H.RELEASE_REVIEW in hold.release_paths and appealable_code:
        release.append({"path": H.RELEASE_REVIEW, "condition": "appeal_approved"})
    steps = spec.steps(hold, ctx)
    if pending:
        steps.append({"step": "wait_for_appeal_decision",
                      "reply_by": _iso(_reply_by(pending[-1], policy))})
    elif appealable:
        steps.append({"step": spec.appeal_step, "appeal_path": policy.support.appeal_path})
    evidence = spec.evidence(hold, ctx)[:MAX_EVIDENCE]
    return {
        "code": hold.code,
        "since": _ts(hold.since),
        "releases_at": _iso(hold.releases_at),
        "placed_by": hold.placed_by,
        "blocks": list(hold.blocks),
        "closes_line": hold.closes_line,
        "confidential": hold.code in H.CONFIDENTIAL_CODES,
        "release_paths": list(hold.release_paths),
        "evidence": evidence,
        "release": release,
        "steps": steps,
        "appealable": appealable,
        "appeal_sla": _appeal_sla(hold.code, policy) if appealable_code else None,
        "appeal": _appeal_dict(latest, policy) if latest is not None else None,
        "counterfactual": (None if hold.code in H.CONFIDENTIAL_CODES
                           else spec.counterfactual(hold, ctx)),
        "bureau": spec.bureau(hold, ctx),
    }


# --- appeals -------------------------------------------------------------------------------------


def _appeal_sla(code: str, policy: Policy) -> dict[str, Any]:
    if code in policy.appeals.fast_sla_codes:
        return {"unit": "hours", "value": policy.appeals.fast_sla_hours}
    return {"unit": "days", "value": policy.appeals.sla_days}


def _reply_by(appeal: Appeal, policy: Policy) -> dt.datetime:
    if appeal.hold_code in policy.appeals.fast_sla_codes:
        return appeal.submitted_at + dt.timedelta(hours=policy.appeals.fast_sla_hours)
    return appeal.submitted_at + DAY * policy.appeals.sla_days


def _appeal_dict(appeal: Appeal, policy: Policy) -> dict[str, Any]:
    return {
        "appeal_id": appeal.appeal_id,
        "hold_code": appeal.hold_code,
        "status": appeal.status,
        "submitted_at": _ts(appeal.submitted_at),
        "reply_by": _iso(_reply_by(appeal, policy)) if appeal.status == "pending" else None,
        "decided_at": _iso(appeal.decided_at),
        # The decision's reason is written for the customer; shown only when rejected.
        "reason": appeal.reason if appeal.status == "rejected" else None,
    }


# --- per-code evidence, release, steps, counterfactual, bureau ----------------------------------


def _none(hold: H.Hold, ctx: _Context) -> Any:
    return None


class _Spec:
    def __init__(
        self,
        evidence: Callable[[H.Hold, _Context], list[Item]],
        release: Callable[[H.Hold, _Context], list[Item]],
        steps: Callable[[H.Hold, _Context], list[Item]],
        counterfactual: Callable[[H.Hold, _Context], Item | None] = _none,
        bureau: Callable[[H.Hold, _Context], Item | None] = _none,
        appeal_step: str = "submit_appeal",
    ):
        self.evidence = evidence
        self.release = release
        self.steps = steps
        self.counterfactual = counterfactual
        self.bureau = bureau
        self.appeal_step = appeal_step


# overdue


def _overdue_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    ledger = ctx.state.ledger
    oldest = ledger.oldest_past_due()
    due_date = oldest.due_date if oldest else hold.evidence["due_date"]
    # `value` is the past-due minimum (what lifts the hold), not the whole balance.
    return [
        {"fact": "past_due_amount", "value": _money(ctx.past_due_fen()),
         "late_fee": _money(ctx.late_fee_fen()), "full_balance": _money(ctx.total_owed_fen())},
        {"fact": "due_date", "value": due_date.isoformat()},
        {"fact": "days_past_due", "value": ctx.days_past_due()},
        {"fact": "statements_past_due", "value": len(ledger.past_due_statements())},
    ]


def _overdue_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    # Progress: what was repaid since the hold was placed, against that plus what is still
    # past due ("repaid 320 of 1,020").
    repaid_fen = sum(amount_fen for when, amount_fen, _ in ctx.state.recent_repayments
                     if hold.since <= when <= ctx.at)
    past_due_fen = ctx.past_due_fen()
    return [{"path": H.RELEASE_CONDITION, "condition": "repay_past_due",
             "amount": _money(past_due_fen), "full_balance": _money(ctx.total_owed_fen()),
             "then_probation_days": ctx.probation_days(),
             "progress": {"repaid": _money(repaid_fen),
                          "of": _money(repaid_fen + past_due_fen)}}]


def _overdue_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "repay_now", "amount": _money(ctx.past_due_fen()),
             "full_balance": _money(ctx.total_owed_fen())},
            {"step": "set_autopay"}]


def _overdue_counterfactual(hold: H.Hold, ctx: _Context) -> Item:
    return {"if": "repaid", "amount": _money(ctx.past_due_fen()),
            "full_balance": _money(ctx.total_owed_fen()),
            "then": H.CURE_PROBATION, "probation_days": ctx.probation_days()}


def _overdue_bureau(hold: H.Hold, ctx: _Context) -> Item:
    past_due = ctx.state.past_due_statements()
    reported = any(s.bureau_reported for s in past_due)
    unreported = [s for s in past_due if not s.bureau_reported]
    report_on = None
    if not reported and unreported:
        first = min(unreported, key=lambda s: s.due_date)
        _, report_days = rules._bureau_days(ctx.policy)
        report_on = first.due_date + DAY * report_days
    return {"reported": reported, "report_on": _iso(report_on),
            "days_past_due": ctx.days_past_due()}


# cure probation

_CURE_SOURCE_FACTS = {
    "overdue": "overdue_repaid",
    "external": "external_overdue_settled",
    "bureau": "new_external_overdue",
}


def _cure_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    evidence = hold.evidence
    items: list[Item] = [
        {"fact": _CURE_SOURCE_FACTS.get(evidence.get("source"), "overdue_repaid"),
         "value": _iso(evidence.get("cleared_at", hold.since))},
        {"fact": "probation_days", "value": evidence.get("probation_days")},
    ]
    if evidence.get("repeat"):
        items.append({"fact": "repeat_overdue", "value": True,
                      "threshold": ctx.policy.cure_probation.repeat_window_days})
    return items


def _cure_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_TIME, "condition": "no_new_overdue_until",
             "at": _iso(hold.releases_at)}]


def _cure_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "repay_on_time"}, {"step": "wait_until", "at": _iso(hold.releases_at)}]


# external overdue


def _external_products(hold: H.Hold) -> list[Item]:
    return [{"product": p["product"], "days_past_due": p["days_past_due"],
             "amount": _money(p["amount_fen"]), "reported_at": _iso(p["reported_at"])}
            for p in hold.evidence.get("products", [])]


def _external_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    threshold = hold.evidence.get("threshold_days")
    return [{"fact": "external_overdue", "value": p["days_past_due"], "threshold": threshold,
             "product": p["product"], "amount": p["amount"], "at": p["reported_at"]}
            for p in _external_products(hold)]


def _external_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "settle_external_overdue",
             "products": [p["product"] for p in _external_products(hold)],
             "then_probation_days": ctx.probation_days()}]


def _external_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "settle_external_overdue",
             "products": [p["product"] for p in _external_products(hold)]}]


def _external_counterfactual(hold: H.Hold, ctx: _Context) -> Item:
    return {"if": "external_settled", "products": [p["product"] for p in _external_products(hold)],
            "then": H.CURE_PROBATION, "probation_days": ctx.probation_days()}


def _external_bureau(hold: H.Hold, ctx: _Context) -> Item:
    return {"products": _external_products(hold)}


# suspected cash-out (confidential: kinds, refs and times only)


def _cash_out_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    signals = hold.evidence.get("signals", [])[-MAX_EVIDENCE:]
    return [{"fact": "cash_out_signal", "value": s["signal"], "ref": s["ref"], "at": _iso(s["at"])}
            for s in reversed(signals)]


def _lifts_by_itself(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_TIME, "condition": "no_new_signals_until",
             "at": _iso(hold.releases_at)}]


def _cash_out_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "use_for_genuine_purchases"}]


# score


def _score_terms(hold: H.Hold, ctx: _Context) -> dict[str, Any]:
    """The numbers the hold was placed under and is released under (`rules.score_terms`),
    never the policy in effect now: one hold shows one set of numbers."""
    return rules.score_terms(hold, ctx.policy)


def _score_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    evidence = hold.evidence
    items: list[Item] = [{"fact": "score", "value": evidence["score"],
                          "threshold": _score_terms(hold, ctx)["threshold"]}]
    for dim in evidence.get("weakest_dimensions", [])[:2]:
        items.append({"fact": "weak_dimension", "value": dim["value"],
                      "dimension": dim["dimension"]})
    return items


def _score_current(hold: H.Hold, ctx: _Context) -> int:
    return ctx.state.score if ctx.state.score is not None else hold.evidence["score"]


def _score_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    # The rule (`rules.on_score_update`) releases at a score >= the hold's own release_at.
    return [{"path": H.RELEASE_CONDITION, "condition": "score_at_least",
             "required": _score_terms(hold, ctx)["release_at"],
             "current": _score_current(hold, ctx)}]


def _score_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    steps: list[Item] = [{"step": "improve_score",
                          "required": _score_terms(hold, ctx)["release_at"]}]
    dims = [d["dimension"] for d in hold.evidence.get("weakest_dimensions", [])[:2]]
    if dims:
        steps.append({"step": "improve_dimensions", "dimensions": dims})
    steps += [{"step": "complete_credit_tasks"}, {"step": "keep_more_commitments"}]
    return steps


def _score_counterfactual(hold: H.Hold, ctx: _Context) -> Item:
    return {"if": "score_at_least", "value": _score_terms(hold, ctx)["release_at"]}


# dormant


def _dormant_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    evidence = hold.evidence
    return [{"fact": "no_purchase_since", "value": _iso(evidence["since_anchor"]),
             "threshold": evidence["days_without_purchase"]}]


def _dormant_progress(ctx: _Context) -> dict[str, int]:
    return {"done": ctx.activities_in_window(),
            "required": ctx.policy.dormancy.reopen_activity_count,
            "window_days": ctx.policy.dormancy.reopen_window_days}


def _dormant_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_CONDITION, "condition": "recent_activity",
             "progress": _dormant_progress(ctx)}]


def _dormant_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "use_wallet_services",
             "required": ctx.policy.dormancy.reopen_activity_count,
             "window_days": ctx.policy.dormancy.reopen_window_days}]


def _dormant_counterfactual(hold: H.Hold, ctx: _Context) -> Item:
    progress = _dormant_progress(ctx)
    return {"if": "more_activities", "value": max(0, progress["required"] - progress["done"]),
            "window_days": progress["window_days"]}


# account security (confidential: kinds and times only)


def _security_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    items: list[Item] = [{"fact": "security_signal", "value": s}
                         for s in hold.evidence.get("signals", [])]
    if ctx.state.last_sensitive_change_at is not None:
        items.append({"fact": "last_sensitive_change",
                      "value": _ts(ctx.state.last_sensitive_change_at)})
    return items[-MAX_EVIDENCE:]


def _security_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "identity_verified"},
            {"path": H.RELEASE_TIME, "condition": "no_new_sensitive_changes_until",
             "at": _iso(hold.releases_at)}]


def _security_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "verify_identity"},
            {"step": "keep_details_stable"},
            {"step": "if_not_you_call_support", "phone": ctx.policy.support.phone}]


# identity document


def _id_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"fact": "id_expired_on", "value": _iso(hold.evidence["expires_on"])}]


def _id_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "id_document_updated"}]


def _id_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "upload_new_id"}]


def _id_counterfactual(hold: H.Hold, ctx: _Context) -> Item:
    return {"if": "id_document_updated"}


# maintenance and migration (scoped)


def _maintenance_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"fact": "maintenance_window", "value": _iso(hold.evidence["start"]),
             "end": _iso(hold.evidence["end"])}]


def _maintenance_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_TIME, "condition": "maintenance_ends",
             "at": _iso(hold.releases_at)}]


def _maintenance_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "wait_until", "at": _iso(hold.releases_at)}]


def _migration_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"fact": "migration_started", "value": _iso(hold.evidence["started_at"])}]


def _migration_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "migration_completed"}]


def _migration_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "wait_for_migration"}]


# password


def _password_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    evidence = hold.evidence
    return [{"fact": "password_failures", "value": evidence["failures"],
             "threshold": ctx.policy.password.max_consecutive_failures},
            {"fact": "locked_at", "value": _iso(evidence["locked_at"])}]


def _password_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_TIME, "condition": "lock_expires", "at": _iso(hold.releases_at)},
            {"path": H.RELEASE_EVENT, "condition": "password_reset",
             "identity_verification": True}]


def _password_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "wait_until", "at": _iso(hold.releases_at)},
            {"step": "reset_password_with_verification"}]


def _password_counterfactual(hold: H.Hold, ctx: _Context) -> Item:
    return {"if": "password_reset_with_verification"}


# policy tightening


def _feature_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _MONEY_FEATURES:
        return _money(round(value * 100))
    if name == "utilization":
        return round(float(value), 4)
    return _jsonable(value)


def _tightening_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    items: list[Item] = [{"fact": "portfolio_review", "value": _ts(hold.since)}]
    for name, value in sorted(hold.evidence.get("matched", {}).items()):
        items.append({"fact": "feature_matched", "value": _feature_value(name, value),
                      "feature": name})
    return items


def _reopen_criteria(hold: H.Hold, ctx: _Context) -> tuple[str, list[str], bool]:
    from jiefeng.policy.criteria import compile_stored_criteria

    text = hold.evidence["reopen_criteria"]
    criteria = compile_stored_criteria(text)
    met = criteria.matches(rules.features(ctx.state, ctx.at, ctx.policy))
    return text, sorted(criteria.features_used), met


def _criteria_terms(text: str) -> tuple[str | None, list[Item] | None]:
    """The criteria term by term for the customer (feature, op, value in its unit, direction),
    and how the terms join ("and", "or" or None for one term); (None, None) for a shape a
    customer cannot read at a glance (the release then names the features only)."""
    from jiefeng.policy.criteria import describe_criteria

    described = describe_criteria(text)
    if described is None:
        return None, None
    terms = []
    for term in described["terms"]:
        name = term["feature"]
        item: Item = {"feature": name, "op": term["op"], "direction": term["direction"]}
        for key in ("value", "low", "high"):
            if key in term:
                item[key] = _feature_value(name, term[key])
        if "values" in term:
            item["values"] = [_feature_value(name, v) for v in term["values"]]
        terms.append(item)
    return described["join"], terms


def _tightening_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    text, features, met = _reopen_criteria(hold, ctx)
    join, terms = _criteria_terms(text)
    return [{"path": H.RELEASE_CONDITION, "condition": "reopen_criteria", "criteria": text,
             "features": features, "join": join, "terms": terms, "currently_met": met,
             "not_before": _iso(hold.evidence["earliest_reopen_at"])}]


def _tightening_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    # The seed article's advice: better credit and assets kept in the wallet, then reapply.
    not_before = _iso(hold.evidence["earliest_reopen_at"])
    return [{"step": "improve_credit"},
            {"step": "keep_assets_in_wallet"},
            {"step": "wait_for_reassessment", "not_before": not_before},
            {"step": "reapply_later"}]


# manual review (the operator's note is internal: it is not shown)


def _manual_evidence(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"fact": "manual_review", "value": _ts(hold.since)}]


def _manual_release(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "operator_release"}]


def _manual_steps(hold: H.Hold, ctx: _Context) -> list[Item]:
    return [{"step": "contact_support", "phone": ctx.policy.support.phone}]


_SPECS: dict[str, _Spec] = {
    H.OVERDUE: _Spec(_overdue_evidence, _overdue_release, _overdue_steps,
                     _overdue_counterfactual, _overdue_bureau),
    H.CURE_PROBATION: _Spec(_cure_evidence, _cure_release, _cure_steps),
    H.EXTERNAL_OVERDUE: _Spec(_external_evidence, _external_release, _external_steps,
                              _external_counterfactual, _external_bureau),
    H.CASH_OUT_SUSPECTED: _Spec(_cash_out_evidence, _lifts_by_itself, _cash_out_steps,
                                appeal_step="appeal_with_receipts"),
    H.SCORE_BELOW_THRESHOLD: _Spec(_score_evidence, _score_release, _score_steps,
                                   _score_counterfactual),
    H.DORMANT: _Spec(_dormant_evidence, _dormant_release, _dormant_steps,
                     _dormant_counterfactual),
    H.ACCOUNT_SECURITY: _Spec(_security_evidence, _security_release, _security_steps),
    H.ID_EXPIRED: _Spec(_id_evidence, _id_release, _id_steps, _id_counterfactual),
    H.MAINTENANCE: _Spec(_maintenance_evidence, _maintenance_release, _maintenance_steps),
    H.MIGRATION: _Spec(_migration_evidence, _migration_release, _migration_steps),
    H.PASSWORD_LOCKED: _Spec(_password_evidence, _password_release, _password_steps,
                             _password_counterfactual),
    H.POLICY_TIGHTENING: _Spec(_tightening_evidence, _tightening_release, _tightening_steps),
    H.MANUAL_REVIEW: _Spec(_manual_evidence, _manual_release, _manual_steps),
}
assert set(_SPECS) == set(H.HOLD_CODES), "every hold code needs an explanation"


# --- ledger and self-checks ----------------------------------------------------------------------


def _plan(state: AccountState, at: dt.datetime, policy: Policy,
          scopes: Scopes) -> dict[str, Any] | None:
    """The unfreeze plan (jiefeng.domain.plan), its instants in the explanation's zone."""
    plan = unfreeze_plan(state, at, policy, scopes)
    if plan is None:
        return None
    found = plan.to_dict()
    found["earliest_active_at"] = _iso(plan.earliest_active_at)
    return found


def _ledger(state: AccountState, policy: Policy, status: str) -> dict[str, Any]:
    """The money, as of the explanation. `available_credit` is the line's headroom (limit less
    what is used); `usable_credit` what can be spent now: nothing while a hold is active, and
    `usable_credit_status` (the account's status) says why."""
    ledger = state.ledger
    return {
        "currency": policy.currency,
        "credit_limit": _money(state.credit_limit_fen),
        "available_credit": _money(state.available_credit_fen),
        "usable_credit": _money(state.available_credit_fen if status == "active" else 0),
        "usable_credit_status": status,
        "unbilled": _money(ledger.unbilled_fen),
        "billed_owed": _money(ledger.billed_owed_fen),
        "past_due": _money(ledger.past_due_minimum_fen()),
        "credit_balance": _money(ledger.credit_balance_fen),
        "minimum_due": _money(ledger.minimum_due_fen()),
        "revolving": _money(ledger.revolving_fen),
        "installments": _money(ledger.installment_balance_fen),
        "total_owed": _money(ledger.total_owed_fen),
        "statements": [statement_view(s, ledger)
                       for s in ledger.recent_statements(MAX_STATEMENTS)],
        "installment_plans": [plan_view(p) for p in ledger.plans.values()],
    }


def statement_status(statement: Any) -> str:
    """open (not yet judged), paid_in_full, minimum_met, below_minimum (past due now) or
    paid_late (it was past due; its minimum has since been paid)."""
    if not statement.judged:
        return "open"
    outcome = L.judgement(statement)
    return "paid_late" if outcome == "below_minimum" and statement.cured_at else outcome


def statement_view(statement: Any, ledger: Any) -> dict[str, Any]:
    """One statement as the customer and the API see it."""
    return {
        "statement_date": statement.statement_date.isoformat(),
        "due_date": statement.due_date.isoformat(),
        "new_balance": _money(statement.new_balance_fen),
        "minimum_due": _money(statement.minimum_due_fen),
        "paid": _money(statement.paid_since_issue_fen),
        "minimum_unpaid": _money(ledger.unpaid_minimum_fen(statement)),
        "revolving_interest": _money(statement.interest_fen),
        "fees": _money(statement.fees_fen),
        "installments": _money(statement.installments_fen),
        "owed": _money(statement.owed_fen),
        "status": statement_status(statement),
    }


def plan_view(plan: Any) -> dict[str, Any]:
    principal_fen, fee_fen = plan.next_installment() if plan.remaining_months else (0, 0)
    return {
        "plan_id": plan.plan_id,
        "purchase_event_id": plan.purchase_event_id,
        "months": plan.months,
        "months_left": plan.remaining_months,
        "remaining_principal": _money(plan.remaining_principal_fen),
        "remaining_fee": _money(plan.remaining_fee_fen),
        "next_installment": _money(principal_fen + fee_fen),
    }


OWN_PRODUCT = "this_line"  # a bureau record this credit line reported itself


def _own_reports(state: AccountState, policy: Policy) -> list[dict[str, Any]]:
    """The account's own statements reported to the bureau: the same record as an outside
    product's, so the self-check never says "nothing on file" while a hold says "reported"."""
    _, report_days = rules._bureau_days(policy)
    return [{"product": OWN_PRODUCT, "status": "overdue" if s.past_due else "settled",
             "days_past_due": report_days, "amount": _money(s.minimum_due_fen),
             "at": _iso(s.due_date + dt.timedelta(days=report_days)),
             "statement_date": _iso(s.statement_date)}
            for s in state.ledger.recent_statements(MAX_SELF_CHECK_ITEMS)[::-1]
            if s.bureau_reported]


def _purchase_checks(state: AccountState, at: dt.datetime) -> list[Item]:
    """Purchases approved and declined up to `at`, newest first: a declined attempt is listed
    with its codes, so a customer sees the purchase that did not go through and why."""
    attempts: list[tuple[dt.datetime, Item]] = []
    for when, event_id in state.recent_purchases:
        record = state.purchases.get(event_id)
        if record is None or when > at:
            continue
        attempts.append((when, {"event_id": event_id, "at": _ts(when),
                                "amount": _money(record.amount_fen),
                                "merchant_id": record.merchant_id,
                                "refunded": _money(record.refunded_fen), "declined": False}))
    for declined in state.declined_purchases:
        if declined.at > at:
            continue
        attempts.append((declined.at, {"event_id": declined.event_id, "at": _ts(declined.at),
                                       "amount": _money(declined.amount_fen),
                                       "merchant_id": declined.merchant_id, "declined": True,
                                       "decline_codes": list(declined.codes)}))
    attempts.sort(key=lambda pair: pair[0], reverse=True)
    return [item for _, item in attempts[:MAX_SELF_CHECK_ITEMS]]


def _self_checks(state: AccountState, policy: Policy, at: dt.datetime) -> dict[str, Any]:
    """What the customer can check, as of `at`: nothing that happened after it is listed, even
    when the state given was folded further (a backtest's side-by-side view)."""
    purchases = _purchase_checks(state, at)
    repayments = [{"event_id": event_id, "at": _ts(when), "amount": _money(amount_fen)}
                  for when, amount_fen, event_id in list(state.recent_repayments)[::-1]
                  if when <= at][:MAX_SELF_CHECK_ITEMS]
    score = None
    if state.score is not None and (state.score_at is None or state.score_at <= at):
        weakest = sorted(state.score_dimensions.items(), key=lambda kv: (kv[1], kv[0]))[:2]
        score = {"score": state.score, "at": _iso(state.score_at),
                 "weakest_dimensions": [{"dimension": k, "value": v} for k, v in weakest]}
    bureau = [{"product": f.product, "status": f.status, "days_past_due": f.days_past_due,
               "amount": _money(f.amount_fen), "at": _ts(f.at), "event_id": f.event_id}
              for f in sorted(state.bureau.values(), key=lambda f: f.product) if f.at <= at]
    bureau += _own_reports(state, policy)
    pending = [_appeal_dict(a, policy) for a in state.appeals.values()
               if a.status == "pending" and a.submitted_at <= at]
    # Whether each recent statement's minimum was met, newest first.
    today = local_date(at, zone(policy.timezone))
    statements = [statement_view(s, state.ledger)
                  for s in state.ledger.recent_statements(MAX_SELF_CHECK_ITEMS)[::-1]
                  if s.statement_date <= today]
    return {
        "recent_purchases": purchases,
        "recent_repayments": repayments,
        "recent_statements": statements,
        "score": score,
        "bureau_records": bureau,
        "support": {"phone": policy.support.phone, "appeal_path": policy.support.appeal_path,
                    "pending_appeals": pending},
    }
