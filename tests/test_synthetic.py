"""The synthetic portfolio: valid, deterministic, every scenario both placed and lifted, and
every repayment behaviour the credit ledger knows (judged by folding it through the core)."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jiefeng.batch.synthetic import (
    BEHAVIOURS,
    HIGH_RISK_MERCHANTS,
    HOLD_CODES,
    PAYERS,
    PortfolioSpec,
    behaviour_of,
    generate_portfolio,
    scenario_details,
    scenario_of,
)
from jiefeng.domain.clock import local_midnight
from jiefeng.domain.effects import (
    BUREAU_REPORTED,
    HOLD_PLACED,
    HOLD_RELEASED,
    INSTALLMENT_PLAN_CREATED,
    NOTICE,
    STATEMENT_ISSUED,
)
from jiefeng.domain.events import OPERATOR_TYPES, parse_event
from jiefeng.policy.schema import default_policy

TZ = ZoneInfo("Asia/Shanghai")
SPEC = PortfolioSpec(accounts=300, months=18, seed=7)
HORIZON = datetime(2026, 7, 1, tzinfo=TZ)  # 18 months after SPEC.start
MONEY = re.compile(r"^\d+\.\d{2}$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
SCOPED = ("maintenance", "migration")


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return generate_portfolio(SPEC)


@pytest.fixture(scope="module")
def scenarios() -> dict[str, list[str]]:
    return scenario_of(SPEC)


@pytest.fixture(scope="module")
def by_account(events) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        if "account_id" in event:
            grouped[event["account_id"]].append(event)
    return grouped


@pytest.fixture(scope="module")
def behaviours() -> dict[str, list[str]]:
    return behaviour_of(SPEC)


@pytest.fixture(scope="module")
def folded(events) -> dict[str, tuple]:
    """Account id -> (state at the horizon, effects): every account folded through the core."""
    from jiefeng.domain.core import fold
    from jiefeng.domain.scopes import SCOPE_TYPES, Scopes, apply_scope_command

    scopes = Scopes()
    owner: dict[str, str] = {}
    grouped: dict[str, list] = defaultdict(list)
    for raw in events:
        event = parse_event(raw)
        if event.type in SCOPE_TYPES:
            scopes = apply_scope_command(scopes, event)
        elif event.type == "appeal_decided":
            aid = owner[event.appeal_id]
            grouped[aid].append(event.model_copy(update={"account_id": aid}))
        else:
            if event.type == "appeal_submitted":
                owner[event.appeal_id] = event.account_id
            grouped[event.account_id].append(event)
    policy = default_policy()
    return {aid: fold(aid, account_events, policy, scopes, until=HORIZON)
            for aid, account_events in grouped.items()}


@pytest.fixture(scope="module")
def normal_accounts(by_account, scenarios) -> list[str]:
    special = {aid for code, ids in scenarios.items() if code not in SCOPED for aid in ids}
    return sorted(set(by_account) - special)


def at(event: dict) -> datetime:
    return datetime.fromisoformat(event["at"])


def fen(text: str) -> int:
    whole, part = text.split(".")
    return int(whole) * 100 + int(part)


def of_type(events: list[dict], *types: str) -> list[dict]:
    return [e for e in events if e["type"] in types]


# --- the contract --------------------------------------------------------------------------------


def test_every_event_passes_the_contract(events):
    for event in events:
        parse_event(event)  # raises EventRejected naming the field


def test_wire_form(events):
    for event in events:
        assert STAMP.match(event["at"]), event
        for key in ("amount", "credit_limit", "deposits", "wealth_balance"):
            if key in event:
                assert isinstance(event[key], str) and MONEY.match(event[key]), event
        if event["type"] in OPERATOR_TYPES:
            assert event["event_id"].startswith("OP-") and "actor" in event, event
            assert "account_id" not in event, event
        else:
            assert re.match(r"^A\d{6}-\d{5}$", event["event_id"]), event


def test_event_ids_are_unique(events):
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))


def test_sorted_by_time(events):
    times = [at(e) for e in events]
    assert times == sorted(times)
    assert times[0] >= SPEC.start and times[-1] < HORIZON


def test_references_point_back_in_time(events):
    seen: dict[str, dict] = {}
    for event in events:
        if event["type"] == "refund":
            bought = seen[event["purchase_event_id"]]
            assert bought["account_id"] == event["account_id"]
            assert fen(event["amount"]) <= fen(bought["amount"])
        if event["type"] == "appeal_submitted":
            assert all(seen[i]["account_id"] == event["account_id"]
                       for i in event["purchase_event_ids"])
        if event["type"] == "installment_plan_created":
            bought = seen[event["purchase_event_id"]]
            assert bought["type"] == "purchase" and bought["account_id"] == event["account_id"]
        seen[event["event_id"]] = event


def test_same_seed_same_events_and_another_seed_differs():
    small = PortfolioSpec(accounts=120, seed=3)
    first = generate_portfolio(small)
    assert generate_portfolio(small) == first
    assert generate_portfolio(PortfolioSpec(accounts=120, seed=4)) != first
    assert scenario_of(small) == scenario_of(PortfolioSpec(accounts=120, seed=3))
    assert behaviour_of(small) == behaviour_of(PortfolioSpec(accounts=120, seed=3))


def test_spec_is_checked():
    with pytest.raises(ValueError, match="months"):
        scenario_of(PortfolioSpec(accounts=300, months=6))
    with pytest.raises(ValueError, match="timezone"):
        generate_portfolio(PortfolioSpec(accounts=300, start=datetime(2025, 1, 1)))


# --- scenarios ------------------------------------------------------------------------------------


def test_every_hold_code_has_scenario_accounts(scenarios, by_account):
    assert set(scenarios) == set(HOLD_CODES)
    for code, ids in scenarios.items():
        assert ids, code
        assert set(ids) <= set(by_account), code
    share = {code: len(ids) / SPEC.accounts for code, ids in scenarios.items()
             if code not in (*SCOPED, "cure_probation")}
    assert all(0.02 <= s <= 0.07 for s in share.values()), share
    details = scenario_details(SPEC)
    assert any(len(causes) == 2 for causes in details.values())  # some accounts get two


def test_normal_accounts_behave(by_account, normal_accounts):
    assert len(normal_accounts) > SPEC.accounts // 2
    for aid in normal_accounts:
        events = by_account[aid]
        assert all(e["score"] >= 650 for e in of_type(events, "score_update")), aid
        for e in of_type(events, "purchase"):
            assert e.get("kind", "purchase") == "purchase", e
            assert fen(e["amount"]) % 100_000 != 0, e
            assert e["merchant_id"] not in HIGH_RISK_MERCHANTS, e
        fields = [e["field"] for e in of_type(events, "profile_change")]
        assert "phone" not in fields and fields.count("bank_card") <= 1, aid
        assert not [e for e in of_type(events, "bureau_record") if e["status"] == "overdue"], aid
        logins = of_type(events, "login")
        firsts: dict[str, datetime] = {}
        for e in logins:
            firsts.setdefault(e["device_id"], at(e))
        new = sorted(firsts.values())
        assert all(b - a > timedelta(days=7) for a, b in zip(new, new[1:], strict=False)), aid
        failures = 0
        for e in of_type(events, "password_attempt"):
            failures = 0 if e["ok"] else failures + 1
            assert failures < 3, aid
        refunds = of_type(events, "refund")
        bought = {e["event_id"]: at(e) for e in of_type(events, "purchase")}
        for e in refunds:
            assert at(e) - bought[e["purchase_event_id"]] > timedelta(hours=48), e


def _overdue_episodes(effects) -> list[tuple[datetime, datetime]]:
    placed = [e.at for e in effects if e.kind == HOLD_PLACED and e.code == "overdue"]
    released = [e.at for e in effects if e.kind == HOLD_RELEASED and e.code == "overdue"]
    assert len(placed) == len(released)
    return list(zip(placed, released, strict=True))


def test_overdue_is_repaid_then_cure_probation_ends_in_time(folded, scenarios):
    details = scenario_details(SPEC)
    for aid in scenarios["overdue"]:
        _, effects = folded[aid]
        variant = next(v for code, v, _ in details[aid] if code == "overdue")
        episodes = _overdue_episodes(effects)
        assert 1 <= len(episodes) <= (2 if variant == "below_minimum_twice" else 1), aid
        probations = [e.at for e in effects
                      if e.kind == HOLD_RELEASED and e.code == "cure_probation"]
        assert len(probations) == len(episodes), aid
        probation = timedelta(days=default_policy().cure_probation.days)
        for k, ((_, cured), lifted) in enumerate(zip(episodes, probations, strict=True)):
            # A second overdue within the repeat window doubles the probation.
            assert cured + probation * (k + 1) <= lifted < HORIZON - timedelta(days=30), aid
        # The bureau is warned of and told about every overdue statement.
        warned = {e.data["statement_date"] for e in effects
                  if e.kind == NOTICE and e.data.get("notice") == "bureau_prenotice"}
        reported = {e.data["statement_date"] for e in effects if e.kind == BUREAU_REPORTED}
        assert len(warned) == len(episodes) and reported == warned, aid


def test_external_overdue_is_settled(by_account, scenarios):
    for aid in scenarios["external_overdue"]:
        records = of_type(by_account[aid], "bureau_record")
        trigger = next(e for e in records if e["status"] == "overdue" and e["days_past_due"] >= 30)
        settled = [e for e in records if e["status"] == "settled"
                   and e["product"] == trigger["product"] and at(e) > at(trigger)]
        assert settled, aid
        assert at(settled[0]) + timedelta(days=90) < HORIZON - timedelta(days=30), aid


def test_cure_probation_accounts_come_from_overdue_or_bureau(scenarios):
    assert set(scenarios["cure_probation"]) == set(scenarios["overdue"]) | set(
        scenarios["external_overdue"])


def _cash_out_signals(events: list[dict]) -> list[datetime]:
    signals = []
    purchases = of_type(events, "purchase")
    by_id = {e["event_id"]: e for e in purchases}
    for e in purchases:
        if e.get("kind", "purchase") != "purchase" or e["merchant_id"] in HIGH_RISK_MERCHANTS:
            signals.append(at(e))
    rounds = [e for e in purchases if fen(e["amount"]) % 100_000 == 0]
    for e in rounds:
        same = [p for p in rounds if p["merchant_id"] == e["merchant_id"]
                and timedelta(0) <= at(e) - at(p) <= timedelta(hours=24)]
        if len(same) >= 3:
            signals.append(at(e))
    quick = [at(e) for e in of_type(events, "refund")
             if at(e) - at(by_id[e["purchase_event_id"]]) <= timedelta(hours=48)]
    signals += [t for t in quick if sum(1 for q in quick if t - timedelta(days=7) <= q <= t) >= 3]
    cycles = []
    for e in of_type(events, "repayment"):
        if any(timedelta(0) <= at(e) - at(p) <= timedelta(minutes=60)
               and fen(p["amount"]) <= fen(e["amount"]) for p in purchases):
            cycles.append(at(e))
    signals += [t for t in cycles if sum(1 for c in cycles if t - timedelta(days=7) <= c <= t) >= 5]
    return sorted(signals)


def test_cash_out_signals_then_appeal_or_sixty_quiet_days(by_account, scenarios, events):
    decided = {e["appeal_id"]: e for e in events if e["type"] == "appeal_decided"}
    lifts = set()
    for aid in scenarios["cash_out_suspected"]:
        account = by_account[aid]
        signals = _cash_out_signals(account)
        assert signals, aid
        assert signals[-1] - signals[0] <= timedelta(days=7), aid
        appeals = of_type(account, "appeal_submitted")
        if appeals:
            decision = decided[appeals[0]["appeal_id"]]
            assert appeals[0]["hold_code"] == "cash_out_suspected"
            assert signals[-1] < at(appeals[0]) < at(decision), aid
            assert decision["decision"] == "approve"
            lifts.add("appeal")
        else:
            assert signals[-1] + timedelta(days=60) < HORIZON - timedelta(days=30), aid
            lifts.add("quiet")
    assert lifts == {"appeal", "quiet"}
    for aid in set(by_account) - set(scenarios["cash_out_suspected"]):
        assert not _cash_out_signals(by_account[aid]), aid


def test_score_dips_then_recovers(by_account, scenarios):
    for aid in scenarios["score_below_threshold"]:
        scores = of_type(by_account[aid], "score_update")
        low = next(k for k, e in enumerate(scores) if e["score"] < 600)
        assert any(e["score"] >= 600 for e in scores[low + 1:]), aid


def test_dormant_then_reactivated(by_account, scenarios):
    for aid in scenarios["dormant"]:
        events = by_account[aid]
        dormant_at = at(of_type(events, "account_opened")[0]) + timedelta(days=365)
        purchases = of_type(events, "purchase")
        assert not purchases or at(purchases[0]) > dormant_at + timedelta(days=14), aid
        activity = [at(e) for e in of_type(events, "activity") if at(e) > dormant_at]
        assert any(sum(1 for a in activity if t - timedelta(days=30) <= a <= t) >= 5
                   for t in activity), aid
        assert not [e for e in of_type(events, "activity") if at(e) <= dormant_at], aid


def test_account_security_signals_then_lift(by_account, scenarios):
    variants = set()
    for aid in scenarios["account_security"]:
        events = by_account[aid]
        firsts: dict[str, datetime] = {}
        for e in of_type(events, "login"):
            firsts.setdefault(e["device_id"], at(e))
        new = sorted(firsts.values())
        cards = [at(e) for e in events if e.get("field") == "bank_card"]
        phones = [at(e) for e in events if e.get("field") == "phone"]
        triggers = []
        triggers += [b for a, b in zip(cards, cards[1:], strict=False)
                     if b - a <= timedelta(days=30)]
        triggers += [max(p, d) for p in phones for d in new if abs(p - d) <= timedelta(hours=72)]
        triggers += [c for a, c in zip(new, new[2:], strict=False) if c - a <= timedelta(days=7)]
        assert triggers, aid
        trigger = min(triggers)
        verified = [at(e) for e in of_type(events, "identity_verified") if at(e) > trigger]
        if verified:
            variants.add("verified")
        else:
            sensitive = [t for t in [*cards, *phones, *new] if t > trigger]
            assert not sensitive, aid
            assert trigger + timedelta(days=30) < HORIZON - timedelta(days=30), aid
            variants.add("quiet")
    assert variants == {"verified", "quiet"}


def test_id_expires_then_is_renewed(by_account, scenarios):
    for aid in scenarios["id_expired"]:
        events = by_account[aid]
        expires = date.fromisoformat(of_type(events, "account_opened")[0]["id_expires_on"])
        assert expires < HORIZON.date() - timedelta(days=60), aid
        updates = [e for e in of_type(events, "id_document_updated")
                   if at(e).date() > expires and date.fromisoformat(e["expires_on"]) > at(e).date()]
        assert updates, aid


def test_password_lock_then_timeout_or_verified_reset(by_account, scenarios):
    lifts = set()
    for aid in scenarios["password_locked"]:
        events = of_type(by_account[aid], "password_attempt", "password_reset")
        failures, locked_at = 0, None
        for e in events:
            if e["type"] == "password_attempt" and locked_at is None:
                failures = 0 if e["ok"] else failures + 1
                if failures == 5:
                    locked_at = at(e)
            elif locked_at is not None:
                if e["type"] == "password_reset" and e["identity_verified"]:
                    lifts.add("reset")
                    break
                if e["type"] == "password_attempt" and at(e) >= locked_at + timedelta(hours=24):
                    lifts.add("timeout")
                    break
        else:
            pytest.fail(f"{aid}: locked but never unlocked")
        assert locked_at is not None, aid
    assert lifts == {"reset", "timeout"}


def test_policy_sweep_matches_scenario_accounts_and_they_reopen(events, by_account, scenarios):
    sweeps = [e for e in events if e["type"] == "policy_sweep"]
    assert len(sweeps) == 1
    sweep = sweeps[0]
    assert sweep["criteria"] == "score < 620 AND utilization > 0.5"
    swept_at = at(sweep)
    for aid in scenarios["policy_tightening"]:
        account = by_account[aid]
        before = [e["score"] for e in of_type(account, "score_update") if at(e) < swept_at]
        assert 600 <= before[-1] < 620, aid
        limit = fen(of_type(account, "account_opened")[0]["credit_limit"])
        month_start = swept_at.replace(day=1, hour=0, minute=0, second=0)
        spent = sum(fen(e["amount"]) for e in of_type(account, "purchase")
                    if month_start <= at(e) < swept_at)
        assert spent > limit // 2, aid
        reopen = [e for e in account if at(e) > swept_at + timedelta(days=90) and (
            (e["type"] == "score_update" and e["score"] >= 650)
            or (e["type"] == "asset_update"
                and fen(e["deposits"]) + fen(e["wealth_balance"]) >= 1_000_000))]
        assert reopen and at(reopen[0]) < HORIZON - timedelta(days=30), aid
    others = set(by_account) - set(scenarios["policy_tightening"])
    for aid in others:
        before = [e["score"] for e in of_type(by_account[aid], "score_update")
                  if at(e) < swept_at]
        assert before and before[-1] >= 620, aid


def test_operator_calendar(events, scenarios):
    scheduled = {e["window_id"]: e for e in events if e["type"] == "maintenance_scheduled"}
    cancelled = {e["window_id"]: e for e in events if e["type"] == "maintenance_cancelled"}
    live = [w for i, w in scheduled.items() if i not in cancelled]
    assert len(live) == 2 and {("segment" in w) for w in live} == {True, False}
    for window in live:
        start, end = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
        assert at(window) < start < end <= start + timedelta(hours=6) < HORIZON
    assert len(cancelled) == 1
    for window_id, cancel in cancelled.items():
        assert at(cancel) < datetime.fromisoformat(scheduled[window_id]["start"])

    started = {e["campaign_id"]: e for e in events if e["type"] == "migration_started"}
    completed = defaultdict(list)
    for e in events:
        if e["type"] == "migration_completed":
            completed[e["campaign_id"]].append(e)
    assert set(started) == set(completed) and len(started) == 2
    by_list = [c for c in started.values() if "account_ids" in c]
    by_segment = [c for c in started.values() if "segment" in c]
    assert len(by_list) == 1 and len(by_segment) == 1
    listed = by_list[0]
    done = {a for e in completed[listed["campaign_id"]] for a in e["account_ids"]}
    assert done == set(listed["account_ids"])
    assert all(at(e) > at(listed) for e in completed[listed["campaign_id"]])
    whole = completed[by_segment[0]["campaign_id"]]
    assert len(whole) == 1 and "account_ids" not in whole[0] and at(whole[0]) > at(by_segment[0])
    assert set(listed["account_ids"]) <= set(scenarios["migration"])


# --- the engine agrees ---------------------------------------------------------------------------


def test_the_engine_places_and_lifts_exactly_the_scenarios(folded, scenarios):
    """Fold every account through the core: each scenario hold is placed and released, and no
    account gets a hold it was not given."""
    expected: dict[str, set[str]] = defaultdict(set)
    for code, ids in scenarios.items():
        if code not in SCOPED:
            for aid in ids:
                expected[aid].add(code)
    mismatches = []
    for aid, (state, effects) in folded.items():
        placed = {e.code for e in effects if e.kind == HOLD_PLACED}
        released = {e.code for e in effects if e.kind == HOLD_RELEASED}
        if placed != expected[aid] or released != placed or state.holds:
            mismatches.append((aid, sorted(expected[aid]), sorted(placed), sorted(state.holds)))
    assert mismatches == []


# --- repayment behaviours, judged by the folded ledger --------------------------------------


def _statement_after(purchase_at: datetime, statement_day: int) -> date:
    local = purchase_at.astimezone(TZ)
    day = local.date().replace(day=statement_day)
    while local_midnight(day, TZ) <= purchase_at:
        day = (day.replace(day=1) + timedelta(days=32)).replace(day=statement_day)
    return day


def _due_of(statement: date, due_day: int) -> date:
    due = statement.replace(day=due_day)
    return due if due > statement else (due.replace(day=1) + timedelta(days=32)).replace(
        day=due_day)


class _Judged:
    """A statement judged before the horizon, from the folded effects and the events: what it
    said (`data`: the `statement_issued` effect), what was repaid from its issue to the end of
    its due day (the default policy has no grace days), and what else reduced what it asked
    for in that time (refunds, and principal an installment plan took off it after issue)."""

    def __init__(self, data: dict, repaid: int, credited: int):
        self.data = data
        self.repaid = repaid
        self.credited = credited

    @property
    def minimum(self) -> int:
        return self.data["minimum_due_fen"]

    @property
    def paid_in_full(self) -> bool:
        return self.repaid + self.credited >= self.data["new_balance_fen"]


def _judged_statements(effects, events: list[dict]) -> list[_Judged]:
    repayments = [(at(e), fen(e["amount"])) for e in of_type(events, "repayment")]
    refunds = [(at(e), fen(e["amount"])) for e in of_type(events, "refund")]
    bought = {e["event_id"]: at(e) for e in of_type(events, "purchase")}
    issued = [e for e in effects if e.kind == STATEMENT_ISSUED]
    restated: dict[int, int] = defaultdict(int)
    for plan in (e for e in effects if e.kind == INSTALLMENT_PLAN_CREATED):
        purchase_at = bought[plan.data["purchase_event_id"]]
        first = next((k for k, s in enumerate(issued) if s.at > purchase_at), None)
        if first is not None and issued[first].at < plan.at:
            restated[first] += plan.data["principal_fen"]
    out = []
    for k, effect in enumerate(issued):
        due = date.fromisoformat(effect.data["due_date"])
        end = local_midnight(due + timedelta(days=1), TZ)
        if end <= HORIZON:
            repaid = sum(a for t, a in repayments if effect.at <= t < end)
            credited = sum(a for t, a in refunds if effect.at <= t < end) + restated[k]
            out.append(_Judged(effect.data, repaid, credited))
    return out


def _charges_billed(effects) -> list[int]:
    """Per statement: what it billed beyond the purchases approved in its cycle (interest,
    late fees, installments; refunds only lower it)."""
    out, since = [], None
    approved: list[tuple[datetime, int]] = [
        (e.at, e.data["amount_fen"]) for e in effects
        if e.kind == "purchase_decided" and e.data["approved"]]
    for effect in effects:
        if effect.kind == STATEMENT_ISSUED:
            bought = sum(a for t, a in approved if (since is None or t >= since) and t < effect.at)
            out.append(effect.data["amount_fen"] - bought)
            since = effect.at
    return out


def test_behaviours_partition_the_accounts(behaviours, scenarios, by_account):
    assert set(behaviours) == set(BEHAVIOURS)
    payers = [set(behaviours[p]) for p in PAYERS]
    assert set().union(*payers) == set(by_account)
    assert sum(len(p) for p in payers) == len(by_account)  # exactly one kind each
    n = len(by_account)
    share = {b: len(ids) / n for b, ids in behaviours.items()}
    assert 0.40 <= share["transactor"] <= 0.60, share
    assert 0.20 <= share["revolver"] <= 0.40, share
    assert 0.10 <= share["minimum_payer"] <= 0.30, share
    assert 0.10 <= share["installment_user"] <= 0.20, share
    below, missed = set(behaviours["below_minimum"]), set(behaviours["missed_payment"])
    assert below and missed
    assert below | missed == set(scenarios["overdue"]) and not below & missed
    assert missed <= set(behaviours["transactor"])
    assert below <= set(behaviours["revolver"]) | set(behaviours["minimum_payer"])


def test_installment_plans_are_valid_when_sent(by_account, behaviours):
    """Each plan names an approved, unrefunded purchase of its account, allowed months, and
    comes before its purchase's statement is due and before that statement is repaid."""
    allowed = default_policy().installments.allowed_months
    users = set(behaviours["installment_user"])
    plan_ids: set[str] = set()
    after_statement = 0
    for aid, events in by_account.items():
        plans = of_type(events, "installment_plan_created")
        if not plans:
            continue
        assert aid in users
        opened = of_type(events, "account_opened")[0]
        purchases = {e["event_id"]: e for e in of_type(events, "purchase")}
        refunded = {e["purchase_event_id"] for e in of_type(events, "refund")}
        repaid = [at(e) for e in of_type(events, "repayment")]
        for plan in plans:
            assert plan["months"] in allowed, plan
            assert (aid, plan["plan_id"]) not in plan_ids
            plan_ids.add((aid, plan["plan_id"]))
            bought = purchases[plan["purchase_event_id"]]
            assert bought["event_id"] not in refunded, plan
            statement = _statement_after(at(bought), opened["statement_day"])
            issued = local_midnight(statement, TZ)
            assert at(plan).date() <= _due_of(statement, opened["due_day"]), plan
            if at(plan) > issued:
                after_statement += 1
                assert not [t for t in repaid if issued < t < at(plan)], plan
    assert len(plan_ids) >= 40 and after_statement >= 5


