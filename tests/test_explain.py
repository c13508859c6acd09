"""Explanations: the structured contract, the message catalogs and the renderers.

Every state here is built the real way: events through `parse_event` and `fold`, operator
commands through `apply_scope_command`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from jiefeng.domain import holds as H
from jiefeng.domain.core import advance, fold
from jiefeng.domain.events import parse_event
from jiefeng.domain.scopes import Scopes, apply_scope_command
from jiefeng.explain import render as R
from jiefeng.explain.structured import build_explanation
from jiefeng.policy.schema import Policy, default_policy, default_policy_text, parse_policy_text

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=CST)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
ACCOUNT = "A1"
CODES_ALL = H.HOLD_CODES


class Events:
    """Builds account events and operator commands with unique ids."""

    def __init__(self) -> None:
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"e{self.n}"

    def account(self, type_: str, at: dt.datetime, **fields: Any) -> Any:
        return parse_event({"event_id": self._id(), "type": type_, "at": at.isoformat(),
                            "account_id": ACCOUNT, **fields})

    def operator(self, type_: str, at: dt.datetime, **fields: Any) -> Any:
        return parse_event({"event_id": self._id(), "type": type_, "at": at.isoformat(),
                            "actor": "ops-1", **fields})

    def opened(self, **fields: Any) -> Any:
        fields.setdefault("credit_limit", "5000.00")
        fields.setdefault("id_expires_on", "2030-01-01")
        return self.account("account_opened", T0, **fields)


def explain(events: list[Any], at: dt.datetime, scopes: Scopes | None = None,
            policy: Policy | None = None) -> dict[str, Any]:
    state, at, scopes = build(events, at, scopes, policy)
    return build_explanation(state, at, policy or default_policy(), scopes)


def build(events: list[Any], at: dt.datetime, scopes: Scopes | None = None,
          policy: Policy | None = None) -> tuple[Any, dt.datetime, Scopes]:
    policy = policy or default_policy()
    scopes = scopes or Scopes()
    state, _ = fold(ACCOUNT, events, policy, scopes)
    state, _ = advance(state, at, policy, scopes)
    return state, at, scopes


def _scopes(*commands: Any) -> Scopes:
    scopes = Scopes()
    for command in commands:
        scopes = apply_scope_command(scopes, command)
    return scopes


def scenario(code: str, policy: Policy | None = None) -> tuple[Any, dt.datetime, Scopes]:
    """A real state with `code` among its active holds, and the moment to explain it at."""
    e = Events()
    opened = e.opened()
    if code == H.OVERDUE:
        events = [opened, e.account("purchase", T0 + DAY, amount="120.00", merchant_id="M1")]
        return build(events, T0 + 60 * DAY, policy=policy)
    if code == H.CURE_PROBATION:
        events = [opened, e.account("purchase", T0 + DAY, amount="120.00", merchant_id="M1"),
                  e.account("repayment", T0 + 40 * DAY, amount="200.00")]
        return build(events, T0 + 41 * DAY, policy=policy)
    if code == H.EXTERNAL_OVERDUE:
        events = [opened, e.account("bureau_record", T0 + DAY, product="jiebei", status="overdue",
                                    days_past_due=45, amount="800.00")]
        return build(events, T0 + 2 * DAY, policy=policy)
    if code == H.CASH_OUT_SUSPECTED:
        events = [opened,
                  e.account("purchase", T0 + DAY, amount="300.00", merchant_id="M-HIGHRISK-001"),
                  e.account("purchase", T0 + DAY + HOUR, amount="50.00", merchant_id="M2",
                            kind="cash_withdrawal")]
        return build(events, T0 + 2 * DAY, policy=policy)
    if code == H.SCORE_BELOW_THRESHOLD:
        events = [opened, e.account("score_update", T0 + DAY, score=580,
                                    dimensions={"compliance": 40, "behaviour": 70,
                                                "identity": 90, "assets": 35,
                                                "connections": 60})]
        return build(events, T0 + 2 * DAY, policy=policy)
    if code == H.DORMANT:
        year = T0 + 366 * DAY
        events = [opened, e.account("activity", year - 3 * DAY, category="payment"),
                  e.account("activity", year - 2 * DAY, category="life_service")]
        return build(events, year, policy=policy)
    if code == H.ACCOUNT_SECURITY:
        events = [opened, e.account("profile_change", T0 + DAY, field="bank_card"),
                  e.account("profile_change", T0 + 2 * DAY, field="bank_card")]
        events += [e.account("login", T0 + 2 * DAY + i * HOUR, device_id=f"D{i}")
                   for i in range(1, 4)]
        return build(events, T0 + 3 * DAY, policy=policy)
    if code == H.ID_EXPIRED:
        events = [e.opened(id_expires_on="2026-02-01")]
        return build(events, T0 + 40 * DAY, policy=policy)
    if code == H.MAINTENANCE:
        scopes = _scopes(e.operator("maintenance_scheduled", T0, window_id="W1",
                                    start=(T0 + DAY).isoformat(),
                                    end=(T0 + DAY + 6 * HOUR).isoformat()))
        return build([opened], T0 + DAY + HOUR, scopes, policy)
    if code == H.MIGRATION:
        scopes = _scopes(e.operator("migration_started", T0 + DAY, campaign_id="C1",
                                    account_ids=[ACCOUNT]))
        return build([opened], T0 + 2 * DAY, scopes, policy)
    if code == H.PASSWORD_LOCKED:
        events = [opened] + [e.account("password_attempt", T0 + DAY + i * HOUR / 10, ok=False)
                             for i in range(5)]
        return build(events, T0 + DAY + HOUR, policy=policy)
    if code == H.POLICY_TIGHTENING:
        scopes = _scopes(e.operator("policy_sweep", T0 + 10 * DAY, sweep_id="S1",
                                    criteria="credit_limit >= 1000 AND purchases_90d < 1",
                                    reopen_criteria="score >= 700"))
        return build([opened], T0 + 11 * DAY, scopes, policy)
    if code == H.MANUAL_REVIEW:
        events = [opened, e.operator("manual_hold_placed", T0 + DAY, account_id=ACCOUNT,
                                     reason="internal: KYC refresh")]
        return build(events, T0 + 2 * DAY, policy=policy)
    raise AssertionError(code)


def explain_code(code: str, policy: Policy | None = None) -> dict[str, Any]:
    policy = policy or default_policy()
    state, at, scopes = scenario(code, policy)
    return build_explanation(state, at, policy, scopes)


def hold_of(explanation: dict[str, Any], code: str) -> dict[str, Any]:
    matches = [h for h in explanation["holds"] if h["code"] == code]
    assert len(matches) == 1, [h["code"] for h in explanation["holds"]]
    return matches[0]


TOP_KEYS = {"account_id", "at", "status", "can_purchase", "can_repay", "policy_version", "holds",
            "what_still_works", "ledger", "self_checks"}
HOLD_KEYS = {"code", "since", "releases_at", "placed_by", "blocks", "closes_line", "evidence",
             "release", "steps", "appealable", "appeal", "counterfactual", "bureau"}
LEDGER_KEYS = {"credit_limit", "available_credit", "unbilled", "billed_owed", "past_due",
               "credit_balance"}
MONEY = re.compile(r"^-?\d+\.\d{2}$")


def _walk(value: Any):
    """Every scalar inside a JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


