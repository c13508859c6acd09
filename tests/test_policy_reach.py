"""A backtest folds the candidate only where the baseline read a setting the candidate changes
(jiefeng.batch.policy_reach): the watch itself, that an unreached account's candidate run is its
baseline run for candidates changed anywhere in the policy, and that the result is the same
with the reuse and without it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backtest_portfolio import stored  # noqa: F401  (fixture)
from jiefeng.batch import backtest as B
from jiefeng.batch.policy_reach import PolicyWatch, policy_watch
from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio
from jiefeng.policy.schema import PolicyInvalid, default_policy, load_policy, parse_policy
from jiefeng.service import backtest as S
from jiefeng.service.engine import Engine
from jiefeng.service.states import parse_stored
from jiefeng.store.sql import SqlStore

# Settings a risk team changes, one alternative value each, in every section the fold reads.
CHANGES: list[tuple[str, Any]] = [
    ("timezone", "UTC"),
    ("billing.minimum_payment_pct", 100),
    ("billing.minimum_payment_floor_fen", 5_000),
    ("billing.revolving_interest_daily_bp", 0),
    ("billing.grace_days", 3),
    ("billing.tolerance_fen", 1_000),
    ("billing.late_fee_daily_bp", 20),
    ("installments.allowed_months", [3, 6]),
    ("overdue.bureau_prenotice_days_past_due", 2),
    ("overdue.bureau_report_days_past_due", 10),
    ("cure_probation.days", 120),
    ("cure_probation.repeat_window_days", 30),
    ("cure_probation.repeat_multiplier", 1),
    ("external_overdue.min_days_past_due", 60),
    ("cash_out.rapid_purchase_count", 2),
    ("cash_out.round_amount_fen", 10_000),
    ("cash_out.quick_refund_count", 1),
    ("cash_out.brushing_cycle_count", 2),
    ("score.threshold", 580),
    ("score.release_at", 640),
    ("dormancy.days_since_open", 60),
    ("dormancy.notice_days", 5),
    ("account_security.new_devices", 2),
    ("account_security.bank_card_changes", 1),
    ("id_expiry.notice_days", 200),
    ("password.max_consecutive_failures", 2),
    ("password.lock_hours", 2),
    ("policy_tightening.min_closed_days", 0),
    ("appeals.sla_days", 3),
    ("support.phone", "10086"),
]


def candidate_with(changes: list[tuple[str, Any]]):
    document = default_policy().model_dump()
    document["version"] = "candidate"
    for dotted, value in changes:
        *sections, name = dotted.split(".")
        target = document
        for section in sections:
            target = target[section]
        target[name] = value
    return parse_policy(document)


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory) -> tuple[dict[str, list[Any]], Any, B.Window]:
    """A synthetic portfolio with every cause, stored and read back as a backtest reads it."""
    db = str(tmp_path_factory.mktemp("reach") / "reach.db")
    engine = Engine(SqlStore(db))
    report = engine.ingest_events(generate_portfolio(PortfolioSpec(accounts=100, months=17,
                                                                   seed=3)))
    assert report.rejected == 0
    store = engine.store
    with store.read() as connection:
        ids = store.account_ids(connection)
        bodies = store.accounts_event_bodies(connection, ids)
        first, last = connection.exec_driver_sql(
            "SELECT min(at_utc), max(at_utc) FROM events WHERE account_id IS NOT NULL").one()
    events = {a: [parse_stored(body, a) for body in bodies[a]] for a in sorted(bodies)}
    window = B.Window(dt.datetime.fromisoformat(first), dt.datetime.fromisoformat(last))
    scopes = S.without_activations(engine.scopes())
    # Two accounts of each hold code and three never held: every cause, in a fifth of the
    # folds.
    kept: dict[str, list[str]] = {}
    for account_id, account_events in events.items():
        run, _ = B.run_account(account_id, account_events, default_policy(), scopes, window)
        for code in {i.code for i in run.intervals} or {"none"}:
            if len(kept.setdefault(code, [])) < (3 if code == "none" else 2):
                kept[code].append(account_id)
    chosen = sorted({a for accounts in kept.values() for a in accounts})
    return {a: events[a] for a in chosen}, scopes, window


def reached_accounts(portfolio, candidate) -> set[str]:
    """The accounts whose baseline fold read a setting `candidate` changes; asserts that every
    other account's candidate run is its baseline run."""
    events, scopes, window = portfolio
    watch = PolicyWatch(default_policy(), candidate)
    reached = set()
    for account_id, account_events in events.items():
        watch.read = False
        base, _ = B.run_account(account_id, account_events, watch.policy, scopes, window)
        if watch.read:
            reached.add(account_id)
            continue
        cand, _ = B.run_account(account_id, account_events, candidate, scopes, window)
        assert cand == base, (account_id, watch.settings)
    return reached


def test_policies_that_differ_only_in_version_watch_nothing(portfolio):
    candidate = default_policy().model_copy(update={"version": "another"})
    watch = PolicyWatch(default_policy(), candidate)
    assert watch.settings == ()
    assert watch.policy is default_policy()
    assert reached_accounts(portfolio, candidate) == set()


def test_only_the_changed_setting_is_watched_and_every_value_reads_as_before():
    baseline = default_policy()
    watch = PolicyWatch(baseline, candidate_with([("cure_probation.days", 120)]))
    assert watch.settings == ("cure_probation.days",)
    policy = watch.policy
    assert policy.billing is baseline.billing  # an unchanged section is the baseline's own
    assert policy.cure_probation.repeat_window_days == baseline.cure_probation.repeat_window_days
    assert policy.version == baseline.version and policy.zone is baseline.zone
    assert watch.read is False
    assert policy.cure_probation.days == 90  # the baseline's value, noted
    assert watch.read is True
    assert baseline.cure_probation.days == 90 and type(baseline.cure_probation).__name__ == \
        "CureProbation"  # the baseline itself is left alone


