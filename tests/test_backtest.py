"""Backtests: the stored history replayed under a baseline and a candidate policy, on the
portfolio of tests/backtest_portfolio.py."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends import db_url  # noqa: F401  (fixture)
from backtest_portfolio import backtest, candidate_text, stored  # noqa: F401  (fixture)
from jiefeng.batch import backtest as B
from jiefeng.batch import backtest_summary as BS
from jiefeng.domain import holds as H
from jiefeng.store.sql import SqlStore


def test_longer_cure_probation_and_higher_threshold_are_measured(stored, tmp_path):
    db, candidate = stored
    result = backtest(db, candidate, tmp_path / "out")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "backtest.json").read_text(encoding="utf-8"))
    cure = data["by_code"]["cure_probation"]
    # Placed on 02-20 under both; lifts by itself after 90 days against 120.
    assert cure["baseline"]["holds_placed"] == cure["candidate"]["holds_placed"] == 1
    assert cure["baseline"]["median_hours_to_release"] == 90 * 24
    assert cure["candidate"]["median_hours_to_release"] == 120 * 24
    assert cure["candidate"]["account_days_frozen"] - cure["baseline"]["account_days_frozen"] \
        == pytest.approx(30)
    assert cure["baseline"]["released_by"]["time"] == 1.0
    overdue = data["by_code"]["overdue"]
    assert overdue["baseline"]["released_by"]["condition"] == 1.0  # repaid
    # Only the candidate freezes SCORE; nobody else differs.
    score = data["by_code"][H.SCORE_BELOW_THRESHOLD]
    assert score["baseline"]["accounts"] == 0 and score["candidate"]["accounts"] == 1
    assert score["accounts_frozen_only_candidate"] == 1
    assert data["accounts"]["compared"] == 4
    assert data["by_status_at_end"]["candidate"]["frozen"] == \
        data["by_status_at_end"]["baseline"]["frozen"] + 1
    differing = {a["account_id"] for a in data["differing_sample"]}
    assert "SCORE" in differing and "QUIET1" not in differing
    score_view = next(a for a in data["differing_sample"] if a["account_id"] == "SCORE")
    assert score_view["baseline"]["status"] == "active"
    assert score_view["candidate"]["status"] == "frozen"
    assert "620" in score_view["candidate"]["explanation"]["en"]
    # What the candidate changes, and who ever read it: the cured account (its cure period)
    # and the account with a score update (the threshold, then the release score).
    assert data["policies"]["changed_settings"] == ["cure_probation.days", "score.threshold",
                                                    "score.release_at"]
    assert data["accounts"]["reached_by_changes"] == 2
    assert "compared 4 accounts, 1 differ (2 read a setting the candidate changes: " \
        "cure_probation.days, score.threshold, score.release_at)" in " ".join(result.output.split())
    html = (tmp_path / "out" / "backtest.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 2  # frozen over time, time to release
    assert "SCORE" in html
    assert "<code>cure_probation.days</code>" in html and "read by 2 of the 4 accounts" in html


def test_same_inputs_give_byte_identical_json_whatever_the_workers(stored, tmp_path):
    db, candidate = stored
    one = backtest(db, candidate, tmp_path / "one")
    two = backtest(db, candidate, tmp_path / "two", "--workers", "2")
    assert one.exit_code == 0 and two.exit_code == 0, (one.output, two.output)
    assert (tmp_path / "one" / "backtest.json").read_bytes() == \
        (tmp_path / "two" / "backtest.json").read_bytes()


def test_window_and_selection(stored, tmp_path):
    db, candidate = stored
    result = backtest(db, candidate, tmp_path / "out", "--accounts", "score >= 600",
                      "--from", "2026-01-10T00:00:00+08:00", "--to", "2026-03-01T00:00:00+08:00")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "backtest.json").read_text(encoding="utf-8"))
    # Only SCORE has a score as of 01-10; the others' NULL score does not match.
    assert data["accounts"]["compared"] == 1
    assert data["accounts"]["left_out_by_criteria"] == 3
    assert data["window"] == {"from": "2026-01-10T00:00:00+08:00",
                              "to": "2026-03-01T00:00:00+08:00"}
    sampled = backtest(db, candidate, tmp_path / "s", "--sample", "2")
    assert sampled.exit_code == 0, sampled.output
    assert json.loads((tmp_path / "s" / "backtest.json").read_text())["accounts"]["compared"] == 2


@pytest.mark.parametrize("args, message", [
    (("--accounts", "score >"), "--accounts"),
    (("--accounts", "no_such_feature > 1"), "--accounts"),
    (("--from", "2026-05-01T00:00:00+08:00", "--to", "2026-02-01T00:00:00+08:00"), "--to"),
    (("--from", "yesterday"), "--from"),
    (("--to", "2026-03-01T00:00:00"), "--to"),
    (("--input", "exported"), "--input"),
    (("--spark-remote", "sc://localhost:15002"), "--spark-remote"),
    (("--engine", "flink"), "--engine"),
    (("--baseline", "missing.toml"), "missing.toml"),
])
def test_bad_options_are_refused_with_the_option_named(stored, tmp_path, args, message):
    db, candidate = stored
    result = backtest(db, candidate, tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out" / "backtest.json").exists()


def test_an_empty_database_is_refused(tmp_path):
    db = str(tmp_path / "empty.db")
    SqlStore(db).close()
    candidate = tmp_path / "c.toml"
    candidate.write_text(candidate_text(), encoding="utf-8")
    result = backtest(db, candidate, tmp_path / "out")
    assert result.exit_code == 2
    assert "no account events" in result.output


@pytest.mark.parametrize("code, why, kind", [
    (H.OVERDUE, "repaid", H.RELEASE_CONDITION),
    (H.CURE_PROBATION, "expired", H.RELEASE_TIME),
    (H.CURE_PROBATION, "superseded_by_overdue", B.SUPERSEDED),
    (H.EXTERNAL_OVERDUE, "settled", H.RELEASE_EVENT),
    (H.CASH_OUT_SUSPECTED, "appeal_approved", H.RELEASE_REVIEW),
    (H.DORMANT, "reactivated", H.RELEASE_CONDITION),
    (H.ACCOUNT_SECURITY, "identity_verified", H.RELEASE_EVENT),
    (H.PASSWORD_LOCKED, "password_reset", H.RELEASE_EVENT),
    (H.MANUAL_REVIEW, "operator_released", H.RELEASE_EVENT),
    (H.POLICY_TIGHTENING, "reopen_criteria_met", H.RELEASE_CONDITION),
])
def test_release_kind_follows_the_hold_s_way_out(code, why, kind):
    assert B.release_kind(code, why) == kind


def test_quantiles_are_nearest_rank():
    assert BS.quantile([], 0.5) is None
    assert BS.quantile([5.0], 0.9) == 5.0
    assert BS.quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert BS.quantile([float(n) for n in range(1, 11)], 0.9) == 9.0


def test_spark_engine_without_pyspark_names_the_extra(stored, tmp_path, monkeypatch):
    db, candidate = stored
    monkeypatch.setitem(__import__("sys").modules, "pyspark", None)  # import pyspark fails
    result = backtest(db, candidate, tmp_path / "out", "--engine", "spark")
    assert result.exit_code == 2
    assert "jiefeng[spark]" in result.output
    assert not (tmp_path / "out" / "backtest.json").exists()


@pytest.fixture(scope="module")
def portfolio_events() -> list[dict]:
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    return generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=29))


@pytest.mark.parametrize("spec_fields", [
    {},
    {"criteria": "score IS NULL OR score > 0", "sample": 3},  # a worker keeps its first 3
])
def test_workers_summarize_their_chunks_and_the_result_is_one_process_s(
        tmp_path, portfolio_events, monkeypatch, spec_fields):
    """Two worker processes send back each chunk summarized, not its pairs of runs; merged,
    the summaries give what one process folding every chunk gives, byte for byte."""
    from jiefeng.batch.backtest_collect import PairCollector, partitions
    from jiefeng.policy.schema import default_policy, parse_policy_text
    from jiefeng.service.backtest import BacktestSpec, run_backtest
    from jiefeng.service.engine import Engine

    db = str(tmp_path / "jiefeng.db")
    engine = Engine(SqlStore(db))
    engine.ingest_events(portfolio_events[:9_000])
    store = engine.store
    with store.read() as connection:
        counted = store.account_event_counts(connection)
    assert len(partitions([a for a, _ in counted], [n for _, n in counted])) >= 3
    merged: list[int] = []
    merge = PairCollector.merge
    monkeypatch.setattr(PairCollector, "merge",
                        lambda self, other: merged.append(other.tally.compared)
                        or merge(self, other))
    results = {}
    for workers in (1, 2):
        spec = BacktestSpec(default_policy(), parse_policy_text(candidate_text()),
                            workers=workers, **spec_fields)
        results[workers] = run_backtest(db, store, engine.scopes(), spec)
    store.close()
    if not spec_fields:
        assert results[1]["accounts"]["compared"] > 25
        assert results[1]["accounts"]["differing"] > 0  # the sample has side-by-sides
    assert json.dumps(results[2], sort_keys=True) == json.dumps(results[1], sort_keys=True)
    # The workers' chunks came back summarized (this process folds its own chunks while
    # they start, and takes those as pairs).
    assert merged and sum(merged) <= results[2]["accounts"]["compared"]


def test_a_chunk_of_accounts_reads_each_ones_events_in_order(db_url, portfolio_events):  # noqa: F811
    """A backtest reads its accounts a chunk at a time: each account's bodies come as the
    per-account read gives them, in (time, arrival) order, up to the window's end, on both
    stores; an account without events is absent."""
    from jiefeng.service.engine import Engine
    from jiefeng.store.schema import parse_utc_text

    engine = Engine(SqlStore(db_url))
    engine.ingest_events(portfolio_events[:1500])
    store = engine.store
    with store.read() as connection:
        account_ids = store.account_ids(connection)[:7] + ["NO-SUCH-ACCOUNT"]
        middle = parse_utc_text(connection.exec_driver_sql(
            "SELECT at_utc FROM events ORDER BY at_utc LIMIT 1 OFFSET 700").scalar())
        for until in (None, middle):
            chunk = store.accounts_event_bodies(connection, account_ids, until=until)
            assert "NO-SUCH-ACCOUNT" not in chunk
            for account_id in account_ids[:7]:
                one = [body for body, _ in
                       store.account_event_records(connection, account_id, until=until)]
                assert chunk.get(account_id, []) == one
            assert any(len(bodies) > 1 for bodies in chunk.values())
    store.close()


def test_a_chunk_folds_with_thecollector_paused_and_restores_it() -> None:
    import gc

    from jiefeng.service import backtest as service_backtest

    seen = []
    assert gc.isenabled()
    with service_backtest.collector_paused():
        seen.append(gc.isenabled())
        with service_backtest.collector_paused():  # another chunk, in another thread
            seen.append(gc.isenabled())
        seen.append(gc.isenabled())  # the inner one leaves it to the outer
    assert seen == [False, False, False] and gc.isenabled()
    try:
        with service_backtest.collector_paused():
            raise RuntimeError("a chunk failed")
    except RuntimeError:
        pass
    assert gc.isenabled()  # a failed chunk does not leave it off
    gc.disable()
    try:
        with service_backtest.collector_paused():
            pass
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()


def test_a_chunk_s_events_and_states_are_freed_before_the_collector_resumes(
        tmp_path, portfolio_events, monkeypatch) -> None:
    """Still alive when the collector resumed, a chunk's events and states were walked by
    the collection that followed, once per chunk, to free nothing."""
    import gc

    from jiefeng.policy.schema import default_policy
    from jiefeng.service import backtest as service_backtest
    from jiefeng.service.engine import Engine

    db = str(tmp_path / "chunk.db")
    engine = Engine(SqlStore(db))
    engine.ingest_events(portfolio_events[:8000])
    policy = default_policy()
    spec = service_backtest.BacktestSpec(policy, policy)
    context = service_backtest.BacktestContext(
        db, policy, policy, engine.scopes(), service_backtest._window(engine.store, spec), None)
    with engine.store.read() as connection:
        account_ids = engine.store.account_ids(connection)[:25]
    service_backtest._init_worker(context)
    tracked_at_resume: list[int] = []
    enable = gc.enable

    def resume() -> None:
        # The objects the collector tracks, alive as it resumes (not gc.get_count(), which
        # also counts what was freed onto the interpreter's free lists of tuples).
        tracked_at_resume.append(len(gc.get_objects()))
        enable()

    monkeypatch.setattr(gc, "enable", resume)
    gc.collect()
    tracked_before = len(gc.get_objects())
    pairs = service_backtest._run_chunk(account_ids)
    assert len(pairs) == 25 and all(pair is not None for pair in pairs)
    # What is left is the pairs of runs returned; the events and states (tens of thousands of
    # objects for these 25 accounts) are gone.
    assert tracked_at_resume, "the collector was not paused"
    assert tracked_at_resume[0] - tracked_before < 1_000, (tracked_at_resume, tracked_before)
    engine.store.close()


def _imported_here(module: str) -> bool:
    import sys

    return module in sys.modules


def test_workers_are_forked_with_the_criteria_module_imported() -> None:
    """A log with a policy sweep folds its criteria (sqlglot) in every worker: imported once
    by the fork server, not again by each worker's first chunk (about 0.06 s of CPU each)."""
    from concurrent.futures import ProcessPoolExecutor

    from jiefeng.service import backtest as service_backtest

    context = service_backtest._worker_context()
    if context.get_start_method() != "forkserver":
        pytest.skip("this platform has no fork server: workers are spawned")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        assert pool.submit(_imported_here, "jiefeng.policy.criteria").result()


