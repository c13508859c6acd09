"""The backtest's summary built one account at a time (jiefeng.batch.backtest_summary): the same
backtest.json whatever the order the accounts come back in and however the work was split, and
a memory that does not grow with the accounts compared."""

from __future__ import annotations

import datetime as dt
import json
import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jiefeng.batch import backtest as B
from jiefeng.batch.backtest_collect import PairCollector
from jiefeng.batch.daily import DayCounter
from jiefeng.policy.schema import default_policy

WINDOW = B.Window(dt.datetime(2025, 3, 1, 5, tzinfo=dt.UTC),
                  dt.datetime(2025, 11, 20, 3, tzinfo=dt.UTC))
POLICY = default_policy()

_instants = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2026, 1, 31),
                         timezones=st.just(dt.UTC))
_intervals = st.builds(
    lambda code, start, length_s, still_open, kind: B.Interval(
        code, start, None if still_open else start + dt.timedelta(seconds=length_s, microseconds=7),
        None if still_open else kind),
    st.sampled_from(["overdue", "dormant", "password_lock", "cure_probation"]), _instants,
    st.one_of(st.just(0), st.integers(0, 400 * 86_400)), st.booleans(),
    st.sampled_from(["time", "condition", "review", "superseded", None]))
_runs = st.builds(
    lambda intervals, status, reports, reads: (sorted(intervals, key=lambda i: (i.start, i.code)),
                                               status, reports, reads),
    st.lists(_intervals, max_size=3), st.sampled_from(["active", "frozen", "closed"]),
    st.integers(0, 2), st.booleans())
# One account: its baseline run, and its candidate run or None (the baseline's run reused).
_accounts = st.lists(st.tuples(_runs, st.one_of(st.none(), _runs)), max_size=25)


def _run(account_id, fields):
    intervals, status, reports, reads = fields
    return B.AccountRun(account_id, list(intervals), reports, status,
                        tuple(sorted({i.code for i in intervals if i.end is None})), reads)


def _pairs(accounts):
    pairs = []
    for n, (base_fields, cand_fields) in enumerate(accounts):
        base = _run(f"A{n:03d}", base_fields)
        pairs.append((base, base if cand_fields is None else _run(base.account_id, cand_fields)))
    return pairs


def _tally(pairs, sample_size=3):
    tally = B.new_tally(WINDOW, POLICY, POLICY, sample_size)
    for pair in pairs:
        tally.add(*pair)
    return tally


def _json(tally):
    return json.dumps(tally.result({}, []))


@settings(max_examples=60, deadline=None)
@given(_accounts, st.randoms(use_true_random=False), st.integers(1, 4))
def test_the_summary_is_the_same_in_any_order_and_any_split(accounts, rng, parts):
    pairs = _pairs(accounts)
    whole = _tally(pairs)
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    tallies = [_tally(shuffled[n::parts]) for n in range(parts)]
    merged = tallies[0]
    for other in tallies[1:]:
        merged.merge(other)
    assert _json(merged) == _json(whole)  # byte for byte, as backtest.json holds it
    assert merged.differing_sample_ids() == whole.differing_sample_ids()
    # And what the list-based summary gives for the same runs.
    assert _json(whole) == json.dumps(B.summarize(
        [p[0] for p in pairs], [p[1] for p in pairs], WINDOW, baseline_policy=POLICY,
        candidate_policy=POLICY, selection={}, differing_sample=[]))


@settings(max_examples=60, deadline=None)
@given(_accounts, st.integers(0, 5))
def test_the_differing_sample_is_the_first_differing_accounts_in_sample_order(accounts, size):
    pairs = _pairs(accounts)
    tally = _tally(pairs, size)
    differing = [b.account_id for b, c in pairs if b.signature(WINDOW) != c.signature(WINDOW)]
    assert tally.differing == len(differing)
    assert tally.differing_sample_ids() == sorted(sorted(differing, key=B.sample_order)[:size])


def test_frozen_time_is_summed_exactly():
    # Summed in whole microseconds (a sum of floats depends on the order of its terms, and
    # the accounts come back in any order): the figure is the exact total, rounded once.
    start = WINDOW.start + dt.timedelta(days=1)
    pairs = []
    for n in range(3_000):
        run = B.AccountRun(f"A{n:04d}", [B.Interval(
            "dormant", start, start + dt.timedelta(seconds=n % 7 + 0.1), "time")])
        pairs.append((run, run))
    figures = _tally(pairs).result({}, [])["by_code"]["dormant"]["baseline"]
    exact_microseconds = sum((n % 7) * 1_000_000 + 100_000 for n in range(3_000))
    assert figures["account_days_frozen"] == round(exact_microseconds / 86_400e6, 2)
    assert figures["accounts"] == figures["holds_placed"] == figures["holds_released"] == 3_000
    assert figures["released_by"]["time"] == 1.0