def test_transactors_minimum_payers_and_revolvers_are_never_overdue(folded, behaviours):
    """Paying on time (in full, the minimum or in between) never makes an account overdue."""
    on_time = set().union(*(behaviours[p] for p in PAYERS)) - set(
        behaviours["below_minimum"]) - set(behaviours["missed_payment"])
    assert len(on_time) > 0.9 * SPEC.accounts
    for aid in on_time:
        state, effects = folded[aid]
        # No hold, no bureau pre-notice or report, no late fee.
        assert not [e for e in effects if e.code == "overdue"], aid
        assert state.ledger.late_fee_units == 0, aid


def test_transactors_pay_every_statement_in_full(folded, by_account, behaviours):
    transactors = set(behaviours["transactor"]) - set(behaviours["missed_payment"])
    for aid in transactors:
        _, effects = folded[aid]
        judged = _judged_statements(effects, by_account[aid])
        assert all(s.paid_in_full for s in judged), aid
        if aid not in behaviours["installment_user"]:
            assert all(c <= 0 for c in _charges_billed(effects)), aid  # never any interest


def test_revolvers_and_minimum_payers_revolve_with_interest(folded, by_account, behaviours):
    carriers = (set(behaviours["revolver"]) | set(behaviours["minimum_payer"])) - set(
        behaviours["below_minimum"])
    revolving = with_interest = 0
    for aid in carriers:
        state, effects = folded[aid]
        judged = _judged_statements(effects, by_account[aid])
        assert all(s.repaid >= s.minimum or s.repaid + s.credited >= s.minimum
                   for s in judged), aid
        revolving += any(not s.paid_in_full for s in judged)
        if aid not in behaviours["installment_user"]:
            with_interest += any(c > 0 for c in _charges_billed(effects))
    assert revolving >= 0.9 * len(carriers)
    assert with_interest >= 0.8 * len(set(carriers) - set(behaviours["installment_user"]))
    for aid in set(behaviours["minimum_payer"]) - set(behaviours["below_minimum"]):
        judged = _judged_statements(folded[aid][1], by_account[aid])
        assert sum(not s.paid_in_full for s in judged) >= 0.7 * len(judged), aid