# --- the structured contract -----------------------------------------------------------------


@pytest.mark.parametrize("code", CODES_ALL)
def test_contract_for_every_hold_code(code: str) -> None:
    policy = default_policy()
    explanation = explain_code(code)
    assert TOP_KEYS <= set(explanation)
    assert explanation["account_id"] == ACCOUNT
    assert explanation["policy_version"] == policy.version
    assert explanation["status"] == ("closed" if code in H.LINE_CLOSING_CODES else "frozen")
    assert explanation["can_purchase"] is False
    assert explanation["can_repay"] is True
    assert explanation["what_still_works"][0] == "repayment"
    assert "purchase" not in explanation["what_still_works"]
    # JSON-ready: a round trip through JSON changes nothing (no datetimes, no Decimals).
    assert json.loads(json.dumps(explanation)) == explanation
    assert dt.datetime.fromisoformat(explanation["at"]).tzinfo is not None

    hold = hold_of(explanation, code)
    assert HOLD_KEYS <= set(hold)
    assert hold["blocks"] == ["purchase"]
    assert hold["closes_line"] is (code in H.LINE_CLOSING_CODES)
    assert dt.datetime.fromisoformat(hold["since"]).tzinfo is not None
    assert 1 <= len(hold["evidence"]) <= 4
    for item in hold["evidence"]:
        assert isinstance(item["fact"], str) and "value" in item
    # Every release path of the code is explained, and only those.
    assert {r["path"] for r in hold["release"]} == set(H.RELEASE_PATHS[code])
    assert all(isinstance(r["condition"], str) for r in hold["release"])
    assert hold["steps"] and all(isinstance(s["step"], str) for s in hold["steps"])
    assert hold["appealable"] is (code in policy.appeals.appealable_codes)
    assert hold["appeal"] is None
    assert (hold["releases_at"] is not None) is (H.RELEASE_TIME in H.RELEASE_PATHS[code])

    assert set(explanation["ledger"]) >= LEDGER_KEYS
    assert all(MONEY.match(explanation["ledger"][key]) for key in LEDGER_KEYS)
    checks = explanation["self_checks"]
    assert set(checks) == {"recent_purchases", "recent_repayments", "recent_statements", "score",
                           "bureau_records",
                           "support"}
    assert checks["support"]["phone"] == policy.support.phone
    assert checks["support"]["appeal_path"] == policy.support.appeal_path
    assert checks["support"]["pending_appeals"] == []


