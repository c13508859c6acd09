"""An account's remembered windows: trimmed by time and by count, and small when empty.

The ingest and serve caches hold tens of thousands of states, so what an idle account costs
is a property users rely on (issue 10 §4): a bound on memory, not a timing."""

from __future__ import annotations

import datetime as dt
import pickle
import sys
from dataclasses import fields

import pytest

from jiefeng.domain.holdbook import trim
from jiefeng.domain.remembered import RememberedPurchases
from jiefeng.domain.state import MAX_WINDOW_ITEMS, AccountState, PurchaseRecord

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
YEAR_US = 365 * 86_400 * 1_000_000
TEN_DAYS_US = 10 * 86_400 * 1_000_000
MINUTE = dt.timedelta(minutes=1)


def test_trim_drops_what_is_older_than_the_horizon_and_keeps_the_order() -> None:
    window = [(T0 + n * MINUTE, f"p{n}") for n in range(10)]
    trim(window, T0 + 4 * MINUTE)
    assert [ref for _, ref in window] == [f"p{n}" for n in range(4, 10)]


def test_trim_keeps_an_item_exactly_at_the_horizon() -> None:
    window = [T0, T0 + MINUTE]
    trim(window, T0 + MINUTE)
    assert window == [T0 + MINUTE]


def test_trim_caps_a_window_at_its_newest_items() -> None:
    window = [T0 + n * MINUTE for n in range(MAX_WINDOW_ITEMS + 7)]
    trim(window, T0)
    assert len(window) == MAX_WINDOW_ITEMS
    assert window[0] == T0 + 7 * MINUTE and window[-1] == T0 + (MAX_WINDOW_ITEMS + 6) * MINUTE


def test_trim_of_an_empty_window_or_one_all_older_than_the_horizon() -> None:
    empty: list = []
    trim(empty, T0)
    assert empty == []
    old = [(T0, "a"), (T0 + MINUTE, "b")]
    trim(old, T0 + 2 * MINUTE)
    assert old == []


def test_a_new_accounts_empty_windows_cost_little_memory() -> None:
    """Eleven empty deques were 8 KB of every cached state; empty lists are 56 bytes each."""
    state = AccountState("A1")
    # From the dataclass fields: a compiled AccountState (`make native`) has no `__slots__`.
    windows = [getattr(state, f.name) for f in fields(AccountState)
               if isinstance(getattr(state, f.name), list)]
    assert len(windows) >= 11
    assert sum(sys.getsizeof(w) for w in windows) <= 100 * len(windows)


def test_a_clone_copies_the_windows_and_shares_their_items() -> None:
    state = AccountState("A1")
    state.recent_repayments.append((T0, 100, "r1"))
    copy = state.clone()
    copy.recent_repayments.append((T0 + MINUTE, 200, "r2"))
    assert state.recent_repayments == [(T0, 100, "r1")]
    assert copy.recent_repayments[0] is state.recent_repayments[0]


def test_a_clone_copies_the_remembered_purchases() -> None:
    state = AccountState("A1")
    state.purchases["p1"] = PurchaseRecord("p1", T0, 1_000, "M1")
    copy = state.clone()
    copy.purchases["p2"] = PurchaseRecord("p2", T0 + MINUTE, 2_000, "M2")
    copy.purchases["p1"] = PurchaseRecord("p1", T0, 1_000, "M1", refunded_fen=400)
    assert list(state.purchases) == ["p1"] and state.purchases["p1"].refunded_fen == 0
    assert list(copy.purchases) == ["p1", "p2"] and copy.purchases["p1"].refunded_fen == 400


# --- remembered purchases are kept packed ----------------------------------------------------


def _records(count: int, step: dt.timedelta = dt.timedelta(hours=7)) -> list[PurchaseRecord]:
    return [PurchaseRecord(f"p{n}", T0 + n * step + n * dt.timedelta(microseconds=13),
                           100 + n, f"M{n % 3}", n % 2 * 50, "plan-1" if n % 5 == 0 else None)
            for n in range(count)]