def test_minimum_payers_pay_a_little_above_the_minimum(folded, by_account, behaviours):
    ratios = []
    payers = set(behaviours["minimum_payer"]) - set(behaviours["below_minimum"]) - set(
        behaviours["installment_user"])  # a plan may lower a statement's minimum after issue
    for aid in payers:
        _, effects = folded[aid]
        for s in _judged_statements(effects, by_account[aid]):
            assert s.repaid >= s.minimum, (aid, s.data, s.repaid)
            if s.minimum < s.data["new_balance_fen"]:
                ratios.append(s.repaid / s.minimum)
    assert len(ratios) > 100
    assert statistics.median(ratios) < 1.15
    assert statistics.quantiles(ratios, n=10)[-1] < 1.3


def test_below_minimum_payers_pay_part_become_overdue_and_cure(folded, by_account, behaviours):
    twice = 0
    for behaviour in ("below_minimum", "missed_payment"):
        for aid in behaviours[behaviour]:
            state, effects = folded[aid]
            overdue = {e.data["statement_date"] for e in effects
                       if e.kind == NOTICE and e.data.get("notice") == "bureau_prenotice"}
            judged = _judged_statements(effects, by_account[aid])
            short = [s for s in judged if s.data["statement_date"] in overdue]
            assert short and len(short) == len(overdue), aid
            for s in short:
                assert s.repaid < s.minimum, (aid, s.data, s.repaid)
                assert (s.repaid > 0) == (behaviour == "below_minimum"), (aid, s.data)
            # Every other statement's minimum was met on time.
            assert all(s.repaid >= s.minimum for s in judged
                       if s.data["statement_date"] not in overdue), aid
            episodes = _overdue_episodes(effects)
            assert len(episodes) == len(short) and not state.holds, aid
            twice += len(episodes) == 2
    assert twice > 0