# --- sharing the chunks between this process and the workers ----------------------------------


def _share(chunk_count: int, fold):
    """Run `share_chunks` over `chunk_count` one-account chunks with a thread pool standing in
    for the worker processes; `fold(chunk, thread_name)` folds one chunk, here or there."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from jiefeng.service.chunk_sharing import share_chunks

    def folded(chunk):
        return fold(chunk, threading.current_thread().name)

    collected: list[tuple[str, list]] = []
    chunks = [[f"A{n:03d}"] for n in range(chunk_count)]
    with ThreadPoolExecutor(2, thread_name_prefix="worker") as pool:
        share_chunks(pool, 2, chunks,
                     lambda chunk, results: collected.append((chunk[0], results)),
                     local=folded, remote=folded)
    return chunks, collected


def test_every_chunk_is_folded_once_by_this_process_or_a_worker():
    import threading

    folded_by: dict[str, str] = {}
    this_process_folded = threading.Event()

    def fold(chunk, thread_name):
        if thread_name.startswith("worker"):
            # Workers still starting: this process folds meanwhile (here, its first chunk).
            assert this_process_folded.wait(5)
        folded_by[chunk[0]] = thread_name
        if not thread_name.startswith("worker"):
            this_process_folded.set()
        return [chunk[0]]

    chunks, collected = _share(60, fold)
    assert sorted(account for account, _ in collected) == [chunk[0] for chunk in chunks]
    assert all(results == [account] for account, results in collected)
    assert {name.startswith("worker") for name in folded_by.values()} == {True, False}


def test_this_process_stops_folding_once_every_worker_runs():
    """A third folding process on two cores slows the two workers down: once both have
    returned a chunk, this process only collects."""
    import threading
    import time

    worker_folds = [0]
    counted = threading.Condition()
    both_first_chunks = threading.Barrier(2)
    folded_here: list[str] = []

    def fold(chunk, thread_name):
        if thread_name.startswith("worker"):
            with counted:
                worker_folds[0] += 1
                number = worker_folds[0]
                counted.notify_all()
            if number <= 2:
                # A feeder hands out its next chunk only once its first is back, so the two
                # first chunks are the two workers': both run, then both return.
                both_first_chunks.wait(timeout=5)
            time.sleep(0.001)  # the threads standing in for processes all get to run
        else:
            folded_here.append(chunk[0])
            with counted:  # by then both workers have returned a chunk, long since
                assert counted.wait_for(lambda: worker_folds[0] >= 20, timeout=5)
        return [chunk[0]]

    chunks, collected = _share(200, fold)
    assert sorted(account for account, _ in collected) == sorted(c[0] for c in chunks)
    assert len(folded_here) <= 1  # folding throughout, it would take a share of the 200


def test_this_process_folds_every_chunk_while_no_worker_has_started():
    """Workers that have not returned a first chunk (a slow fork server) leave the chunks to
    this process, which does not wait for them."""
    import threading

    release_workers = threading.Event()
    folded_by: dict[str, str] = {}

    def fold(chunk, thread_name):
        if thread_name.startswith("worker"):
            assert release_workers.wait(5)  # fails the test if this process waited for them
        folded_by[chunk[0]] = thread_name
        if sum(not name.startswith("worker") for name in folded_by.values()) == 28:
            release_workers.set()
        return [chunk[0]]

    chunks, collected = _share(30, fold)
    assert sorted(account for account, _ in collected) == [chunk[0] for chunk in chunks]
    here = [a for a, name in folded_by.items() if not name.startswith("worker")]
    assert len(here) == 28  # all but the two the workers took first


def test_a_chunk_that_fails_in_a_worker_stops_the_backtest_with_its_error():
    import time

    def fold(chunk, thread_name):
        if thread_name.startswith("worker"):
            raise RuntimeError(f"worker failed on {chunk[0]}")
        time.sleep(0.01)  # this process is slower: the workers take chunks first
        return []

    with pytest.raises(RuntimeError, match="worker failed on"):
        _share(200, fold)


def test_a_chunk_that_fails_here_stops_the_workers_too():
    import threading
    import time

    taken_after_failure = []
    failed = threading.Event()

    def fold(chunk, thread_name):
        if thread_name.startswith("worker"):
            if failed.is_set():
                taken_after_failure.append(chunk[0])
                time.sleep(0.05)  # a worker that kept taking chunks would take one a while
            # Busy with their first chunks, the workers leave the next to this process.
            assert failed.wait(5)
            return []
        failed.set()
        raise ValueError("this process failed")

    with pytest.raises(ValueError, match="this process failed"):
        _share(500, fold)
    # At most the chunks the two workers took as it failed.
    assert len(taken_after_failure) <= 2


@pytest.mark.parametrize("sample, criteria, sampled", [
    (None, None, False),  # every stored account
    (2, None, True),  # two of four
    (4, None, False),  # a sample as large as the store is every account
    (2, "score IS NULL OR score > 0", False),  # criteria: every account is read and tested
])
def test_an_engine_is_told_when_the_accounts_are_a_sample_of_the_stored_ones(
        stored, sample, criteria, sampled):  # noqa: F811
    """An engine that reads every stored account's events (Spark, from an export) filters them
    first only for a sample: for every account the filter costs more than it saves."""
    from jiefeng.policy.schema import default_policy
    from jiefeng.service import backtest as service_backtest
    from jiefeng.service.engine import Engine

    db, _ = stored
    store = SqlStore(db, upgrade=False)
    seen: list[tuple[bool, int]] = []

    def engine(context, account_ids, workers, progress, collector):
        seen.append((context.accounts_sampled, len(account_ids)))

    spec = service_backtest.BacktestSpec(default_policy(), default_policy(), sample=sample,
                                         criteria=criteria)
    service_backtest.run_backtest(db, store, Engine(store).scopes(), spec, engine=engine)
    store.close()
    assert seen == [(sampled, 2 if sampled else 4)]


# --- frozen_by_day ---------------------------------------------------------------------------

_WINDOW = B.Window(dt.datetime(2025, 3, 1, 5, tzinfo=dt.UTC),
                   dt.datetime(2025, 11, 20, 3, tzinfo=dt.UTC))


def _day_by_day(runs, window, timezone):
    """What frozen_by_day must give, the plain way: every day of every hold visited."""
    tz = ZoneInfo(timezone)
    first, last = window.start.astimezone(tz).date(), window.end.astimezone(tz).date()
    days = {first + dt.timedelta(days=n): {} for n in range((last - first).days + 1)}
    for run in runs:
        for i in run.intervals:
            if i.start > window.end or (i.end is not None and i.end <= window.start):
                continue
            day = max(first, i.start.astimezone(tz).date())
            end = last if i.end is None else min(
                last, (i.end - dt.timedelta(microseconds=1)).astimezone(tz).date())
            while day <= end:
                days[day].setdefault(i.code, set()).add(run.account_id)
                day += dt.timedelta(days=1)
    return {d.isoformat(): {code: len(accounts) for code, accounts in sorted(c.items())}
            for d, c in days.items()}


_instants = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2026, 1, 31),
                         timezones=st.just(dt.UTC))
_intervals = st.builds(
    lambda code, start, length_s, still_open: B.Interval(
        code, start, None if still_open else start + dt.timedelta(seconds=length_s), None),
    st.sampled_from(["overdue", "dormant", "password_lock"]), _instants,
    st.one_of(st.just(0), st.integers(0, 400 * 86_400)), st.booleans())


@given(st.lists(st.lists(_intervals, max_size=4), max_size=12),
       st.sampled_from(["Asia/Shanghai", "America/New_York", "UTC"]))
def test_frozen_by_day_counts_each_account_on_each_day_a_hold_touches(interval_lists, timezone):
    runs = [B.AccountRun(f"A{n}", intervals) for n, intervals in enumerate(interval_lists)]
    got = B.frozen_by_day(runs, _WINDOW, timezone)
    # Byte for byte, as backtest.json holds it: the same days and codes in the same order.
    assert json.dumps(got) == json.dumps(_day_by_day(runs, _WINDOW, timezone))


def test_frozen_by_day_at_the_window_edges_and_midnight():
    tz = ZoneInfo("Asia/Shanghai")
    midnight = dt.datetime(2025, 6, 2, tzinfo=tz).astimezone(dt.UTC)
    runs = [B.AccountRun("A", [
        B.Interval("overdue", midnight, midnight, None),  # placed and released at once
        B.Interval("dormant", midnight, midnight + dt.timedelta(days=1), None),  # one day
        B.Interval("password_lock", _WINDOW.end, None, None),  # from the window's last instant
        B.Interval("score_below_threshold", _WINDOW.start - dt.timedelta(days=9),
                   _WINDOW.start, None),  # released as the window opens: not in it
    ])]
    days = B.frozen_by_day(runs, _WINDOW, "Asia/Shanghai")
    assert days["2025-06-02"] == {"dormant": 1}
    assert days["2025-06-01"] == {} and days["2025-06-03"] == {}
    assert days["2025-11-20"] == {"password_lock": 1}
    assert days["2025-03-01"] == {}
    assert all("overdue" not in counts for counts in days.values())
    assert all("score_below_threshold" not in counts for counts in days.values())


def test_an_account_locked_twice_in_one_day_counts_once_that_day():
    tz = ZoneInfo("Asia/Shanghai")
    morning = dt.datetime(2025, 6, 2, 9, tzinfo=tz).astimezone(dt.UTC)
    twice = B.AccountRun("A", [
        B.Interval("password_lock", morning, morning + dt.timedelta(hours=3), "time"),
        B.Interval("password_lock", morning + dt.timedelta(hours=5),
                   morning + dt.timedelta(days=1, hours=5), "time"),
    ])
    other = B.AccountRun("B", [B.Interval("password_lock", morning, None, None)])
    days = B.frozen_by_day([twice, other], _WINDOW, "Asia/Shanghai")
    assert days["2025-06-02"] == {"password_lock": 2}  # A once, B once
    assert days["2025-06-03"] == {"password_lock": 2}
    assert days["2025-06-04"] == {"password_lock": 1}  # B only
