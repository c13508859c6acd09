"""The outside audit of the explanations (issue 9, hardening items 27, 28 and 29).

Every state is built the real way (events through `parse_event` and `fold`, operator commands
through the scopes); each test names the audit finding it pins.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

import pytest

from jiefeng.domain import holds as H
from jiefeng.domain.core import fold
from jiefeng.domain.scopes import PolicyActivation, Scopes
from jiefeng.explain import render as R
from jiefeng.explain.structured import build_explanation
from jiefeng.policy.schema import Policy, default_policy
from test_explain import (
    ACCOUNT,
    CST,
    DAY,
    HOUR,
    T0,
    Events,
    _scopes,
    explain,
    explain_code,
    hold_of,
)


def policy_with(version: str, **sections: dict[str, Any]) -> Policy:
    from jiefeng.policy.schema import parse_policy

    document = default_policy().model_dump()
    document["version"] = version
    for name, values in sections.items():
        document[name] = {**document[name], **values}
    return parse_policy(document)


def texts(explanation: dict[str, Any]) -> dict[str, str]:
    return {lang: R.render_text(explanation, lang) for lang in R.SUPPORTED_LANGS}


# --- item 27: a score hold keeps the numbers it was placed under ------------------------------

OLD = policy_with("score-old", score={"threshold": 600, "release_at": 620})
NEW = policy_with("score-new", score={"threshold": 650, "release_at": 680})
SWITCH = T0 + 10 * DAY  # the new policy is active from here


def _switched_scopes() -> Scopes:
    activation = PolicyActivation(SWITCH, NEW.version, "0" * 64, "pa-1", "ops-1", NEW)
    return Scopes(policy_activations=[activation])


def _score_life(*scores: tuple[dt.timedelta, int]) -> list[Any]:
    e = Events()
    events = [e.opened()]
    events += [e.account("score_update", T0 + offset, score=score,
                         dimensions={"compliance": 40, "behaviour": 70, "identity": 90,
                                     "assets": 35, "connections": 60})
               for offset, score in scores]
    return events


def test_a_score_hold_is_explained_with_the_numbers_it_was_placed_under() -> None:
    """Placed under threshold 600 / release 620; the policy then moves to 650 / 680 and a new
    low score refreshes the hold: evidence, release, steps and tip all say 600 and 620."""
    scopes = _switched_scopes()
    events = _score_life((DAY, 580), (SWITCH - T0 + DAY, 590))
    at = SWITCH + 2 * DAY
    state, _ = fold(ACCOUNT, events, OLD, scopes, until=at)
    explanation = build_explanation(state, at, OLD, scopes)
    assert explanation["policy_version"] == NEW.version  # the version in effect now
    hold = hold_of(explanation, H.SCORE_BELOW_THRESHOLD)
    assert hold["evidence"][0] == {"fact": "score", "value": 590, "threshold": 600}
    assert hold["release"][0] == {"path": "condition", "condition": "score_at_least",
                                  "required": 620, "current": 590}
    assert hold["steps"][0] == {"step": "improve_score", "required": 620}
    assert hold["counterfactual"] == {"if": "score_at_least", "value": 620}
    assert state.holds[H.SCORE_BELOW_THRESHOLD].evidence["policy_version"] == OLD.version
    for lang, text in texts(explanation).items():
        assert "680" not in text and "650" not in text, lang


def test_a_score_hold_is_released_under_the_numbers_it_was_placed_under() -> None:
    """The rule agrees with the explanation: 630 clears the hold placed under release 620,
    though the policy in effect now would ask 680."""
    scopes = _switched_scopes()
    events = _score_life((DAY, 580), (SWITCH - T0 + DAY, 630))
    state, _ = fold(ACCOUNT, events, OLD, scopes, until=SWITCH + 2 * DAY)
    assert H.SCORE_BELOW_THRESHOLD not in state.holds
    # A hold placed under the new policy uses the new numbers.
    events = _score_life((SWITCH - T0 + DAY, 640), (SWITCH - T0 + 2 * DAY, 670))
    state, _ = fold(ACCOUNT, events, OLD, scopes, until=SWITCH + 3 * DAY)
    hold = state.holds[H.SCORE_BELOW_THRESHOLD]
    assert (hold.evidence["threshold"], hold.evidence["release_at"]) == (650, 680)
    assert hold.evidence["policy_version"] == NEW.version


def test_a_score_hold_from_an_old_snapshot_without_a_policy_version_still_explains() -> None:
    """Holds folded before the version was recorded keep their threshold and release value."""
    events = _score_life((DAY, 580))
    state, _ = fold(ACCOUNT, events, OLD, Scopes(), until=T0 + 2 * DAY)
    hold = state.holds[H.SCORE_BELOW_THRESHOLD]
    evidence = {k: v for k, v in hold.evidence.items() if k != "policy_version"}
    state.holds[H.SCORE_BELOW_THRESHOLD] = H.Hold(hold.code, hold.since, hold.placed_by, evidence)
    explanation = build_explanation(state, T0 + 2 * DAY, NEW, Scopes())
    assert hold_of(explanation, H.SCORE_BELOW_THRESHOLD)["release"][0]["required"] == 620


# --- item 28: self-checks as of `at`, declined purchases, usable credit, direction ----------


def test_self_checks_list_nothing_after_the_explanations_time() -> None:
    """A state folded past `at` (a backtest's side by side) lists purchases, repayments,
    declined attempts, the score and appeals only up to `at`."""
    e = Events()
    at = T0 + 10 * DAY
    events = [e.opened(),
              e.account("purchase", T0 + DAY, amount="30.00", merchant_id="M-BEFORE"),
              e.account("repayment", T0 + 2 * DAY, amount="30.00"),
              e.account("purchase", at + DAY, amount="40.00", merchant_id="M-AFTER"),
              e.account("purchase", at + DAY + HOUR, amount="5.00", merchant_id="M-AFTER",
                        kind="transfer"),
              e.account("repayment", at + 2 * DAY, amount="40.00"),
              e.account("score_update", at + 3 * DAY, score=700)]
    state, _ = fold(ACCOUNT, events, default_policy(), Scopes(), until=at + 4 * DAY)
    checks = build_explanation(state, at, default_policy(), Scopes())["self_checks"]
    assert [p["merchant_id"] for p in checks["recent_purchases"]] == ["M-BEFORE"]
    assert [r["amount"] for r in checks["recent_repayments"]] == ["30.00"]
    assert checks["score"] is None
    later = build_explanation(state, at + 4 * DAY, default_policy(), Scopes())["self_checks"]
    assert [p["merchant_id"] for p in later["recent_purchases"]] == [
        "M-AFTER", "M-AFTER", "M-BEFORE"]
    assert later["score"]["score"] == 700


def test_declined_purchases_are_listed_with_their_decline_codes() -> None:
    e = Events()
    events = [e.opened()]
    events += [e.account("password_attempt", T0 + DAY + i * HOUR / 10, ok=False)
               for i in range(5)]
    events += [e.account("purchase", T0 + DAY + HOUR, amount="88.00", merchant_id="M-LOCKED"),
               e.account("purchase", T0 + 3 * DAY, amount="12.00", merchant_id="M-OK")]
    explanation = explain(events, T0 + 3 * DAY + HOUR)
    purchases = explanation["self_checks"]["recent_purchases"]
    assert [(p["merchant_id"], p["declined"]) for p in purchases] == [
        ("M-OK", False), ("M-LOCKED", True)]
    assert purchases[1]["decline_codes"] == ["password_locked"]
    assert purchases[1]["amount"] == "88.00"
    text = texts(explanation)
    assert "M-LOCKED · ¥88.00 · 未成功：支付密码已锁定" in text["zh-CN"]
    assert "M-LOCKED · ¥88.00 · declined: Payment password locked" in text["en"]


def test_a_request_code_decline_reads_as_a_reason() -> None:
    e = Events()
    events = [e.opened(credit_limit="100.00"),
              e.account("purchase", T0 + DAY, amount="150.00", merchant_id="M-BIG")]
    explanation = explain(events, T0 + 2 * DAY)
    item = explanation["self_checks"]["recent_purchases"][0]
    assert (item["declined"], item["decline_codes"]) == (True, ["insufficient_credit"])
    assert "declined: not enough available credit" in texts(explanation)["en"]
    assert "未成功：可用额度不足" in texts(explanation)["zh-CN"]


@pytest.mark.parametrize(("code", "status"), [(H.PASSWORD_LOCKED, "frozen"),
                                              (H.DORMANT, "closed")])
def test_a_frozen_or_closed_line_shows_no_usable_credit(code: str, status: str) -> None:
    explanation = explain_code(code)
    ledger = explanation["ledger"]
    assert (ledger["usable_credit"], ledger["usable_credit_status"]) == ("0.00", status)
    assert ledger["available_credit"] == "5000.00"  # the headroom, kept in the data
    text = texts(explanation)
    if status == "frozen":
        assert "Available credit: ¥0.00 usable while the line is frozen (¥5,000.00 once" in (
            text["en"])
        assert "可用额度：¥0.00（冻结期间不可用；恢复后可用 ¥5,000.00）" in text["zh-CN"]
    else:
        assert "Available credit: ¥0.00: not usable while the line is closed" in text["en"]
        assert "可用额度：¥0.00（额度关闭期间不可用）" in text["zh-CN"]
        assert "5,000.00" not in text["en"].split("Credit limit")[1].split("\n")[1]


def test_an_active_line_shows_its_available_credit_as_usable() -> None:
    explanation = explain([Events().opened()], T0 + DAY)
    assert explanation["ledger"]["usable_credit"] == "5000.00"
    assert "Available credit: ¥5,000.00\n" in texts(explanation)["en"]


def _tightened(reopen: str, **opened: Any) -> dict[str, Any]:
    e = Events()
    scopes = _scopes(e.operator("policy_sweep", T0 + 10 * DAY, sweep_id="S1",
                                criteria="credit_limit >= 1000", reopen_criteria=reopen))
    return explain([e.opened(**opened)], T0 + 11 * DAY, scopes)


def test_a_reopen_criterion_on_utilization_says_which_way_to_go() -> None:
    explanation = _tightened("utilization <= 0.3")
    release = hold_of(explanation, H.POLICY_TIGHTENING)["release"][0]
    assert release["terms"] == [{"feature": "utilization", "op": "at_most", "value": 0.3,
                                 "direction": "less"}]
    text = texts(explanation)
    assert "share of the limit in use at most 30% (use less of your line)" in text["en"]
    assert "额度使用率不超过 30%（少用一些额度）" in text["zh-CN"]
    more = texts(_tightened("utilization >= 0.1"))
    assert "at least 10% (use more of your line)" in more["en"]
    assert "不低于 10%（多使用额度）" in more["zh-CN"]


# --- item 29: advice, labels, joins, wording ------------------------------------------------


def _steps(code: str) -> list[str]:
    return [s["step"] for s in hold_of(explain_code(code), code)["steps"]]


def test_policy_tightening_advises_credit_assets_in_the_wallet_and_reapplying() -> None:
    assert _steps(H.POLICY_TIGHTENING)[:4] == [
        "improve_credit", "keep_assets_in_wallet", "wait_for_reassessment", "reapply_later"]
    text = texts(explain_code(H.POLICY_TIGHTENING))
    assert "余额宝" in text["zh-CN"] and "Yu'e Bao" in text["en"]
    assert "申请重新开通" in text["zh-CN"] and "apply to reopen" in text["en"]


def test_account_security_advises_stable_details_and_what_to_do_if_it_was_not_you() -> None:
    steps = hold_of(explain_code(H.ACCOUNT_SECURITY), H.ACCOUNT_SECURITY)["steps"]
    assert [s["step"] for s in steps][:3] == [
        "verify_identity", "keep_details_stable", "if_not_you_call_support"]
    assert steps[2]["phone"] == default_policy().support.phone
    text = texts(explain_code(H.ACCOUNT_SECURITY))
    assert "手机号码和地址" in text["zh-CN"] and "phone number and address" in text["en"]
    assert "如果不是您本人操作，请立即拨打客服电话 95188，并修改各项密码" in text["zh-CN"]
    assert "If it was not you, call customer service at 95188" in text["en"]


def test_score_advises_credit_tasks_and_more_kinds_of_kept_commitments() -> None:
    assert {"complete_credit_tasks", "keep_more_commitments"} <= set(
        _steps(H.SCORE_BELOW_THRESHOLD))
    text = texts(explain_code(H.SCORE_BELOW_THRESHOLD))
    assert "信用任务" in text["zh-CN"] and "credit tasks" in text["en"]


def test_cash_out_says_use_it_for_real_purchases_from_now_on() -> None:
    text = texts(explain_code(H.CASH_OUT_SUSPECTED))
    assert "从现在起" in text["zh-CN"] and "重新计算" in text["zh-CN"]
    assert "From now on" in text["en"] and "restarts the wait" in text["en"]


@pytest.mark.parametrize("lang", R.SUPPORTED_LANGS)
def test_new_advice_of_confidential_holds_carries_no_numbers(lang: str) -> None:
    catalog = R.load_catalog(lang)
    for key in ("step.use_for_genuine_purchases", "step.keep_details_stable",
                "step.if_not_you_call_support"):
        assert not any(ch.isdigit() for ch in catalog[key]), key


def test_segments_are_shown_by_their_label_never_as_stored() -> None:
    e = Events()
    scopes = _scopes(e.operator("policy_sweep", T0 + 10 * DAY, sweep_id="S1",
                                criteria="segment = 'young' AND credit_limit >= 1000",
                                reopen_criteria="segment IN ('premium', 'young_urban')"))
    explanation = explain([e.opened(segment="young")], T0 + 11 * DAY, scopes)
    matched = [i for i in hold_of(explanation, H.POLICY_TIGHTENING)["evidence"]
               if i.get("feature") == "segment"]
    assert matched == [{"fact": "feature_matched", "value": "young", "feature": "segment"}]
    text = texts(explanation)
    assert "客户类别 年轻客户" in text["zh-CN"]
    assert "customer category, young customers" in text["en"]
    # A label without a catalog entry reads as words, not as the stored code.
    assert "young urban" in text["en"] and "young_urban" not in text["en"]
    assert "customer category is premium customers or young urban" in text["en"]
    assert "客户类别为 优享客户或young urban" in text["zh-CN"]


@pytest.mark.parametrize(("reopen", "en", "zh"), [
    ("score >= 650 OR deposits >= 10000",
     "credit score at least 650 (keep good credit habits) or deposits at least ¥10,000.00",
     "信用分不低于 650（保持良好的信用习惯），或存款余额不低于 ¥10,000.00"),
    ("score >= 650 AND deposits >= 10000",
     "credit score at least 650 (keep good credit habits) and deposits at least ¥10,000.00",
     "信用分不低于 650（保持良好的信用习惯），且存款余额不低于 ¥10,000.00"),
])
def test_reopen_rules_say_or_for_or_and_and_for_and(reopen: str, en: str, zh: str) -> None:
    release = hold_of(_tightened(reopen), H.POLICY_TIGHTENING)["release"][0]
    assert release["join"] == ("or" if " OR " in reopen else "and")
    text = texts(_tightened(reopen))
    assert en in text["en"] and zh in text["zh-CN"]


def test_a_mixed_rule_names_its_features_without_and_or_or() -> None:
    explanation = _tightened("score >= 650 AND (utilization <= 0.3 OR deposits >= 10000)")
    release = hold_of(explanation, H.POLICY_TIGHTENING)["release"][0]
    assert (release["join"], release["terms"]) == (None, None)
    text = texts(explanation)
    assert "(it looks at your deposits, credit score, share of the limit in use)" in text["en"]
    assert "（参考您的存款余额、信用分、额度使用率）" in text["zh-CN"]


def test_describe_criteria_reads_simple_shapes_only() -> None:
    from jiefeng.policy.criteria import describe_criteria

    assert describe_criteria("650 < score") == {"join": None, "terms": [
        {"feature": "score", "op": "above", "value": 650, "direction": "more"}]}
    assert describe_criteria("score BETWEEN 600 AND 700")["terms"][0]["op"] == "between"
    assert describe_criteria("a OR b") is None  # not criteria at all
    assert describe_criteria("score + 1 > 650") is None
    assert describe_criteria("NOT score > 650") is None
    assert describe_criteria("score > 1 OR utilization < 0.2 OR deposits > 3")["join"] == "or"


def test_overdue_wording_says_the_due_day_itself_is_on_time() -> None:
    for code in (H.OVERDUE, H.CURE_PROBATION):
        text = texts(explain_code(code))
        assert "还款日当天及之前" in text["zh-CN"], code
        assert "on or before" in text["en"] and "due date" in text["en"], code
    for lang in R.SUPPORTED_LANGS:
        assert not [k for k, v in R.load_catalog(lang).items() if "还款日前" in v]


def test_any_of_the_ways_above_only_when_there_are_several() -> None:
    one = texts(explain_code(H.OVERDUE))  # repaying is the only way out
    assert "任一" not in one["zh-CN"] and "any one of" not in one["en"]
    assert "满足上面的恢复条件后即可恢复" in one["zh-CN"]
    several = texts(explain_code(H.SCORE_BELOW_THRESHOLD))  # the score, or an appeal
    assert "满足上面任一恢复方式后即可恢复" in several["zh-CN"]
    assert "any one of the ways above" in several["en"]


def test_a_closed_line_is_headed_as_closed() -> None:
    for code in sorted(H.LINE_CLOSING_CODES):
        text = texts(explain_code(code))
        assert "额度关闭的原因（共 1 项）" in text["zh-CN"] and "暂停" not in text["zh-CN"]
        assert "Why your credit line is closed (1)" in text["en"]
        assert "on hold" not in text["en"]
    frozen = texts(explain_code(H.PASSWORD_LOCKED))
    assert "额度暂停的原因（共 1 项）" in frozen["zh-CN"]


@pytest.mark.parametrize("code", H.HOLD_CODES)
def test_customers_never_see_the_raw_appeal_path(code: str) -> None:
    explanation = explain_code(code)
    assert explanation["self_checks"]["support"]["appeal_path"] == "/me/appeals"  # the data
    for lang in R.SUPPORTED_LANGS:
        entry = R.load_catalog(lang)["label.appeals_entry"]
        for page, shown in ((R.render_text(explanation, lang), entry),
                            (R.render_html(explanation, lang), html.escape(entry))):
            assert "/me/appeals" not in page, (code, lang)
            assert shown in page


def test_an_https_appeal_page_becomes_a_link_in_the_html() -> None:
    policy = policy_with("linked", support={"appeal_path": "https://issuer.example/appeals"})
    explanation = explain_code(H.SCORE_BELOW_THRESHOLD, policy)
    page = R.render_html(explanation, "en")
    assert '<a href="https://issuer.example/appeals">Me &gt; Appeals in the app</a>' in page
    assert "https://issuer.example/appeals" not in R.render_text(explanation, "en")


def test_the_customer_page_shows_no_raw_appeal_path_and_no_usable_credit(tmp_path) -> None:
    """The customer page (no browser needed): a frozen line, the appeals entry by name."""
    from jiefeng.api.app import create_app
    from test_api_support import Clock, TestClient, opened, wrong_passwords

    now = dt.datetime(2026, 2, 12, 10, 0, tzinfo=CST)
    clock = Clock(now)
    app = create_app(str(tmp_path / "page.db"), now=clock)
    services = app.state.services
    key = services.keys.create(["ingest"], "ingest-1", "test", clock()).key
    with TestClient(app) as client:
        sent = client.post("/v1/events", headers={"Authorization": f"Bearer {key}"},
                           json={"events": [opened("P1"), *wrong_passwords(
                               "P1", now - dt.timedelta(hours=2))]})
        assert sent.status_code == 200, sent.text
        token = services.tokens.issue("P1", clock(), 24)
        page = client.get(f"/me/sign-in?token={token}&lang=en")
        assert page.status_code == 200, page.text
        assert "Payment password locked" in page.text
        assert "/me/appeals" not in page.text
        assert "Me &gt; Appeals in the app" in page.text
        assert "usable while the line is frozen" in page.text
    services.store.close()


def test_a_snapshot_of_the_previous_format_is_refolded_from_the_log(tmp_path) -> None:
    """Declined purchases used to be remembered as (at, event_id): a snapshot of that shape
    is not read (SNAPSHOT_FORMAT 5); the account is folded again from its log."""
    from sqlalchemy import update

    from jiefeng.service.engine import Engine
    from jiefeng.store import schema as t
    from jiefeng.store.sql import SqlStore, encode_state

    path = str(tmp_path / "old.db")
    now = T0 + 3 * DAY
    engine = Engine(SqlStore(path), now=lambda: now)
    e = Events()
    events = [e.opened()]
    events += [e.account("password_attempt", T0 + DAY + i * HOUR / 10, ok=False)
               for i in range(5)]
    events.append(e.account("purchase", T0 + DAY + HOUR, amount="66.00", merchant_id="M-OLD"))
    wire = [{"event_id": ev.event_id, **json.loads(ev.model_dump_json())} for ev in events]
    assert engine.ingest_events(wire).accepted == len(events)
    state, _, _ = engine.state_at(ACCOUNT, now)
    old = state.clone()
    old.declined_purchases = type(old.declined_purchases)(
        (d.at, d.event_id) for d in old.declined_purchases)  # the format-4 shape
    with engine.store.transaction() as connection:
        connection.execute(update(t.accounts).where(t.accounts.c.account_id == ACCOUNT)
                           .values(snapshot=encode_state(old), snapshot_format=4))
    engine.store.close()
    fresh = Engine(SqlStore(path), now=lambda: now)
    purchases = fresh.explain(ACCOUNT, now)["self_checks"]["recent_purchases"]
    assert [(p["merchant_id"], p["decline_codes"]) for p in purchases] == [
        ("M-OLD", ["password_locked"])]
    fresh.store.close()