def test_no_prose_in_the_structure() -> None:
    """Strings in the explanation are codes, ids, ISO times, dates or amounts: never sentences."""
    for code in CODES_ALL:
        explanation = explain_code(code)
        for hold in explanation["holds"]:
            for item in hold["release"]:
                item.pop("criteria", None)  # the operator's reopen criteria, shown as given
        for value in _walk(explanation):
            if isinstance(value, str):
                assert " " not in value, (code, value)


def test_active_account() -> None:
    e = Events()
    explanation = explain([e.opened()], T0 + DAY)
    assert explanation["status"] == "active"
    assert explanation["can_purchase"] is True
    assert explanation["can_repay"] is True
    assert explanation["holds"] == []
    assert explanation["what_still_works"][:2] == ["purchase", "repayment"]
    assert explanation["ledger"]["available_credit"] == "5000.00"
    for lang, words in (("zh-CN", "您的额度可以正常使用"), ("en", "Your credit line is available")):
        text = R.render_text(explanation, lang)
        assert words in text
        assert "{" not in text and "}" not in text


def test_releases_at_null_for_condition_only_holds() -> None:
    for code in (H.OVERDUE, H.SCORE_BELOW_THRESHOLD, H.DORMANT, H.ID_EXPIRED, H.MIGRATION):
        assert hold_of(explain_code(code), code)["releases_at"] is None, code


def test_releases_at_for_password_lock_is_lock_time_plus_lock_hours() -> None:
    policy = default_policy()
    hold = hold_of(explain_code(H.PASSWORD_LOCKED), H.PASSWORD_LOCKED)
    locked_at = dt.datetime.fromisoformat(hold["since"])
    assert locked_at == T0 + DAY + 4 * HOUR / 10  # the fifth wrong attempt
    expected = locked_at + dt.timedelta(hours=policy.password.lock_hours)
    assert dt.datetime.fromisoformat(hold["releases_at"]) == expected
    assert {"fact": "locked_at", "value": locked_at.isoformat()} in hold["evidence"]
    assert hold["release"][0] == {"path": "time", "condition": "lock_expires",
                                  "at": expected.isoformat()}
    assert hold["release"][1]["condition"] == "password_reset"
    assert hold["release"][1]["identity_verification"] is True
    assert [s["step"] for s in hold["steps"]] == ["wait_until",
                                                  "reset_password_with_verification"]


