"""The order the events of a file (or request) of more than one transaction are decided in:
account by account, between the portfolio's barriers.

Accounts do not read each other: an account's decisions depend on its own events, in time
order, and on the portfolio's operator commands, which the fold reads at their times (a
window is known from `known_at`, a campaign from its start, a policy from its activation).
So a file need not be decided in one global time order, only each account in its own:

1. The file is cut into segments at its barriers, the commands that act on every account at
   once: policy sweeps (every account is advanced to the sweep) and policy activations (taken
   under the locks). A barrier opens the segment it starts; lines before it are decided
   before it, as in time order.
2. Within a segment, the portfolio's lines come first, in time order: the other operator
   commands, and the lines whose account cannot be read (unreadable, or an appeal decision
   whose appeal is not known). Then each account's lines in time order, accounts by id.
3. Ties keep line order; a repeat of an event_id travels with its first line.

Why: in one global time order every transaction holds a little of every account, so each
transaction loads, writes and snapshots most of the portfolio, and a state cache smaller than
the portfolio reloads most accounts at every transaction. Account by account, an account is
loaded and written once or twice per segment, and memory holds the accounts of a transaction.
The decisions are those of time order: each account meets its own events in time order and
the commands at their times (the property tests compare them).
"""

from __future__ import annotations

import datetime as dt
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from operator import le
from typing import Any

from jiefeng.domain.event_kinds import SCOPE_TYPES

# Commands that act on every account at once: lines before one are decided before it.
BARRIER_TYPES = frozenset({"policy_sweep", "policy_activated"})
PORTFOLIO = -1  # the group of a segment's portfolio lines: decided first in it
TIE_RANKS = 4  # `tie_rank` is 0, 1 or 2: two bits of a packed key
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)
_KEY_OFFSET = 1 << 63  # a packed key (int64) made non-negative
_GROUP_SHIFT = 64
_SEGMENT_SHIFT = 96  # groups are below 2**31: an account index, or PORTFOLIO


def owner_of(account_id: str) -> int:
    """Which of a pipelined ingest's two folding processes (0: the command's, 1: its helper;
    see jiefeng.service.pipeline) folds an account's lines, for the whole file: a CRC-32 of
    the id, the same in every process (Python's own hash is salted per process)."""
    return zlib.crc32(account_id.encode("utf-8")) & 1


def line_owners(account_ids: Sequence[str], groups: Sequence[int]) -> array:
    """Each line's folding process (`owner_of` the account of its group; -1 for the
    portfolio's lines), one byte a line, from a file's groups (indices into `account_ids`)."""
    owner = [owner_of(account_id) for account_id in account_ids]
    return array("b", [-1 if group == PORTFOLIO else owner[group] for group in groups])


