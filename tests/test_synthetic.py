"""The synthetic portfolio: valid, deterministic, and every scenario both placed and lifted."""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jiefeng.batch.synthetic import (
    HIGH_RISK_MERCHANTS,
    HOLD_CODES,
    PortfolioSpec,
    generate_portfolio,
    scenario_details,
    scenario_of,
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
        seen[event["event_id"]] = event


def test_same_seed_same_events_and_another_seed_differs():
    small = PortfolioSpec(accounts=120, seed=3)
    first = generate_portfolio(small)
    assert generate_portfolio(small) == first
    assert generate_portfolio(PortfolioSpec(accounts=120, seed=4)) != first
    assert scenario_of(small) == scenario_of(PortfolioSpec(accounts=120, seed=3))


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


def _statements(events: list[dict]) -> list[tuple[date, date, int]]:
    """(statement date, due date, cumulative purchases billed through it) from the events."""
    opened = of_type(events, "account_opened")[0]
    sday, dday = opened["statement_day"], opened["due_day"]
    opened_at = at(opened)
    purchases = sorted((at(e), fen(e["amount"])) for e in of_type(events, "purchase")
                       if e.get("kind", "purchase") == "purchase")
    times = [t for t, _ in purchases]
    cumulative = [0]
    for _, amount in purchases:
        cumulative.append(cumulative[-1] + amount)
    out = []
    day = date(opened_at.year, opened_at.month, sday)
    while datetime(day.year, day.month, day.day, tzinfo=TZ) < HORIZON:
        midnight = datetime(day.year, day.month, day.day, tzinfo=TZ)
        if midnight > opened_at:
            due = day.replace(day=dday)
            if due <= day:
                due = (due.replace(day=1) + timedelta(days=32)).replace(day=dday)
            out.append((day, due, cumulative[bisect.bisect_left(times, midnight)]))
        year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        day = date(year, month, sday)
    return out


def _late_statements(events: list[dict]) -> list[tuple[date, datetime | None]]:
    """Statements not repaid by the end of their due date: (due date, when finally covered)."""
    repayments = sorted((at(e), fen(e["amount"])) for e in of_type(events, "repayment"))
    refunds = sorted((at(e), fen(e["amount"])) for e in of_type(events, "refund"))
    credits = sorted(repayments + refunds)
    late = []
    for _, due, billed in _statements(events):
        end_of_due = datetime(due.year, due.month, due.day, tzinfo=TZ) + timedelta(days=1)
        if end_of_due >= HORIZON:
            continue
        paid = sum(a for t, a in credits if t < end_of_due)
        if paid < billed:
            running, covered = 0, None
            for t, amount in credits:
                running += amount
                if running >= billed:
                    covered = t
                    break
            late.append((due, covered))
    return late


def test_normal_accounts_repay_on_time(by_account, normal_accounts):
    for aid in normal_accounts:
        assert _late_statements(by_account[aid]) == [], aid


def test_overdue_is_repaid_then_cure_probation_ends_in_time(by_account, scenarios):
    for aid in scenarios["overdue"]:
        late = _late_statements(by_account[aid])
        assert len(late) == 1, (aid, late)
        due, covered = late[0]
        assert covered is not None and covered.date() > due, aid
        assert covered + timedelta(days=90) < HORIZON - timedelta(days=30), aid


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


def test_the_engine_places_and_lifts_exactly_the_scenarios(events, scenarios):
    """Fold every account through the core: each scenario hold is placed and released, and no
    account gets a hold it was not given."""
    from jiefeng.domain.core import fold
    from jiefeng.domain.effects import HOLD_PLACED, HOLD_RELEASED
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
    expected: dict[str, set[str]] = defaultdict(set)
    for code, ids in scenarios.items():
        if code not in SCOPED:
            for aid in ids:
                expected[aid].add(code)
    policy = default_policy()
    mismatches = []
    for aid, account_events in grouped.items():
        state, effects = fold(aid, account_events, policy, scopes, until=HORIZON)
        placed = {e.code for e in effects if e.kind == HOLD_PLACED}
        released = {e.code for e in effects if e.kind == HOLD_RELEASED}
        if placed != expected[aid] or released != placed or state.holds:
            mismatches.append((aid, sorted(expected[aid]), sorted(placed), sorted(state.holds)))
    assert mismatches == []
