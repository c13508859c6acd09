"""The unfreeze plan (jiefeng.domain.plan): checked by folding the events it suggests and
finding the account active at its earliest date and frozen just before."""

from __future__ import annotations

import datetime as dt

from builders import DAY, MINUTE, T0, World, local, policy_with
from jiefeng.domain import core
from jiefeng.domain import holds as H
from jiefeng.domain.plan import unfreeze_plan
from jiefeng.policy.schema import default_policy

SECOND = dt.timedelta(seconds=1)


def _plan(account, at):
    state = account.peek(at)
    return unfreeze_plan(state, at, account.policy, account.scopes)


def _follow(account, at, plan):
    """Fold the plan's events at `at`, then pay each new statement's minimum as it comes, as
    the plan says; return the account's status at `when` for any `when` asked."""
    for event in plan.events:
        account.apply(event)

    def status(when):
        # Step a day at a time, paying what a statement asks as soon as it is issued.
        clock = account.state.clock
        while clock < when:
            clock = min(when, clock + DAY)
            account.advance(clock)
            if plan.pays_each_minimum:
                for statement in list(account.state.ledger.statements):
                    unpaid = account.state.ledger.unpaid_minimum_fen(statement)
                    if not statement.judged and unpaid > 0:
                        account.repay(clock, f"{unpaid // 100}.{unpaid % 100:02d}")
        return core.status_at(account.state, when, account.scopes)

    return status


def test_no_plan_for_an_active_account(world: World) -> None:
    account = world.account()
    assert _plan(account, T0 + DAY) is None


def test_overdue_and_password_locked_repay_and_reset_then_wait_out_the_probation() -> None:
    world = World(policy_with(default_policy(), billing={"minimum_payment_pct": 10}))
    account = world.account()
    account.purchase(T0 + DAY, "1000.00")
    at = local(2026, 2, 12, 10)  # the Feb 1 statement's minimum fell due on Feb 9
    account.wrong_password(at - 60 * MINUTE, times=5)
    assert account.holds(at) == {H.OVERDUE, H.PASSWORD_LOCKED}
    plan = _plan(account, at)
    assert [a["action"] for a in plan.actions] == ["repay", "reset_password"]
    assert plan.actions[0]["amount"] == "100.00"  # the past-due minimum, not everything
    assert plan.awaiting == [] and plan.pays_each_minimum
    earliest = plan.earliest_active_at
    assert earliest is not None
    probation = account.policy.cure_probation.days
    assert at + (probation - 1) * DAY < earliest <= at + (probation + 1) * DAY
    status = _follow(account, at, plan)
    assert status(earliest - SECOND) == "frozen"
    assert status(earliest) == "active"


def test_a_lock_alone_lifts_now_with_a_reset(world: World) -> None:
    account = world.account()
    at = T0 + DAY
    account.wrong_password(at - 10 * MINUTE, times=5)
    plan = _plan(account, at)
    assert [a["action"] for a in plan.actions] == ["reset_password"]
    assert plan.earliest_active_at == at
    assert _follow(account, at, plan)(at) == "active"


def test_cash_out_says_only_what_the_customer_can_do_and_waits_the_quiet_days(
        world: World) -> None:
    account = world.account()
    account.purchase(T0 + 20 * MINUTE, "500.00", kind="transfer")
    at = T0 + DAY
    hold = account.hold(H.CASH_OUT_SUSPECTED, at)
    plan = _plan(account, at)
    assert plan.actions == [{"action": "use_for_real_purchases", "code": H.CASH_OUT_SUSPECTED}]
    assert plan.events == [] and plan.waits == [H.CASH_OUT_SUSPECTED]
    assert plan.earliest_active_at == hold.releases_at
    status = _follow(account, at, plan)
    assert status(hold.releases_at - SECOND) == "frozen"
    assert status(hold.releases_at) == "active"


def test_what_no_action_lifts_is_awaited_and_no_date_is_promised(world: World) -> None:
    account = world.account()
    account.score(T0 + DAY, 500)
    at = T0 + 2 * DAY
    plan = _plan(account, at)
    assert plan.earliest_active_at is None
    assert plan.awaiting == [{"awaiting": "score_update", "code": H.SCORE_BELOW_THRESHOLD}]
    assert plan.to_dict()["earliest_active_at"] is None


def test_an_expired_id_and_a_security_hold_lift_with_their_events(world: World) -> None:
    account = world.account(id_expires_on="2026-01-20")
    at = local(2026, 1, 25, 9)
    for field in ("phone", "bank_card", "phone", "bank_card"):
        account.send("profile_change", at - 30 * MINUTE, field=field)
    held = account.holds(at)
    assert H.ID_EXPIRED in held
    plan = _plan(account, at)
    actions = {a["action"] for a in plan.actions}
    assert "update_id_document" in actions
    assert ("verify_identity" in actions) == (H.ACCOUNT_SECURITY in held)
    assert plan.earliest_active_at == at
    assert _follow(account, at, plan)(at) == "active"


def test_the_plan_is_in_the_explanation_and_rendered_in_both_languages() -> None:
    from jiefeng.explain.render import render_html, render_text
    from jiefeng.explain.structured import build_explanation

    world = World(policy_with(default_policy(), billing={"minimum_payment_pct": 10}))
    account = world.account()
    account.purchase(T0 + DAY, "1000.00")
    at = local(2026, 2, 12, 10)
    explanation = build_explanation(account.peek(at), at, account.policy, account.scopes)
    plan = explanation["plan"]
    assert plan["actions"] == [{"action": "repay", "code": H.OVERDUE, "amount": "100.00"}]
    assert plan["earliest_active_at"].endswith("+08:00")  # in the policy's zone
    en = render_text(explanation, "en")
    assert "Your unfreeze plan" in en and "Repay ¥100.00 now" in en
    assert "on or before its due date" in en
    zh = render_text(explanation, "zh-CN")
    assert "解冻计划" in zh and "现在还款 ¥100.00" in zh
    assert 'id="plan"' in render_html(explanation, "en")
    active = world.account("A2")
    calm = build_explanation(active.peek(at), at, active.policy, active.scopes)
    assert calm["plan"] is None and "unfreeze plan" not in render_text(calm, "en")


def test_authorize_and_the_explanation_name_a_primary_code_first() -> None:
    from jiefeng.explain.structured import build_explanation

    world = World(policy_with(default_policy(), billing={"minimum_payment_pct": 10}))
    account = world.account()
    account.purchase(T0 + DAY, "1000.00")
    at = local(2026, 2, 12, 10)
    account.wrong_password(at - 60 * MINUTE, times=5)
    decision = account.authorize(at, 100, password_ok=False).to_dict()
    assert decision["codes"][0] == decision["primary_code"] == H.OVERDUE
    explanation = build_explanation(account.peek(at), at, account.policy, account.scopes)
    assert explanation["primary_code"] == H.OVERDUE  # overdue before password_locked
    assert {h["code"] for h in explanation["holds"]} == {H.OVERDUE, H.PASSWORD_LOCKED}
    calm = world.account("A2")
    assert calm.authorize(at).to_dict()["primary_code"] is None