def packed_key(at: dt.datetime, rank: int) -> int:
    """(at, rank) as one int64 that sorts as the pair does: microseconds since 1970 (UTC)
    times TIE_RANKS, plus the rank. Years 1 to 9999 fit: |microseconds| < 2.6e17."""
    assert 0 <= rank < TIE_RANKS
    return ((at - EPOCH) // MICROSECOND) * TIE_RANKS + rank


def line_routing(kind: str, account_id: str | None,
                 appeal_id: str | None) -> tuple[str | None, str | None]:
    """Where a line goes, read without validating it: (its account, None); or (None, an
    appeal id) for an appeal decision sent without an account_id, which joins its appeal's
    account once that is known (`with_stored_appeals`); or (None, None) for the portfolio's
    lines: operator commands, and lines whose account is not known (validation rejects most
    of them)."""
    if kind in SCOPE_TYPES:
        return None, None
    if account_id is not None:
        return account_id, None
    if kind == "appeal_decided" and appeal_id is not None:
        return None, appeal_id
    return None, None


def line_account(kind: str, account_id: str | None, appeal_id: str | None,
                 appeals: Mapping[str, str]) -> str | None:
    """The account whose group a line joins (`line_routing`), or None for the portfolio's
    lines; `appeals`: appeal id -> account, from the file's submissions and the store."""
    account, appeal = line_routing(kind, account_id, appeal_id)
    return account if appeal is None else appeals.get(appeal)


AppealResolver = Callable[[list[str]], dict[str, str]]  # appeal ids -> their accounts


def with_stored_appeals(submitted: dict[str, str], decided: Iterable[str],
                        resolve_appeals: AppealResolver | None) -> dict[str, str]:
    """`submitted` (appeal id -> account, from the items) plus what `resolve_appeals` knows
    of the `decided` appeals (those that decisions without an account_id name) that the
    items do not submit."""
    unknown = sorted({appeal_id for appeal_id in decided if appeal_id not in submitted})
    if resolve_appeals is None or not unknown:
        return submitted
    return {**resolve_appeals(unknown), **submitted}


def segment_of(key: int, barrier_keys: Sequence[int]) -> int:
    """The segment a line of this key is in: the number of barriers at or before it (a
    barrier opens its own segment). `barrier_keys` sorted."""
    return bisect_right(barrier_keys, key)


def sort_key(key: int, group: int, barrier_keys: Sequence[int]) -> int:
    """(segment, group, key) as one int that sorts as the triple does."""
    return ((segment_of(key, barrier_keys) << _SEGMENT_SHIFT)
            | ((group + 1) << _GROUP_SHIFT) | (key + _KEY_OFFSET))


def account_order(keys: Sequence[int], groups: Sequence[int],
                  barrier_keys: Sequence[int]) -> Sequence[int]:
    """Line indices in decision order (see the module's docstring). `keys[i]` is line i's
    packed (time, tie rank), `groups[i]` its account's rank (accounts by id) or PORTFOLIO; a
    repeat carries its first line's. Stable: ties keep line order."""
    barriers = sorted(barrier_keys)
    combined = [sort_key(key, group, barriers) for key, group in zip(keys, groups, strict=True)]
    if all(map(le, combined, islice(combined, 1, None))):
        return range(len(combined))  # already in order
    return sorted(range(len(combined)), key=combined.__getitem__)


def account_ranks(account_ids: Sequence[str]) -> list[int]:
    """The rank of each of these distinct ids among them, sorted: a file's groups do not
    depend on where its accounts first appear."""
    ranks = [0] * len(account_ids)
    for rank, index in enumerate(sorted(range(len(account_ids)), key=account_ids.__getitem__)):
        ranks[index] = rank
    return ranks


def in_time_by_group(keys: Sequence[int], groups: Sequence[int], group_count: int) -> bool:
    """Whether each group's lines are in time order (its keys non-decreasing), which is what
    `account_order_of_timed` needs. A file in time order is, and so is one in time order but
    for ties (an account opened at the instant of another's purchase comes after it) or one
    written account after account. Groups are below `group_count`, or PORTFOLIO."""
    last = [-_KEY_OFFSET] * (group_count + 1)  # PORTFOLIO's at 0
    for key, group in zip(keys, groups, strict=True):
        if key < last[group + 1]:
            return False
        last[group + 1] = key
    return True


def account_order_of_timed(keys: Sequence[int], groups: Sequence[int],
                           barrier_keys: Sequence[int], group_count: int) -> Sequence[int]:
    """`account_order` for lines already in time order within each group
    (`in_time_by_group`), as most files are: a stable counting sort by (segment, group), in
    two passes and one int64 a line (`account_order` holds a Python int a line, a sort needs
    more). Groups are below `group_count`, or PORTFOLIO."""
    counted = _counted(keys, groups, barrier_keys, group_count)
    return range(len(keys)) if counted is None else counted[0]


def account_order_of_any(keys: Sequence[int], groups: Sequence[int],
                         barrier_keys: Sequence[int], group_count: int) -> Sequence[int]:
    """`account_order` for lines in any order: counted into place by (segment, group) as
    `account_order_of_timed` does, then each (segment, group)'s lines sorted by key (stably:
    ties keep line order), one account's lines at a time. One int64 a line, as counting.

    Arrow sorted these files before: importing it took longer than this whole sort up to
    about a million lines (100,000 lines: 0.05 s against 0.24-0.28 s with the import;
    1,000,000: 0.51 against 0.38-0.40 s), and the process peaked at twice the memory."""
    counted = _counted(keys, groups, barrier_keys, group_count)
    if counted is None:  # one (segment, group): the whole file is one run to sort
        order: Any = array("q", range(len(keys)))
        bounds = [0, len(keys)]
    else:
        order, bounds = counted
    by_key = keys.__getitem__
    for start, end in zip(bounds, bounds[1:], strict=False):
        if end - start < 2:
            continue
        run = order[start:end]
        run_keys = [by_key(index) for index in run]
        if not all(map(le, run_keys, islice(run_keys, 1, None))):
            order[start:end] = array("q", sorted(run, key=by_key))
    return order


def _counted(keys: Sequence[int], groups: Sequence[int], barrier_keys: Sequence[int],
             group_count: int) -> tuple[array, list[int]] | None:
    """Line indices counted into place by (segment, group), stably, and where each
    (segment, group)'s lines start (its last entry the line count); None if all the lines
    share one (segment, group): they are in place already."""
    barriers = sorted(barrier_keys)
    buckets = group_count + 1  # PORTFOLIO first
    counts = [0] * ((len(barriers) + 1) * buckets)
    for bucket in _buckets(keys, groups, barriers, buckets):
        counts[bucket] += 1
    if max(counts, default=0) == len(keys):
        return None  # one account (or only the portfolio's lines): as they are
    starts = counts  # counts become each bucket's next place
    bounds = [0]
    place = 0
    for bucket, count in enumerate(counts):
        starts[bucket], place = place, place + count
        if count:
            bounds.append(place)
    order = array("q", bytes(8 * len(keys)))
    for index, bucket in enumerate(_buckets(keys, groups, barriers, buckets)):
        order[starts[bucket]] = index
        starts[bucket] += 1
    return order, bounds


def _buckets(keys: Sequence[int], groups: Sequence[int], barriers: list[int],
             buckets: int) -> Iterator[int]:
    """Each line's (segment, group) as one number."""
    if not barriers:
        for group in groups:
            yield group + 1
        return
    for key, group in zip(keys, groups, strict=True):
        yield bisect_right(barriers, key) * buckets + group + 1


def int64_view(values: array) -> Any:
    """An arrow view of an array('q') (no copy): arrow sorts and compares in C++. Imported
    here: a file of one transaction never needs it (about 45 MB and 0.15 s to import)."""
    import pyarrow as pa

    assert values.itemsize == 8
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def transaction_batches(items: Sequence[Any], batch_events: int) -> list[Sequence[Any]]:
    """Cut `items` into transactions: every `batch_events` items from the start, except that
    when there is more than one, the end is cut in halves: a half, a quarter, ... down to a
    thirty-second of a transaction.

    A pipelined run ends waiting for the writer, which commits a batch in about half the time
    folding it took: each batch at the end is committed while the next, half its size, is
    folded, and the last wait is for the smallest. Both paths cut the same way, so they report
    the same results.
    """
    if len(items) <= batch_events:
        return [items] if items else []
    tails = [size for size in (batch_events >> shift for shift in range(1, 6)) if size]
    body = len(items) - sum(tails)  # > 0: the tails add up to less than one transaction
    starts = list(range(0, body, batch_events))
    position = body
    if tails and body - starts[-1] + tails[0] <= batch_events:  # none: batches of one event
        # The body's last batch is short: the first half joins it.
        position += tails[0]
        tails = tails[1:]
    ends = [*starts[1:], position]
    batches = [items[start:end] for start, end in zip(starts, ends, strict=True)]
    for size in tails:
        batches.append(items[position : position + size])
        position += size
    return batches
