"""Causes as declarations (issue 12 §1): the core derives its tables from `domain/causes/`; a
new cause is one module, shown here by a toy cause registered for one test; each cause reads
only the policy sections it declares; no hold code is special-cased in the core."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path
from types import MappingProxyType

import pytest

from builders import DAY, HOUR, T0, TZ, World
from jiefeng.domain import causes
from jiefeng.domain import effects as E
from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes import account_security, cash_out, overdue, password
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.decisions import check_event
from jiefeng.domain.decline_order import in_precedence
from jiefeng.domain.effects import NOTICE, Effect
from jiefeng.domain.holdbook import place
from jiefeng.domain.rejections import DomainRejected
from jiefeng.explain.structured import build_explanation

CAUSES_DIR = Path(causes.__file__).parent
TOY = "toy_binge"


# --- a toy cause: three life-service activities within a day freeze the line for two days ----


def _toy_on_activity(state, event, policy, scopes, effects):
    if event.category is not ev.ActivityCategory.LIFE_SERVICE or TOY in state.holds:
        return
    recent = [t for t, category in state.activities
              if category == "life_service" and t > event.at - DAY]
    if len(recent) >= 3:
        place(state, effects, TOY, event.at, event.event_id, {"activities": len(recent)},
              releases_at=event.at + 2 * DAY)


def _toy_deadline(state, policy, scopes):
    hold = state.holds.get(TOY)
    if hold is None or hold.evidence.get("reminded"):
        return None
    t = hold.since + DAY
    return t if t > state.clock else None


def _toy_on_time(state, at, policy, scopes, effects):
    hold = state.holds.get(TOY)
    if hold is not None and not hold.evidence.get("reminded") and at >= hold.since + DAY:
        effects.append(Effect(NOTICE, at, state.account_id, TOY, "clock:toy",
                              {"notice": "toy_reminder"}))
        place(state, effects, TOY, at, "clock:toy", {**hold.evidence, "reminded": True},
              releases_at=hold.releases_at)


EXPIRED: list[str] = []


def _toy_admit(state, event, policy, scopes):
    if TOY in state.holds and event.category is ev.ActivityCategory.LIFE_SERVICE:
        raise DomainRejected("category", "no life services while resting")


def _toy_tidy(state, at):
    EXPIRED.append(state.account_id)


TOY_CAUSE = Cause(
    name="toy",
    holds=(HoldKind(
        TOY, 50, (H.RELEASE_TIME,),
        Explanation(
            evidence=lambda hold, ctx: [{"fact": "toy_activities",
                                         "value": hold.evidence["activities"]}],
            release=lambda hold, ctx: [{"path": H.RELEASE_TIME, "condition": "toy_over"}],
            steps=lambda hold, ctx: [{"step": "toy_rest"}],
        ),
        on_expiry=_toy_tidy,
        plan=lambda state, hold, at, policy: PlanStep({"action": "toy_rest", "code": TOY}),
    ),),
    policy_sections=(),
    listens=MappingProxyType({ev.Activity: _toy_on_activity}),
    deadline=_toy_deadline,
    on_time=_toy_on_time,
    admits=MappingProxyType({ev.Activity: _toy_admit}),
)


def _binge(account, start):
    for i in range(3):
        account.send("activity", start + i * HOUR, category="life_service")


def test_a_new_cause_is_one_declaration_and_the_core_uses_it_everywhere():
    EXPIRED.clear()
    start = T0 + 3 * DAY
    with causes.registered(TOY_CAUSE):
        assert TOY in H.HOLD_CODES and H.HOLD_CODES[0] == TOY  # precedence 50: first
        account = World().account()
        _binge(account, start)
        placed_at = start + 2 * HOUR
        assert account.holds() == {TOY}
        assert account.status() == "frozen"
        # The purchase decision and the precedence both know it.
        decision = account.authorize(placed_at + HOUR)
        assert not decision.approved and decision.codes[0] == TOY
        assert in_precedence(["overdue", TOY]) == [TOY, "overdue"]
        # Its explanation spec and plan are the ones it declared.
        state = account.peek(placed_at + HOUR)
        explanation = build_explanation(state, placed_at + HOUR, account.policy, account.scopes)
        item = explanation["holds"][0]
        assert explanation["primary_code"] == TOY
        assert item["evidence"] == [{"fact": "toy_activities", "value": 3}]
        assert item["steps"][0] == {"step": "toy_rest"}
        assert item["release_paths"] == [H.RELEASE_TIME]
        assert {"action": "toy_rest", "code": TOY} in explanation["plan"]["actions"]
        assert explanation["plan"]["earliest_active_at"] is not None
        # Its admission check refuses what it declares, before anything is logged.
        more = account.world.event("activity", placed_at + HOUR, account_id=account.account_id,
                                   category="life_service")
        with pytest.raises(DomainRejected, match="category: no life services"):
            check_event(account.peek(placed_at + HOUR), more, account.policy, account.scopes)
        # Its deadline and time step run: the reminder a day after, then expiry on time.
        EXPIRED.clear()
        effects = account.advance(placed_at + 3 * DAY)
        assert EXPIRED == [account.account_id]  # its on_expiry ran, once
        kinds = [(e.kind, e.code) for e in effects]
        assert (E.NOTICE, TOY) in kinds
        assert kinds.index((E.NOTICE, TOY)) < kinds.index((E.HOLD_RELEASED, TOY))
        released = [e for e in effects if e.kind == E.HOLD_RELEASED and e.code == TOY]
        assert released[0].at == placed_at + 2 * DAY
        assert released[0].data["path"] == "expired"
        assert account.status() == "active"
    # Unregistered, the same events place nothing, and the built-in tables are back.
    assert TOY not in H.HOLD_CODES
    again = World().account()
    _binge(again, start)
    assert again.holds() == set()


def test_a_declaration_that_contradicts_another_is_refused():
    clash = Cause("clash", (HoldKind(H.OVERDUE, 1, (H.RELEASE_EVENT,),
                                     overdue.CAUSE.holds[0].explanation),), ())
    with pytest.raises(ValueError, match="declared by two causes"):
        causes.derive(causes.CAUSES + (clash,))
    stuck = Cause("stuck", (HoldKind("stuck", 1, (), overdue.CAUSE.holds[0].explanation),), ())
    with pytest.raises(ValueError, match="no release path"):
        causes.derive(causes.CAUSES + (stuck,))
    with pytest.raises(ValueError, match="one name"):
        causes.derive(causes.CAUSES + (causes.CAUSES[0],))


# --- the derived tables ----------------------------------------------------------------------


def test_every_hold_code_is_declared_once_with_a_release_path_and_an_explanation():
    tables = causes.tables()
    declared = [kind.code for cause in causes.CAUSES for kind in cause.holds]
    assert sorted(declared) == sorted(set(declared)) == sorted(H.HOLD_CODES)
    for code, kind in tables.kinds.items():
        assert kind.release_paths, code
        assert callable(kind.explanation.evidence) and callable(kind.explanation.steps)
    # Scoped holds come from the scopes, so their causes declare how to derive them.
    for cause in causes.CAUSES:
        if any(kind.scoped for kind in cause.holds):
            assert cause.scoped_holds is not None and cause.scope_blocks is not None


def test_the_documented_fan_out_order():
    """A purchase's cash-out signals, then its password check, then the decision; a repayment's
    brushing check before the overdue cure; the cure restart before the bureau hold."""
    listeners = causes.tables().listeners
    assert listeners[ev.Purchase] == (cash_out.on_purchase, password.on_purchase)
    assert listeners[ev.Repayment] == (cash_out.on_repayment, overdue.after_payment)
    assert listeners[ev.Refund] == (cash_out.on_refund, overdue.after_payment)
    assert listeners[ev.BureauRecord][0] is overdue.on_bureau_record
    assert listeners[ev.IdentityVerified] == (account_security.on_identity_verified,)


def test_the_precedence_is_the_documented_one():
    from jiefeng.domain.decline_order import decline_precedence

    doc = (Path(__file__).parents[1] / "docs" / "reason-codes.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Decline codes in descending precedence"):]
    documented = re.findall(r"\d+\. `(\w+)`", section)
    assert tuple(documented) == decline_precedence()
    assert H.HOLD_CODES == decline_precedence()[:len(H.HOLD_CODES)]


# --- each cause reads its own policy sections, and the core names no cause ---------------------


SHARED_POLICY_FIELDS = {"timezone", "version", "zone"}


@pytest.mark.parametrize("cause", causes.CAUSES, ids=lambda c: c.name)
def test_a_cause_reads_only_the_policy_sections_it_declares(cause):
    module = next(p for p in CAUSES_DIR.glob("*.py")
                  if f'name="{cause.name}"' in p.read_text(encoding="utf-8"))
    read = set(re.findall(r"(?<![\w.])policy\.(\w+)", module.read_text(encoding="utf-8")))
    assert read - SHARED_POLICY_FIELDS <= set(cause.policy_sections), (
        f"{module.name} reads {sorted(read - SHARED_POLICY_FIELDS - set(cause.policy_sections))}"
        " without declaring them")


CORE_MODULES = ("core.py", "rules.py", "account.py", "plan.py", "billing.py", "holdbook.py",
                "decisions.py", "features.py", "invariants.py")


@pytest.mark.parametrize("name", CORE_MODULES)
def test_the_core_switches_on_no_hold_code(name):
    source = (CAUSES_DIR.parent / name).read_text(encoding="utf-8")
    tree = ast.parse(source)
    codes = {code.upper() for code in H.HOLD_CODES}
    named = {node.attr for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr in codes}
    quoted = {node.value for node in ast.walk(tree)
              if isinstance(node, ast.Constant) and node.value in H.HOLD_CODES}
    assert not named and not quoted, f"{name} names {sorted(named | quoted)}"


def test_every_cause_module_is_registered():
    modules = {p.stem for p in CAUSES_DIR.glob("*.py")} - {"__init__", "base", "explaining"}
    registered = set()
    for cause in causes.CAUSES:
        for module in modules:
            text = (CAUSES_DIR / f"{module}.py").read_text(encoding="utf-8")
            if f'name="{cause.name}"' in text:
                registered.add(module)
    assert registered == modules


def test_moving_time_alone_reaches_each_cause_deadline():
    """The next deadline is the minimum over the ledger, the holds and every cause: an account
    whose ID expires before anything else is woken at the end of its expiry day."""
    world = World()
    account = world.account(id_expires_on="2026-01-20")
    assert causes.tables().deadlines  # the causes with time-driven rules declare one
    effects = account.advance(T0 + 40 * DAY)
    placed = [e for e in effects if e.kind == E.HOLD_PLACED and e.code == H.ID_EXPIRED]
    assert placed and placed[0].at == dt.datetime(2026, 1, 21, tzinfo=TZ)


def test_a_module_over_about_400_lines_says_why_in_its_docstring():
    src = Path(causes.__file__).parents[2]
    long_ones = []
    for path in sorted(src.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 400:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if "Why one long module" not in docstring:
                long_ones.append(str(path.relative_to(src)))
    assert not long_ones, f"over 400 lines without a reason in the docstring: {long_ones}"