def test_remembered_purchases_read_back_the_records_stored() -> None:
    records = _records(40)
    purchases = RememberedPurchases()
    for record in records:
        purchases[record.event_id] = record
    assert len(purchases) == 40 and "p7" in purchases and "p40" not in purchases
    assert purchases["p7"] == records[7]
    assert purchases.get("p40") is None and purchases.get("p40", "none") == "none"
    assert purchases.values() == records
    assert purchases == {r.event_id: r for r in records}
    assert purchases.since(T0)[0] == (records[0].at, "p0")
    purchases.remember("p40", records[-1].at, 1, "M0", span_us=YEAR_US, keep_at_most=40)
    assert list(purchases)[0] == "p1" and purchases.since(T0)[0] == (records[1].at, "p1")


def test_remembered_purchases_answer_time_windows_as_the_records_would() -> None:
    records = _records(60)
    purchases = RememberedPurchases({r.event_id: r for r in records})
    for since in (T0 - MINUTE, records[0].at, records[17].at, records[17].at + MINUTE,
                  records[-1].at, records[-1].at + MINUTE):
        inside = [(r.at, r.event_id) for r in records if r.at >= since]
        assert purchases.since(since) == inside
        assert purchases.count_since(since) == len(inside)
        assert purchases.first_at_since(since) == (inside[0][0] if inside else None)
    assert list(purchases.newest_first()) == [(r.at, r.event_id) for r in reversed(records)]


def test_remembered_purchases_survive_a_snapshot_and_compare_packed() -> None:
    for count in (0, 1, 25):
        purchases = RememberedPurchases({r.event_id: r for r in _records(count)})
        restored = pickle.loads(pickle.dumps(purchases, protocol=5))
        assert restored == purchases and restored.values() == purchases.values()
        assert restored.since(T0) == purchases.since(T0)


def test_remembered_purchases_refuse_what_a_fold_never_does() -> None:
    """Purchases are approved in time order and a refund or plan replaces a record at its
    instant: anything else would break the windows read from them, so it is refused."""
    purchases = RememberedPurchases()
    purchases["p2"] = PurchaseRecord("p2", T0 + MINUTE, 100, "M1")
    with pytest.raises(ValueError, match="older than the last"):
        purchases["p1"] = PurchaseRecord("p1", T0, 100, "M1")
    with pytest.raises(ValueError, match="keeps its instant"):
        purchases["p2"] = PurchaseRecord("p2", T0 + 2 * MINUTE, 100, "M1")
    with pytest.raises(ValueError, match="stored under"):
        purchases["p3"] = PurchaseRecord("p4", T0 + 2 * MINUTE, 100, "M1")
    assert list(purchases) == ["p2"] and purchases.problem(T0 + MINUTE) is None


def test_a_remembered_purchase_is_a_fraction_of_a_record_object() -> None:
    """A record object with its datetime and ints was about 290 bytes a purchase, and the
    90-day window kept each purchase a second time; ids included, now under 100."""
    purchases = RememberedPurchases({r.event_id: r for r in _records(35)})
    hot = purchases._hot
    held_bytes = (sys.getsizeof(purchases._cold) + sum(map(sys.getsizeof, purchases._cold))
                  + sys.getsizeof(hot) + sum(sys.getsizeof(k) for k in hot)
                  + sum(sys.getsizeof(v) + sum(map(sys.getsizeof, v)) for v in hot.values())
                  + sys.getsizeof(purchases._at_us))
    assert held_bytes / 35 <= 100, held_bytes


# --- settled statements are kept packed ------------------------------------------------------


def test_a_packed_statement_unpacks_to_an_equal_statement() -> None:
    from jiefeng.domain.ledger import Statement, pack_statement, unpack_statement

    full = Statement(dt.date(2026, 1, 1), dt.date(2026, 1, 9), 12, 345, 6_789, 1_234_567,
                     12, 345, 6_789, 1_234_567, 1_240_000, 124_000, 1_234_567, 0, 7_146,
                     1_300_000, True, False, T0 + MINUTE,
                     dt.datetime(2026, 2, 3, 4, 5, 6, 789, tzinfo=dt.UTC), True, False)
    bare = Statement(dt.date(2026, 2, 1), dt.date(2026, 2, 9))
    for statement in (full, bare):
        back = unpack_statement(pack_statement(statement))
        assert back == statement
        assert back.cured_at is None or back.cured_at.tzinfo is dt.UTC
    assert sys.getsizeof(pack_statement(full)) < 250  # against about 470 as an object