def test_installment_plans_are_created_and_billed(folded, by_account, behaviours):
    created = finished = 0
    for aid in behaviours["installment_user"]:
        state, effects = folded[aid]
        sent = of_type(by_account[aid], "installment_plan_created")
        plans = [e for e in effects if e.kind == INSTALLMENT_PLAN_CREATED]
        assert len(plans) == len(sent), aid  # none refused
        assert not [e for e in effects if e.kind == "event_ignored"], aid
        created += len(plans)
        issued = [e.at for e in effects if e.kind == STATEMENT_ISSUED]
        for plan in plans:
            # Every statement after the plan bills one installment, until all are billed.
            billed = sum(1 for t in issued if t > plan.at)
            running = state.ledger.plans.get(plan.data["plan_id"])
            if billed >= plan.data["months"]:
                assert running is None, (aid, plan.data)
                finished += 1
            else:
                assert running is not None and running.billed_months == billed, (aid, plan.data)
    assert created >= 40 and finished >= 10


def test_overdue_freezes_a_minority_of_card_holders(folded, by_account):
    holders = [aid for aid, (_, effects) in folded.items()
               if any(e.kind == STATEMENT_ISSUED for e in effects)]
    overdue = [aid for aid in holders
               if any(e.kind == HOLD_PLACED and e.code == "overdue" for e in folded[aid][1])]
    revolved = [aid for aid in holders if any(
        not s.paid_in_full for s in _judged_statements(folded[aid][1], by_account[aid]))]
    assert len(holders) > 0.9 * SPEC.accounts
    assert 0 < len(overdue) <= 0.08 * len(holders)
    assert len(set(revolved) - set(overdue)) >= 0.3 * len(holders)
