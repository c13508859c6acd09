"""An account's remembered windows: trimmed by time and by count, and small when empty.

The ingest and serve caches hold tens of thousands of states, so what an idle account costs
is a property users rely on (issue 10 §4): a bound on memory, not a timing."""

from __future__ import annotations

import datetime as dt
import sys

from jiefeng.domain.holdbook import trim
from jiefeng.domain.state import MAX_WINDOW_ITEMS, AccountState

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
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
    windows = [getattr(state, name) for name in AccountState.__slots__  # type: ignore[attr-defined]
               if isinstance(getattr(state, name), list)]
    assert len(windows) >= 11
    assert sum(sys.getsizeof(w) for w in windows) <= 100 * len(windows)


def test_a_clone_copies_the_windows_and_shares_their_items() -> None:
    state = AccountState("A1")
    state.recent_purchases.append((T0, "p1"))
    copy = state.clone()
    copy.recent_purchases.append((T0 + MINUTE, "p2"))
    assert state.recent_purchases == [(T0, "p1")]
    assert copy.recent_purchases[0] is state.recent_purchases[0]


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