def test_day_counters_of_other_days_do_not_merge():
    one = DayCounter(dt.date(2025, 1, 1), dt.date(2025, 1, 31))
    with pytest.raises(ValueError, match="different days"):
        one.merge(DayCounter(dt.date(2025, 1, 1), dt.date(2025, 2, 1)))


def test_merged_day_counters_count_what_one_counter_counts():
    first, last = dt.date(2025, 1, 1), dt.date(2025, 1, 10)
    spans = [("A", "dormant", dt.date(2025, 1, 2), dt.date(2025, 1, 5)),
             ("B", "dormant", dt.date(2025, 1, 4), dt.date(2025, 1, 20)),
             ("C", "overdue", dt.date(2024, 12, 1), dt.date(2025, 1, 1))]
    whole, left, right = (DayCounter(first, last) for _ in range(3))
    whole.add(spans)
    left.add(spans[:1])
    right.add(spans[1:])
    left.merge(right)
    assert left.counts() == whole.counts()
    assert whole.counts()[0] == {"overdue": 1}
    assert whole.counts()[3] == {"dormant": 2}
    assert whole.counts()[9] == {"dormant": 1}


# --- what the parent process keeps ---------------------------------------------------------------


def _quiet_pairs(count, offset=0):
    """Accounts without holds (most of a portfolio), made one at a time."""
    for n in range(offset, offset + count):
        run = B.AccountRun(f"ACCOUNT-{n:08d}", status_end="active", reads_changed_settings=False)
        yield run, B.AccountRun(run.account_id, status_end="frozen")


def _peak_bytes(accounts, sample=None):
    collector = PairCollector(B.new_tally(WINDOW, POLICY, POLICY, 10), sample)
    tracemalloc.start()
    try:
        pairs = _quiet_pairs(accounts)
        while chunk := [next(pairs, None) for _ in range(25)]:
            chunk = [pair for pair in chunk if pair is not None]
            if not chunk:
                break
            collector.take(chunk)
        collector.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert collector.tally.compared == (accounts if sample is None else min(sample, accounts))
    return peak


@pytest.mark.parametrize("sample", [None, 50])
def test_the_parent_keeps_no_run_once_it_is_summarized(sample):
    # Keeping every account's runs to the end took about 0.75 KB an account: 20,000 more
    # accounts would be about 15 MB more.
    growth = _peak_bytes(22_000, sample) - _peak_bytes(2_000, sample)
    assert growth < 1_000_000, growth


def test_a_sample_of_selected_accounts_keeps_the_first_in_sample_order():
    pairs = list(_quiet_pairs(300))
    collector = PairCollector(B.new_tally(WINDOW, POLICY, POLICY, 10), 7)
    random.Random(5).shuffle(pairs)
    collector.take([None, None])  # left out by the criteria
    for start in range(0, 300, 25):
        collector.take(pairs[start:start + 25])
        assert len(collector._first) <= 7
    collector.finish()
    expected = sorted((p[0].account_id for p in pairs), key=B.sample_order)[:7]
    assert collector.left_out == 2
    assert collector.tally.compared == 7
    # Every kept account differs (active against frozen): the sample shows them all.
    assert collector.tally.differing_sample_ids() == sorted(expected)


# --- partitions of the local engine ---------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 5_000), max_size=300))
def test_partitions_cover_every_account_once_in_order_and_close_at_their_bounds(counts):
    from jiefeng.batch import backtest_collect as C

    accounts = [f"A{n:04d}" for n in range(len(counts))]
    chunks = C.partitions(accounts, counts)
    assert [a for chunk in chunks for a in chunk] == accounts
    events = dict(zip(accounts, counts, strict=True))

    def full(part):  # what closes a partition
        return (len(part) >= C.MIN_PARTITION_ACCOUNTS
                and sum(events[a] for a in part) >= C.PARTITION_EVENTS
                or len(part) >= C.MAX_PARTITION_ACCOUNTS)

    for chunk in chunks:
        assert 0 < len(chunk) <= C.MAX_PARTITION_ACCOUNTS
        assert not full(chunk[:-1])  # closed by the account that filled it, not before
    assert all(full(chunk) for chunk in chunks[:-1])  # only the last may be short


def test_short_histories_make_partitions_of_more_accounts():
    from jiefeng.batch import backtest_collect as C

    accounts = [f"A{n:04d}" for n in range(1_000)]
    short = C.partitions(accounts, [17] * 1_000)
    assert len(short[0]) == -(-C.PARTITION_EVENTS // 17)
    long = C.partitions(accounts, [340] * 1_000)
    assert len(long[0]) == C.MIN_PARTITION_ACCOUNTS  # long histories: as before counts
    assert long == C.partitions(accounts, None)
    quiet = C.partitions(accounts, [0] * 1_000)
    assert [len(c) for c in quiet] == [C.MAX_PARTITION_ACCOUNTS] * 2
    with pytest.raises(ValueError, match="one event count per account"):
        C.partitions(accounts, [1])