def test_settled_statements_stay_in_date_order_and_bounded() -> None:
    from jiefeng.domain.ledger import (
        MAX_STATEMENT_HISTORY,
        Ledger,
        Statement,
        retire_settled,
    )

    ledger = Ledger()
    months = [dt.date(2025 + (m - 1) // 12, (m - 1) % 12 + 1, 1) for m in range(1, 16)]
    # Settled out of order: a later statement first, then the earlier ones.
    for batch in (months[10:], months[:10]):
        ledger.statements = [Statement(d, d + dt.timedelta(days=8), judged=True,
                                       paid_in_full=True) for d in batch]
        retire_settled(ledger)
    assert ledger.statements == []
    assert [s.statement_date for s in ledger.history] == months[-MAX_STATEMENT_HISTORY:]
    assert ledger.latest_statement().statement_date == months[-1]


def test_remembering_a_purchase_forgets_by_horizon_and_by_count() -> None:
    """The fold's path: a new purchase is remembered, then those older than the span before
    it or beyond the count are forgotten, oldest first."""
    purchases = RememberedPurchases()
    step = dt.timedelta(days=1)
    for n in range(30):
        purchases.remember(f"p{n}", T0 + n * step, 100 + n, "M1", span_us=TEN_DAYS_US,
                           keep_at_most=25)
    assert list(purchases) == [f"p{n}" for n in range(19, 30)]  # within 10 days of p29
    assert purchases["p19"] == PurchaseRecord("p19", T0 + 19 * step, 119, "M1")
    for n in range(30, 60):
        purchases.remember(f"p{n}", T0 + 29 * step, 100, "M1", span_us=TEN_DAYS_US, keep_at_most=25)
    assert len(purchases) == 25 and list(purchases)[-1] == "p59"
    with pytest.raises(ValueError, match="older than the last"):
        purchases.remember("late", T0, 100, "M1", span_us=TEN_DAYS_US, keep_at_most=25)
    with pytest.raises(ValueError, match="already remembered"):
        purchases.remember("p59", T0 + 29 * step, 100, "M1", span_us=TEN_DAYS_US, keep_at_most=25)
    assert purchases.problem(T0 + 29 * step) is None


def test_older_purchases_packed_together_read_and_change_as_the_newest_do() -> None:
    """The newest HOT_PURCHASES are packed one by one, the older ones together: a refund or a
    plan on either, forgetting across both and a snapshot give what a dict of records
    would."""
    from jiefeng.domain.remembered import HOT_PURCHASES

    step = dt.timedelta(hours=5)
    purchases = RememberedPurchases()
    plain: dict[str, PurchaseRecord] = {}
    for n in range(3 * HOT_PURCHASES + 3):
        purchases.remember(f"p{n}", T0 + n * step, 100 + n, f"M{n % 4}",
                           span_us=YEAR_US, keep_at_most=512)
        plain[f"p{n}"] = PurchaseRecord(f"p{n}", T0 + n * step, 100 + n, f"M{n % 4}")
    assert purchases._cold and len(purchases._hot) <= HOT_PURCHASES
    for event_id in ("p2", f"p{3 * HOT_PURCHASES + 1}"):  # one packed together, one alone
        changed = PurchaseRecord(event_id, plain[event_id].at, plain[event_id].amount_fen,
                                 plain[event_id].merchant_id, refunded_fen=40, plan_id="PL")
        purchases[event_id] = plain[event_id] = changed
    assert purchases == plain and purchases.values() == list(plain.values())
    assert purchases.get("p2").refunded_fen == 40 and "p2" in purchases
    # Forget the five oldest (a count bound), across the packed-together ones.
    purchases.remember("new", T0 + 40 * step, 1, "M0", span_us=YEAR_US,
                       keep_at_most=len(plain) - 4)
    plain["new"] = PurchaseRecord("new", T0 + 40 * step, 1, "M0")
    for event_id in list(plain)[:5]:
        del plain[event_id]
    assert list(purchases) == list(plain) and purchases == plain
    assert purchases.get("p0") is None and "p4" not in purchases
    assert purchases.since(T0) == [(r.at, r.event_id) for r in plain.values()]
    restored = pickle.loads(pickle.dumps(purchases, protocol=5))
    assert restored == purchases and restored.problem(T0 + 40 * step) is None
    copy = purchases.copy()
    copy.remember("later", T0 + 41 * step, 1, "M0", span_us=YEAR_US,
                  keep_at_most=512)
    assert "later" in copy and "later" not in purchases
    assert [at for at, _ in purchases.newest_first()] == sorted(
        (r.at for r in plain.values()), reverse=True)