def test_maintenance_hold_comes_from_scopes_and_ends_with_the_window() -> None:
    explanation = explain_code(H.MAINTENANCE)
    hold = hold_of(explanation, H.MAINTENANCE)
    end = T0 + DAY + 6 * HOUR
    assert dt.datetime.fromisoformat(hold["releases_at"]) == end
    assert hold["steps"] == [{"step": "wait_until", "at": end.isoformat()}]
    assert hold["placed_by"] == "e2"
    # After the window, the same account explains as active.
    e = Events()
    scopes = _scopes(e.operator("maintenance_scheduled", T0, window_id="W1",
                                start=(T0 + DAY).isoformat(), end=end.isoformat()))
    after = explain([e.opened()], end + HOUR, scopes)
    assert after["holds"] == [] and after["status"] == "active"


def test_migration_hold_until_completed() -> None:
    hold = hold_of(explain_code(H.MIGRATION), H.MIGRATION)
    assert hold["release"] == [{"path": "event", "condition": "migration_completed"}]
    assert hold["steps"] == [{"step": "wait_for_migration"}]


def test_overdue_amount_is_live_with_late_fee_and_bureau_timeline() -> None:
    policy = default_policy()
    e = Events()
    events = [e.opened(), e.account("purchase", T0 + DAY, amount="120.00", merchant_id="M1")]
    # Statement on Feb 1, due Feb 9, overdue from Feb 10 00:00; explain on Feb 11 at noon.
    at = dt.datetime(2026, 2, 11, 12, 0, tzinfo=CST)
    early = hold_of(explain(events, at), H.OVERDUE)
    # The minimum is 10 % of 120.00; 120.00 accrues 0.06 of interest a day from Feb 10 and
    # the 12.00 past-due minimum 0.006 of late fee (floored to the fen when shown).
    assert early["release"] == [{"path": "condition", "condition": "repay_past_due",
                                 "amount": "12.00", "full_balance": "120.06",
                                 "then_probation_days": 90,
                                 "progress": {"repaid": "0.00", "of": "12.00"}}]
    assert early["steps"] == [{"step": "repay_now", "amount": "12.00", "full_balance": "120.06"},
                              {"step": "set_autopay"}]
    assert early["counterfactual"]["if"] == "repaid"
    assert early["counterfactual"]["amount"] == "12.00"
    assert early["counterfactual"]["full_balance"] == "120.06"
    report_on = dt.date(2026, 2, 9) + DAY * policy.overdue.bureau_report_days_past_due
    assert early["bureau"] == {"reported": False, "report_on": report_on.isoformat(),
                               "days_past_due": 2}
    assert {"fact": "due_date", "value": "2026-02-09"} in early["evidence"]
    assert early["evidence"][0] == {"fact": "past_due_amount", "value": "12.00",
                                    "late_fee": "0.00", "full_balance": "120.06"}

    late = hold_of(explain(events, T0 + 60 * DAY), H.OVERDUE)
    assert late["bureau"]["reported"] is True
    assert late["bureau"]["days_past_due"] == 25
    # 24 days (Feb 10 to Mar 5): interest 24 x 0.06, late fees 24 x 0.006 floored.
    days = 24
    interest_fen = 12000 * policy.billing.revolving_interest_daily_bp * days // 10_000
    fees_fen = 1200 * policy.billing.late_fee_daily_bp * days // 10_000
    assert (interest_fen, fees_fen) == (144, 14)
    assert late["release"][0]["amount"] == "12.00"  # March's bill is not due yet
    assert late["release"][0]["full_balance"] == "121.58"


def test_score_release_and_counterfactual() -> None:
    policy = default_policy()
    hold = hold_of(explain_code(H.SCORE_BELOW_THRESHOLD), H.SCORE_BELOW_THRESHOLD)
    assert hold["release"][0] == {"path": "condition", "condition": "score_at_least",
                                  "required": policy.score.release_at, "current": 580}
    assert hold["counterfactual"] == {"if": "score_at_least", "value": policy.score.release_at}
    assert hold["evidence"][0] == {"fact": "score", "value": 580,
                                   "threshold": policy.score.threshold}
    explanation = explain_code(H.SCORE_BELOW_THRESHOLD)
    weakest = explanation["self_checks"]["score"]["weakest_dimensions"]
    assert weakest == [{"dimension": "assets", "value": 35},
                       {"dimension": "compliance", "value": 40}]


