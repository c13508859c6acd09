"""A file of many transactions is decided account by account between the portfolio's barriers
(jiefeng.service.decision_order), and decides what one global time order decides: the same
purchase outcomes, states, effects and appeals, whatever the order of its lines."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.domain.scopes import SCOPE_TYPES
from jiefeng.service import decision_order as ordering
from jiefeng.service.decision_order import PORTFOLIO
from jiefeng.service.event_file import scan
from jiefeng.service.ingest import decision_batches, decision_order, ingest
from test_pipeline import _contents, _engine, second_url  # noqa: F401  (fixture)

BATCH = 250


def _portfolio(seed: int = 5) -> list[dict]:
    """A portfolio up to 45 days past the policy sweep of month six: a maintenance window, a
    migration, appeals (their decisions without an account_id) and every freeze cause."""
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    events = generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=seed))
    sweep = next(e for e in events if e["type"] == "policy_sweep")
    end = dt.datetime.fromisoformat(sweep["at"]) + dt.timedelta(days=45)
    events = [e for e in events if dt.datetime.fromisoformat(e["at"]) < end]
    kinds = {e["type"] for e in events}
    assert {"policy_sweep", "maintenance_scheduled", "migration_started"} <= kinds
    assert any(e["type"] == "appeal_decided" and "account_id" not in e for e in events)
    assert len(events) <= 10_000  # one transaction holds the whole file: the time order
    return events


def _lines(events: list[dict], seed: int) -> list[tuple[int, str]]:
    """The events as file lines, shuffled, with a resend of a command far from its first."""
    lines = [json.dumps(e, ensure_ascii=False) for e in events]
    random.Random(seed).shuffle(lines)
    command = next(line for line in lines if '"maintenance_scheduled"' in line)
    lines.insert(len(lines) - 3, command)
    return list(enumerate(lines, start=1))


# --- the order --------------------------------------------------------------------------------


def test_accounts_come_one_after_the_other_between_barriers_commands_first() -> None:
    def line(n, kind, at, account=None, **more):
        event = {"event_id": f"e{n}", "type": kind, "at": f"2026-01-0{at}T00:00:00+00:00",
                 **({"account_id": account} if account else {}), **more}
        return n, json.dumps(event)

    items = [
        line(1, "purchase", 3, "B"),
        line(2, "purchase", 1, "B"),
        line(3, "login", 2, "A"),
        line(4, "maintenance_scheduled", 4),  # a command: first in its segment
        line(5, "policy_sweep", 5),  # a barrier: lines before it are decided before it
        line(6, "purchase", 6, "A"),
        line(7, "appeal_submitted", 2, "C", appeal_id="P1"),
        line(8, "appeal_decided", 8, appeal_id="P1"),  # joins C, at its time
        line(9, "appeal_decided", 8, appeal_id="P-unknown"),  # no account: the portfolio's
        line(10, "purchase", 7, "B"),
        (11, "not json"),  # unreadable: first
        line(12, "purchase", 5, "A"),  # at the barrier's instant, after it (tie rank)
    ]
    order = [n for n, _ in decision_order(items)]
    assert order == [11, 4, 3, 2, 1, 7,  # segment 0: the command, then A, B, C by id
                     5, 9, 12, 6, 10, 8]  # segment 1: the sweep, the unknown appeal, A, B, C


def test_an_appeal_of_the_store_joins_its_account() -> None:
    items = [(1, json.dumps({"event_id": "d", "type": "appeal_decided", "appeal_id": "P9",
                             "at": "2026-01-02T00:00:00+00:00", "decision": "approve",
                             "actor": "op"})),
             (2, json.dumps({"event_id": "a", "type": "login", "account_id": "A",
                             "at": "2026-01-01T00:00:00+00:00", "device_id": "D"})),
             (3, json.dumps({"event_id": "z", "type": "login", "account_id": "Z",
                             "at": "2026-01-03T00:00:00+00:00", "device_id": "D"}))]
    asked = []

    def resolve(appeal_ids):
        asked.append(appeal_ids)
        return {"P9": "Z"}

    assert [n for n, _ in decision_order(items)] == [1, 2, 3]  # unknown: the portfolio's
    assert [n for n, _ in decision_order(items, resolve)] == [2, 1, 3]  # Z's, at its time
    assert asked == [["P9"]]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(-1, 4)), min_size=2, max_size=60),
       st.lists(st.integers(0, 50), max_size=3), st.booleans())
def test_counting_lines_in_time_order_into_place_is_the_sort(lines, barriers, globally) -> None:
    """The file path counts lines in time order into place (one int64 a line): globally, or
    only within each account (accounts interleaved, out of step with each other). It gives
    what sorting by (segment, group, key) stably gives."""
    if globally:
        keys = sorted(key * 4 for key, _ in lines)
    else:  # each group's keys sorted among its own lines only
        by_group: dict[int, list[int]] = {}
        for key, group in lines:
            by_group.setdefault(group, []).append(key * 4)
        taken = {group: iter(sorted(values)) for group, values in by_group.items()}
        keys = [next(taken[group]) for _, group in lines]
    groups = [group for _, group in lines]
    assert ordering.in_time_by_group(keys, groups, 5)
    barrier_keys = [b * 4 for b in barriers]
    expected = ordering.account_order(keys, groups, barrier_keys)
    counted = ordering.account_order_of_timed(array("q", keys), array("i", groups),
                                              barrier_keys, 5)
    assert list(counted) == list(expected)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(-1, 4)), min_size=2, max_size=80),
       st.lists(st.integers(0, 12), max_size=3))
def test_lines_in_any_order_are_counted_then_sorted_account_by_account_as_one_sort(
        lines, barriers) -> None:
    """A file not in time order is counted into place by (segment, group), then each one's
    lines sorted by key: what sorting by (segment, group, key) stably gives, ties (many here:
    keys from a small range) in line order."""
    keys = [key * 4 for key, _ in lines]
    groups = [group for _, group in lines]
    barrier_keys = [b * 4 for b in barriers]
    expected = ordering.account_order(keys, groups, barrier_keys)
    ordered = ordering.account_order_of_any(array("q", keys), array("i", groups),
                                            barrier_keys, 5)
    assert list(ordered) == list(expected)


def test_one_account_s_lines_out_of_order_are_sorted_in_place() -> None:
    # All lines share one (segment, group): nothing to count, only the one run to sort.
    ordered = ordering.account_order_of_any(array("q", [8, 4, 4, 0]), array("i", [2] * 4), [],
                                            3)
    assert list(ordered) == [3, 1, 2, 0]
    assert list(ordering.account_order_of_any(array("q", [5]), array("i", [0]), [], 1)) == [0]


def test_a_group_that_goes_back_in_time_is_not_in_time() -> None:
    # Group 1 goes back (8 then 4), though group 0 and the portfolio (-1) do not.
    assert not ordering.in_time_by_group([0, 8, 2, 4, 9], [0, 1, -1, 1, 0], 2)
    assert not ordering.in_time_by_group([5, 3], [-1, -1], 0)
    assert ordering.in_time_by_group([5, 3], [-1, 0], 1)


def test_a_file_in_time_order_but_for_ties_is_counted_not_sorted(monkeypatch) -> None:
    """An account opened at the instant of another's purchase ranks before it (openings
    first at an instant); the file is still in time order account by account."""
    at = "2026-01-01T00:00:00+00:00"
    lines = [{"event_id": "o-A", "type": "account_opened", "account_id": "A", "at": at,
              "credit_limit": "100.00", "id_expires_on": "2030-01-01"},
             {"event_id": "p-A", "type": "purchase", "account_id": "A", "at": at,
              "amount": "1.00", "merchant_id": "M"},
             {"event_id": "o-B", "type": "account_opened", "account_id": "B", "at": at,
              "credit_limit": "100.00", "id_expires_on": "2030-01-01"},
             {"event_id": "p-B", "type": "purchase", "account_id": "B", "at": at,
              "amount": "1.00", "merchant_id": "M"}]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    monkeypatch.setattr(ordering, "account_order_of_any", None)  # never asked to sort
    with scan(io.BytesIO(data)) as indexed:
        assert list(indexed.decision_order(2)) == [0, 1, 2, 3]
    numbered = [(n, json.dumps(line)) for n, line in enumerate(lines, start=1)]
    assert [n for n, _ in decision_order(numbered)] == [1, 2, 3, 4]


@pytest.mark.parametrize("sort_by", ["counting", "sorting"])
def test_a_file_and_its_lines_in_memory_are_taken_in_one_order(sort_by) -> None:
    events = _portfolio()
    if sort_by == "counting":
        lines = [(n, json.dumps(e)) for n, e in enumerate(events, start=1)]  # in time order
    else:
        lines = _lines(events, seed=2)
    data = b"\n".join(line.encode() for _, line in lines)
    with scan(io.BytesIO(data)) as indexed:
        taken = [list(b) for b in indexed.batches(BATCH)]
    expected = [[(n, line.encode()) for n, line in b] for b in decision_batches(lines, BATCH)]
    assert taken == expected
    # Account by account: an account's lines are together in each segment.
    accounts = [json.loads(line).get("account_id") for b in taken for _, line in b]
    runs = sum(1 for a, b in zip(accounts, accounts[1:], strict=False) if a != b)
    assert runs < 3 * len(set(accounts))


def test_a_file_of_one_account_in_time_order_is_not_reordered(monkeypatch) -> None:
    lines = [json.dumps({"event_id": f"e{n}", "type": "login", "account_id": "A",
                         "device_id": "D", "at": f"2026-01-01T00:00:{n:02d}+00:00"})
             for n in range(40)]
    monkeypatch.setattr(ordering, "account_order_of_any", None)  # never asked to sort
    with scan(io.BytesIO("\n".join(lines).encode())) as indexed:
        assert indexed.decision_order(10) == range(40)


def test_a_line_goes_to_its_account_its_appeal_or_the_portfolio() -> None:
    """One rule for the file and the list path (`line_routing`)."""
    assert ordering.line_routing("purchase", "A", None) == ("A", None)
    assert ordering.line_routing("appeal_decided", None, "P1") == (None, "P1")  # routed later
    assert ordering.line_routing("appeal_decided", "A", "P1") == ("A", None)
    assert ordering.line_routing("maintenance_scheduled", None, None) == (None, None)
    assert ordering.line_routing("manual_hold_placed", "A", None) == ("A", None)
    assert ordering.line_routing("purchase", None, None) == (None, None)  # rejected later
    # Commands that change the scopes are the portfolio's, even naming an account.
    assert ordering.line_routing("migration_started", "A", None) == (None, None)
    assert ordering.BARRIER_TYPES <= SCOPE_TYPES  # a barrier is a portfolio line
    assert ordering.line_account("appeal_decided", None, "P1", {"P1": "B"}) == "B"
    assert ordering.line_account("appeal_decided", None, "P2", {"P1": "B"}) is None


def test_groups_do_not_depend_on_where_accounts_first_appear() -> None:
    assert ordering.account_ranks(["B", "C", "A"]) == [1, 2, 0]
    assert PORTFOLIO < 0  # the portfolio's lines sort before every account


# --- what it decides ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_account_by_account_decides_what_time_order_decides(
        db_url, second_url, seed) -> None:  # noqa: F811
    """The reference is one transaction holding the whole file: the batch decides its events
    in time order. Cut into transactions of 250, account by account, the file stores the same
    purchase outcomes, states, effects and appeals."""
    lines = _lines(_portfolio(), seed)
    reference = _engine(db_url)
    expected = ingest(reference.store, lines, reference.base_policy, reference.now,
                      reference.cache, reference.scope_cache, len(lines))
    grouped = _engine(second_url)
    report = ingest(grouped.store, lines, grouped.base_policy, grouped.now, grouped.cache,
                    grouped.scope_cache, BATCH)
    assert len(decision_batches(lines, BATCH)) > 10
    assert [(r.position, r.status, r.field) for r in report.results] == [
        (r.position, r.status, r.field) for r in expected.results]
    ours, theirs = _contents(grouped), _contents(reference)
    outcomes = {row[0]: row[6] for row in ours["events"]}
    assert outcomes == {row[0]: row[6] for row in theirs["events"]}
    assert sum(1 for o in outcomes.values() if o and o.startswith("declined")) > 0
    assert [row[:1] + row[2:6] for row in ours["accounts"]] == [
        row[:1] + row[2:6] for row in theirs["accounts"]]
    assert sorted(ours["effects"]) == sorted(theirs["effects"])
    assert ours["appeals"] == theirs["appeals"]
    assert grouped.replay(write=False).mismatched == []


def test_a_sweep_cuts_the_file_so_no_account_is_sent_back_in_time(
        db_url, monkeypatch) -> None:  # noqa: F811
    """A portfolio already stored, then a file with a sweep: the lines before the sweep are
    decided before it, so the sweep (which advances every account to its time) never leaves
    an account behind its next lines, and no account is replayed. Were the sweep taken
    with the other commands, first, every account with lines before it would be replayed."""
    import jiefeng.service.ingest as ingest_module

    events = _portfolio()
    sweep_at = dt.datetime.fromisoformat(
        next(e for e in events if e["type"] == "policy_sweep")["at"])
    split = sweep_at - dt.timedelta(days=20)
    first = [e for e in events if dt.datetime.fromisoformat(e["at"]) < split]
    second = [e for e in events if dt.datetime.fromisoformat(e["at"]) >= split]
    assert any(e["type"] == "purchase" for e in second
               if dt.datetime.fromisoformat(e["at"]) < sweep_at)
    engine = _engine(db_url)
    engine.ingest_file([(n, json.dumps(e)) for n, e in enumerate(first, start=1)],
                       pipelined=False)
    replays = []
    replay = ingest_module.replay_account
    monkeypatch.setattr(ingest_module, "replay_account",
                        lambda *args, **kwargs: replays.append(args[2]) or replay(*args,
                                                                                  **kwargs))
    shuffled = [json.dumps(e) for e in second]
    random.Random(4).shuffle(shuffled)
    lines = list(enumerate(shuffled, start=1))
    report = ingest(engine.store, lines, engine.base_policy, engine.now, engine.cache,
                    engine.scope_cache, BATCH)
    assert report.rejected == 0
    assert replays == []
    assert engine.replay(write=False).mismatched == []