def test_a_changed_time_zone_watches_the_zone_derived_from_it():
    watch = PolicyWatch(default_policy(), candidate_with([("timezone", "UTC")]))
    assert watch.settings == ("timezone",)
    assert str(watch.policy.zone) == "Asia/Shanghai"
    assert watch.read is True


def test_two_watches_of_one_baseline_keep_their_own_flags():
    first = PolicyWatch(default_policy(), candidate_with([("password.lock_hours", 2)]))
    second = PolicyWatch(default_policy(), candidate_with([("password.lock_hours", 3)]))
    assert first.policy.password.lock_hours == 24
    assert first.read is True and second.read is False


def test_a_thread_keeps_one_watch_per_pair_of_policies_and_no_thread_shares_it():
    import threading

    baseline, candidate = default_policy(), candidate_with([("password.lock_hours", 2)])
    mine = policy_watch(baseline, candidate)
    assert policy_watch(baseline, candidate) is mine
    other: list[PolicyWatch] = []
    thread = threading.Thread(target=lambda: other.append(policy_watch(baseline, candidate)))
    thread.start()
    thread.join()
    assert other[0] is not mine and other[0].settings == mine.settings
    assert policy_watch(baseline, candidate_with([("password.lock_hours", 3)])) is not mine


@pytest.mark.parametrize("change", CHANGES, ids=[c[0] for c in CHANGES])
def test_an_account_the_change_does_not_reach_runs_the_same_under_the_candidate(portfolio,
                                                                                change):
    reached_accounts(portfolio, candidate_with([change]))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(CHANGES), min_size=2, max_size=4, unique_by=lambda c: c[0]))
def test_several_changes_at_once(portfolio, changes):
    try:
        candidate = candidate_with(changes)
    except PolicyInvalid:
        assume(False)  # e.g. a release score below the threshold
    reached_accounts(portfolio, candidate)


def test_a_rarely_read_setting_reaches_few_accounts_and_the_ledger_reaches_all(portfolio):
    events, _, _ = portfolio
    cure = reached_accounts(portfolio, candidate_with([("cure_probation.days", 120)]))
    assert 0 < len(cure) < len(events) / 2  # cured overdues only
    grace = reached_accounts(portfolio, candidate_with([("billing.grace_days", 3)]))
    assert len(grace) > len(events) * 0.9  # every account with a statement


def test_the_candidate_is_folded_only_for_reached_accounts_and_the_result_is_the_same(
        stored, monkeypatch):  # noqa: F811
    db, candidate_file = stored
    candidate = load_policy(candidate_file)
    folds: list[str] = []
    real = B.run_account

    def counted(account_id, events, policy, scopes, window):
        if policy is candidate:
            folds.append(account_id)
        return real(account_id, events, policy, scopes, window)

    monkeypatch.setattr(B, "run_account", counted)
    results = {}
    for reuse in (True, False):
        folds.clear()
        store = SqlStore(db, upgrade=False)
        spec = S.BacktestSpec(default_policy(), candidate, reuse_unreached=reuse)
        result = S.run_backtest(db, store, Engine(store).scopes(), spec)
        store.close()
        results[reuse] = json.dumps(result, sort_keys=True)
        # The differing sample's explanations fold both policies for its accounts, always.
        sample = {entry["account_id"] for entry in result["differing_sample"]}
        folded_for_runs = [a for a in folds if a not in sample] + sorted(sample)
        if reuse:
            # The candidate changes the cure period and the score threshold: the cured account
            # and the account with a score update; the two quiet accounts are not folded again.
            assert sorted(set(folded_for_runs)) == ["CURED", "SCORE"]
        else:
            assert sorted(set(folded_for_runs)) == ["CURED", "QUIET1", "QUIET2", "SCORE"]
    assert results[True] == results[False]
    assert json.loads(results[True])["accounts"]["reached_by_changes"] == 2


def test_a_candidate_that_changes_only_its_version_changes_nothing(stored, tmp_path):  # noqa: F811
    db, _ = stored
    store = SqlStore(db, upgrade=False)
    candidate = default_policy().model_copy(update={"version": "renamed"})
    result = S.run_backtest(db, store, Engine(store).scopes(),
                            S.BacktestSpec(default_policy(), candidate))
    store.close()
    assert result["policies"]["changed_settings"] == []
    assert result["accounts"]["reached_by_changes"] == 0
    assert result["accounts"]["differing"] == 0
    from jiefeng.batch.backtest_report import render_backtest_html

    assert "changes no setting" in render_backtest_html(result)


def test_a_run_ignores_the_events_after_its_window(portfolio):
    """An engine reads up to the window's end; given later events too, a run folds only those
    up to the end (the same run as from the events cut there), and the caller's list is left
    as it was."""
    events, scopes, window = portfolio
    middle = window.start + (window.end - window.start) / 2
    cut_window = B.Window(window.start, middle)
    differs = 0
    for account_id, account_events in events.items():
        given = list(account_events)
        run, _ = B.run_account(account_id, given, default_policy(), scopes, cut_window)
        assert given == account_events
        cut = [e for e in account_events if e.at <= middle]
        alone, _ = B.run_account(account_id, cut, default_policy(), scopes, cut_window)
        assert run == alone, account_id
        whole, _ = B.run_account(account_id, account_events, default_policy(), scopes, window)
        differs += whole != run
    assert differs > 0  # the later events would have changed some runs