def test_dormant_progress_counts_activities_in_the_window() -> None:
    e = Events()
    year = T0 + 366 * DAY
    events = [e.opened(),
              e.account("activity", year - 45 * DAY, category="payment"),
              # in the window when it happened, out of it 30 days before the explanation
              e.account("activity", year - 28 * DAY, category="payment"),
              e.account("activity", year - 3 * DAY, category="payment"),
              e.account("activity", year - 2 * DAY, category="life_service")]
    explanation = explain(events, year + 5 * DAY)
    assert explanation["status"] == "closed"
    hold = hold_of(explanation, H.DORMANT)
    assert hold["release"][0] == {"path": "condition", "condition": "recent_activity",
                                  "progress": {"done": 2, "required": 5, "window_days": 30}}
    assert hold["counterfactual"] == {"if": "more_activities", "value": 3, "window_days": 30}
    assert "已完成 2/5 次" in R.render_text(explanation, "zh-CN")
    assert "done: 2 of 5" in R.render_text(explanation, "en")


def test_policy_tightening_reopen_criteria() -> None:
    hold = hold_of(explain_code(H.POLICY_TIGHTENING), H.POLICY_TIGHTENING)
    since = dt.datetime.fromisoformat(hold["since"])
    release = hold["release"][0]
    assert release["condition"] == "reopen_criteria"
    assert release["criteria"] == "score >= 700"
    assert release["features"] == ["score"]
    assert release["currently_met"] is False
    assert dt.datetime.fromisoformat(release["not_before"]) == since + 90 * DAY
    matched = {i["feature"]: i["value"] for i in hold["evidence"] if i["fact"] == "feature_matched"}
    assert matched == {"credit_limit": "5000.00", "purchases_90d": 0}


def test_manual_review_does_not_show_the_operator_note() -> None:
    explanation = explain_code(H.MANUAL_REVIEW)
    assert "KYC" not in json.dumps(explanation)
    for lang in R.SUPPORTED_LANGS:
        assert "KYC" not in R.render_text(explanation, lang)


def test_several_holds_are_all_listed_in_order() -> None:
    e = Events()
    lock_at = T0 + 40 * DAY
    events = [e.opened(id_expires_on="2026-02-01"),
              e.account("score_update", T0 + DAY, score=550)]
    events += [e.account("password_attempt", lock_at + i * dt.timedelta(minutes=1), ok=False)
               for i in range(5)]
    scopes = _scopes(e.operator("maintenance_scheduled", T0, window_id="W1",
                                start=(lock_at + HOUR).isoformat(),
                                end=(lock_at + 5 * HOUR).isoformat()))
    explanation = explain(events, lock_at + 2 * HOUR, scopes)
    codes = [h["code"] for h in explanation["holds"]]
    assert codes == [H.SCORE_BELOW_THRESHOLD, H.ID_EXPIRED, H.PASSWORD_LOCKED, H.MAINTENANCE]
    since = [h["since"] for h in explanation["holds"]]
    assert since == sorted(since, key=dt.datetime.fromisoformat)
    assert explanation["status"] == "frozen"
    assert explanation["what_still_works"] == ["repayment", "statements", "queries", "appeal"]
    for lang in R.SUPPORTED_LANGS:
        text = R.render_text(explanation, lang)
        catalog = R.load_catalog(lang)
        positions = [text.index(catalog[f"hold.{code}.title"]) for code in codes]
        assert positions == sorted(positions)


def test_repayment_always_works() -> None:
    for code in CODES_ALL:
        explanation = explain_code(code)
        assert "repayment" in explanation["what_still_works"]
        assert explanation["can_repay"] is True
        assert R.load_catalog("zh-CN")["works.repayment"] in R.render_text(explanation)
        assert R.load_catalog("en")["works.repayment"] in R.render_text(explanation, "en")


def test_appeal_pending_then_rejected_with_reason() -> None:
    policy = default_policy()
    e = Events()
    opened = e.opened()
    score = e.account("score_update", T0 + DAY, score=580)
    appeal = e.account("appeal_submitted", T0 + 2 * DAY, appeal_id="AP1",
                       hold_code=H.SCORE_BELOW_THRESHOLD, statement="my salary went up")
    pending = explain([opened, score, appeal], T0 + 3 * DAY)
    hold = hold_of(pending, H.SCORE_BELOW_THRESHOLD)
    assert hold["appealable"] is False
    assert hold["appeal"]["status"] == "pending"
    reply_by = T0 + 2 * DAY + DAY * policy.appeals.sla_days
    assert hold["appeal"]["reply_by"] == reply_by.isoformat()
    assert hold["steps"][-1] == {"step": "wait_for_appeal_decision",
                                 "reply_by": reply_by.isoformat()}
    assert [a["appeal_id"] for a in pending["self_checks"]["support"]["pending_appeals"]] == ["AP1"]

    reason = "<b>Income proof</b> could not be verified"
    decided = e.operator("appeal_decided", T0 + 4 * DAY, appeal_id="AP1", decision="reject",
                         reason=reason, account_id=ACCOUNT)
    rejected = explain([opened, score, appeal, decided], T0 + 5 * DAY)
    hold = hold_of(rejected, H.SCORE_BELOW_THRESHOLD)
    assert hold["appealable"] is True
    assert hold["appeal"]["status"] == "rejected"
    assert hold["appeal"]["reason"] == reason
    assert hold["steps"][-1]["step"] == "submit_appeal"
    assert rejected["self_checks"]["support"]["pending_appeals"] == []
    assert reason in R.render_text(rejected, "en")
    page = R.render_html(rejected, "en")
    assert "<b>Income proof</b>" not in page
    assert "&lt;b&gt;Income proof&lt;/b&gt;" in page


# --- confidential holds -----------------------------------------------------------------------


def _detection_numbers(policy: Policy) -> set[int]:
    numbers: set[int] = set()
    for section in (policy.cash_out, policy.account_security):
        numbers |= {v for v in section.model_dump().values()
                    if isinstance(v, int) and not isinstance(v, bool)}
    numbers.add(policy.cash_out.round_amount_fen // 100)  # 1,000 yuan
    return numbers


UNITS = r"\s*(?:天|日|小时|分钟|次|笔|台|个|%|days?|hours?|minutes?|times|devices?|purchases?)"


def _thresholds_in(text: str, numbers: set[int]) -> list[str]:
    found = []
    for n in sorted(numbers):
        for spelled in {str(n), f"{n:,}"}:
            if re.search(rf"(?<![\d.,:/月]){re.escape(spelled)}(?![\d.,:]){UNITS}", text):
                found.append(spelled)
            if n >= 1000 and re.search(rf"(?<![\d.,]){re.escape(spelled)}(?![\d])", text):
                found.append(spelled)
    return found


@pytest.mark.parametrize("code", sorted(H.CONFIDENTIAL_CODES))
def test_confidential_evidence_has_no_thresholds_counts_or_windows(code: str) -> None:
    policy = default_policy()
    numbers = _detection_numbers(policy)
    hold = hold_of(explain_code(code), code)
    assert hold["counterfactual"] is None
    for item in hold["evidence"]:
        assert set(item) <= {"fact", "value", "ref", "at"}, item
        assert all(isinstance(v, str) for v in item.values()), item
    # No number anywhere in what the hold says (the appeal SLA is a service promise, not a
    # detection rule, and is checked separately below).
    public = {k: v for k, v in hold.items() if k != "appeal_sla"}
    for value in _walk(public):
        assert not isinstance(value, (int, float)) or isinstance(value, bool), value
        if isinstance(value, str):
            assert value not in {str(n) for n in numbers}


def test_cash_out_evidence_names_signal_kinds_and_refs_only() -> None:
    e = Events()
    events = [e.opened()]
    events += [e.account("purchase", T0 + DAY + i * HOUR, amount="1000.00", merchant_id="M5")
               for i in range(3)]
    events.append(e.account("purchase", T0 + DAY + 4 * HOUR, amount="10.00", merchant_id="M6",
                            kind="transfer"))
    hold = hold_of(explain(events, T0 + 2 * DAY), H.CASH_OUT_SUSPECTED)
    assert hold["evidence"] == [
        {"fact": "cash_out_signal", "value": "kind_not_allowed", "ref": "e5",
         "at": (T0 + DAY + 4 * HOUR).isoformat()},
        {"fact": "cash_out_signal", "value": "rapid_merchant", "ref": "e4",
         "at": (T0 + DAY + 2 * HOUR).isoformat()},
    ]
    assert hold["steps"][0] == {"step": "use_for_genuine_purchases"}
    assert hold["steps"][1]["step"] == "appeal_with_receipts"


@pytest.mark.parametrize("code", sorted(H.CONFIDENTIAL_CODES))
@pytest.mark.parametrize("lang", R.SUPPORTED_LANGS)
def test_confidential_rendering_shows_no_detection_threshold(code: str, lang: str) -> None:
    # The default fast appeal SLA (72 hours) happens to equal the phone-and-new-device window;
    # give the SLA its own number so that any 72 left in the text would be a leak.
    text = default_policy_text().replace("fast_sla_hours = 72", "fast_sla_hours = 36")
    policy = parse_policy_text(text)
    assert policy.appeals.fast_sla_hours == 36
    numbers = _detection_numbers(policy)
    explanation = explain_code(code, policy)
    rendered = R.render_text(explanation, lang)
    assert _thresholds_in(rendered, numbers) == []
    assert _thresholds_in(R.render_html(explanation, lang), numbers) == []
    assert ("36小时" if lang == "zh-CN" else "36 hours") in rendered
    # The check itself can fail: the policy's numbers with a unit are caught.
    caught = _thresholds_in("3 次 / 24 hours / 7 days / 1,000", numbers)
    assert set(caught) == {"1,000", "3", "7", "24"}


CONFIDENTIAL_MESSAGES = (
    "fact.cash_out_signal", "fact.security_signal", "fact.last_sensitive_change",
    "release.no_new_signals_until", "release.no_new_sensitive_changes_until",
    "step.use_for_genuine_purchases", "step.appeal_with_receipts", "step.verify_identity",
)


@pytest.mark.parametrize("lang", R.SUPPORTED_LANGS)
def test_confidential_messages_carry_no_numbers(lang: str) -> None:
    """Whatever the data, what confidential holds say has no number of its own."""
    catalog = R.load_catalog(lang)
    keys = [k for k in catalog if k.startswith("signal.")]
    keys += [f"hold.{c}.{part}" for c in H.CONFIDENTIAL_CODES for part in ("title", "summary")]
    keys += CONFIDENTIAL_MESSAGES
    assert len(keys) == 8 + 4 + len(CONFIDENTIAL_MESSAGES)
    for key in keys:
        assert not re.search(r"\d", catalog[key]), (key, catalog[key])


# --- catalogs and rendering -------------------------------------------------------------------


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    zh, en = R.load_catalog("zh-CN"), R.load_catalog("en")
    assert set(zh) == set(en)
    for key in zh:
        assert R.placeholders(zh[key]) == R.placeholders(en[key]), key
        assert zh[key].strip() and en[key].strip(), key


SIGNALS = ("kind_not_allowed", "high_risk_merchant", "rapid_merchant", "quick_refunds",
           "score_brushing", "bank_card_changes", "phone_and_new_device", "new_devices")


@pytest.mark.parametrize("lang", R.SUPPORTED_LANGS)
def test_catalog_covers_every_code(lang: str) -> None:
    from jiefeng.policy.criteria import FEATURES

    catalog = R.load_catalog(lang)
    required = {f"hold.{c}.{part}" for c in CODES_ALL for part in ("title", "summary")}
    required |= {f"status.{s}" for s in ("active", "frozen", "closed")}
    required |= {f"signal.{s}" for s in SIGNALS}
    required |= {f"path.{p}" for p in ("time", "condition", "event", "review")}
    required |= {f"feature.{name}" for name in FEATURES}
    required |= {f"product.{p}" for p in ("jiebei", "mybank", "beiyongjin", "other")}
    assert required <= set(catalog), sorted(required - set(catalog))


@pytest.mark.parametrize("code", CODES_ALL)
@pytest.mark.parametrize("lang", R.SUPPORTED_LANGS)
def test_every_hold_code_renders(code: str, lang: str) -> None:
    explanation = explain_code(code)
    catalog = R.load_catalog(lang)
    text = R.render_text(explanation, lang)
    assert "{" not in text and "}" not in text
    assert "None" not in text
    assert explanation["policy_version"] in text
    assert catalog[f"status.{explanation['status']}"] in text
    assert catalog[f"hold.{code}.title"] in text
    assert catalog["works.repayment"] in text
    hold = hold_of(explanation, code)
    for number in range(1, len(hold["steps"]) + 1):
        assert f"   {number}) " in text
    assert catalog["check.heading"] in text
    assert text.index(catalog[f"hold.{code}.title"]) < text.index(catalog["check.heading"])
    if hold["releases_at"] is None:  # "any of the ways above" only when there are several
        many = len(hold["release"]) > 1
        assert catalog["label.no_auto_release" if many else "label.no_auto_release_one"] in text
    page = R.render_html(explanation, lang)
    assert page.startswith('<section class="jf-explanation"')
    assert f'data-code="{code}"' in page
    body = page.split("</style>", 1)[1]
    assert "{" not in body and "}" not in body


def test_text_is_localised_with_babel() -> None:
    explanation = explain_code(H.OVERDUE)
    zh = R.render_text(explanation, "zh-CN")
    en = R.render_text(explanation, "en")
    assert "¥12.00" in zh and "¥12.00" in en  # the past-due minimum
    assert "¥121.58" in zh and "¥121.58" in en  # what clears everything
    assert "CN¥" not in en  # customers read ¥ in both languages (hardening item 29)
    assert "2026年2月10日 00:00" in zh  # overdue since local midnight, Asia/Shanghai
    assert "Feb 10, 2026" in en
    utc = R.render_text(explanation, "en", tz="UTC")
    assert "Feb 9, 2026, 4:00" in utc


def test_unknown_language_is_refused() -> None:
    explanation = explain_code(H.OVERDUE)
    for render in (R.render_text, R.render_html):
        with pytest.raises(ValueError, match="^lang: must be one of zh-CN, en$"):
            render(explanation, "fr")


def test_a_missing_message_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    explanation = explain_code(H.DORMANT)
    partial = dict(R.load_catalog("en"))
    del partial["release.recent_activity"]
    monkeypatch.setattr(R, "load_catalog", lambda lang: partial)
    with pytest.raises(KeyError, match="release.recent_activity"):
        R.render_text(explanation, "en")


def test_a_missing_parameter_fails_loudly() -> None:
    explanation = explain_code(H.DORMANT)
    del explanation["holds"][0]["release"][0]["progress"]["done"]
    with pytest.raises(KeyError, match="needs {done}"):
        R.render_text(explanation, "zh-CN")


def test_the_accounts_own_bureau_report_is_on_file_in_the_self_check() -> None:
    """Once the hold says its overdue was reported, the self-check 征信记录 lists that report,
    not "nothing on file" (hardening item 26); after repayment it shows as settled."""
    e = Events()
    events = [e.opened(), e.account("purchase", T0 + DAY, amount="120.00", merchant_id="M1")]
    before = explain(events, dt.datetime(2026, 2, 11, 12, 0, tzinfo=CST))
    assert before["self_checks"]["bureau_records"] == []
    late = explain(events, T0 + 60 * DAY)
    assert hold_of(late, H.OVERDUE)["bureau"]["reported"] is True
    records = late["self_checks"]["bureau_records"]
    assert records == [{"product": "this_line", "status": "overdue", "days_past_due": 3,
                        "amount": "12.00", "at": "2026-02-12", "statement_date": "2026-02-01"}]
    for lang, words in (("zh-CN", "本额度"), ("en", "this credit line")):
        text = R.render_text(late, lang)
        section = text.split(R.load_catalog(lang)["check.bureau_records"])[1]
        assert words in section.splitlines()[1], section
    repaid = [*events, e.account("repayment", T0 + 61 * DAY, amount="200.00")]
    settled = explain(repaid, T0 + 62 * DAY)["self_checks"]["bureau_records"]
    assert [r["status"] for r in settled] == ["settled"]
