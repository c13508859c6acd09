"""Approved purchases an account remembers (for refunds, installment plans, appeals), packed.

An account remembers up to 180 days of approved purchases: about 35 for a typical card holder,
and they were the largest part of a cached state (a record object, its datetime and its ints
cost about 290 bytes each, and a window of the last 90 days kept (instant, id) pairs of the same
purchases again). A remembered purchase changes only on a refund or a conversion into an
installment plan, and is read only then (and by explanations), so only the newest few are
kept as small tuples and the older ones are marshal-packed eight at a time, unpacked on
access. Their instants are also kept in one array of int64,
in the same (time) order, so counting or listing the purchases since an instant (the 90-day
window) builds no record.
"""

from __future__ import annotations

import datetime as dt
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from jiefeng.domain.packing import pack, unpack


# Not frozen, for the speed of building one per approved purchase (see effects.Effect); a
# refund or an installment plan replaces the record, never changes it.
@dataclass(slots=True)
class PurchaseRecord:
    event_id: str
    at: dt.datetime
    amount_fen: int
    merchant_id: str
    refunded_fen: int = 0
    plan_id: str | None = None  # the installment plan it was converted into


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _micros(at: dt.datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def _instant(at_us: int) -> dt.datetime:
    return _EPOCH + at_us * _MICROSECOND


# The newest purchases are kept as tuples (the fold adds one per approved purchase, a refund or
# a plan usually concerns a recent one); each time this many have come, they are packed into
# one bytes object together (a chunk), so older ones cost about 35 bytes each.
HOT_PURCHASES = 8

_Entry = tuple  # (event_id, at_us, amount_fen, merchant_id, refunded_fen, plan_id)


class RememberedPurchases:
    """event id -> PurchaseRecord, stored packed, in time order: purchases are approved in the
    order of their instants, so a new one is never older than the last.

    Reads and writes whole records, as a dict of records would: a refund or a plan replaces
    the record (same instant, same place); nothing changes a record in place. The newest
    (at most HOT_PURCHASES) are tuples; the older ones are packed in chunks of
    HOT_PURCHASES entries, one marshal each (about 35 bytes a purchase against 180), the first
    `_cold_skip` entries of the first chunk already forgotten."""

    __slots__ = ("_cold", "_cold_skip", "_hot", "_at_us")

    def __init__(self, records: Mapping[str, PurchaseRecord] | None = None):
        self._cold: list[bytes] = []  # chunks: marshal of HOT_PURCHASES _Entry, oldest first
        self._cold_skip = 0  # entries of the first chunk already forgotten
        # event id -> (at_us, amount_fen, merchant_id, refunded_fen, plan_id): a few tuples, so
        # the fold's path packs nothing but a chunk now and then
        self._hot: dict[str, tuple] = {}
        self._at_us = array("q")  # instants of the purchases remembered, cold then hot
        for event_id, record in (records or {}).items():
            self[event_id] = record

    # --- the two tiers -------------------------------------------------------------------------

    def _cold_entries(self) -> list[_Entry]:
        entries: list[_Entry] = []
        for chunk in self._cold:
            entries.extend(unpack(chunk))
        return entries[self._cold_skip:]

    def _spill(self) -> None:
        """The hot purchases (HOT_PURCHASES of them) become one chunk."""
        self._cold.append(pack(tuple(
            (event_id, *values) for event_id, values in self._hot.items())))
        self._hot = {}

    def _entries(self) -> list[_Entry]:
        """Every remembered purchase, oldest first."""
        entries = self._cold_entries()
        entries.extend((event_id, *values) for event_id, values in self._hot.items())
        return entries

    def _find(self, event_id: str) -> _Entry | None:
        values = self._hot.get(event_id)
        if values is not None:
            return (event_id, *values)
        for entry in self._cold_entries():
            if entry[0] == event_id:
                return entry
        return None

    # --- the mapping ---------------------------------------------------------------------------

    def __getitem__(self, event_id: str) -> PurchaseRecord:
        entry = self._find(event_id)
        if entry is None:
            raise KeyError(event_id)
        return _record(entry)

    def get(self, event_id: str, default: Any = None) -> Any:
        entry = self._find(event_id)
        return default if entry is None else _record(entry)

    def __setitem__(self, event_id: str, record: PurchaseRecord) -> None:
        if record.event_id != event_id:
            raise ValueError(f"record {record.event_id} stored under {event_id}")
        at_us = _micros(record.at)
        entry = (event_id, at_us, record.amount_fen, record.merchant_id, record.refunded_fen,
                 record.plan_id)
        found = self._find(event_id)
        if found is None:
            if self._at_us and at_us < self._at_us[-1]:
                raise ValueError(f"purchase {event_id} is older than the last one remembered")
            self._add(event_id, entry)
            return
        if found[1] != at_us:
            raise ValueError(f"purchase {event_id}: a record keeps its instant")
        if event_id in self._hot:
            self._hot[event_id] = entry[1:]
            return
        for index, chunk in enumerate(self._cold):  # a refund or plan on an older purchase
            entries = unpack(chunk)
            if any(e[0] == event_id for e in entries):
                self._cold[index] = pack(
                    tuple(entry if e[0] == event_id else e for e in entries))
                return

    def _add(self, event_id: str, entry: _Entry) -> None:
        if len(self._hot) == HOT_PURCHASES:
            self._spill()
        self._hot[event_id] = entry[1:]
        self._at_us.append(entry[1])

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self._find(event_id) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._at_us)

    def keys(self) -> list[str]:
        return [entry[0] for entry in self._entries()]

    def values(self) -> list[PurchaseRecord]:
        return [_record(entry) for entry in self._entries()]

    def items(self) -> list[tuple[str, PurchaseRecord]]:
        return [(record.event_id, record) for record in self.values()]

    # --- what the fold needs cheaply ----------------------------------------------------------

    def remember(self, event_id: str, at: dt.datetime, amount_fen: int, merchant_id: str,
                 span_us: int, keep_at_most: int) -> None:
        """A newly approved purchase (not refunded, in no plan), then forget the oldest ones
        beyond `keep_at_most` or more than `span_us` microseconds older than it. The fold's
        path, once per approved purchase: no record object, integer instants."""
        at_us = (at - _EPOCH) // _MICROSECOND
        at_list = self._at_us
        if at_list and at_us < at_list[-1]:
            raise ValueError(f"purchase {event_id} is older than the last one remembered")
        # An event id comes once (retries are deduplicated before the fold); the newest ones
        # are checked here, all of them by the invariants (unpacking the older ones on every
        # purchase would cost the fold a tenth of its speed).
        hot = self._hot
        if event_id in hot:
            raise ValueError(f"purchase {event_id} is already remembered")
        if len(hot) == HOT_PURCHASES:
            self._spill()
            hot = self._hot
        hot[event_id] = (at_us, amount_fen, merchant_id, 0, None)
        at_list.append(at_us)
        horizon_us = at_us - span_us
        if len(at_list) > keep_at_most or at_list[0] < horizon_us:
            drop = 0
            count = len(at_list)
            while count - drop > keep_at_most or at_list[drop] < horizon_us:
                drop += 1
            self._forget(drop)

    def _forget(self, count: int) -> None:
        """Forget the `count` oldest purchases."""
        cold_live = len(self._at_us) - len(self._hot)
        from_cold = min(count, cold_live)
        skip = self._cold_skip + from_cold
        while skip >= HOT_PURCHASES:  # a chunk wholly forgotten goes
            del self._cold[0]
            skip -= HOT_PURCHASES
        self._cold_skip = skip
        for event_id in list(islice(self._hot, count - from_cold)):
            del self._hot[event_id]
        del self._at_us[:count]

    def count_since(self, since: dt.datetime) -> int:
        """How many remembered purchases happened at or after `since`."""
        return len(self._at_us) - bisect_left(self._at_us, _micros(since))

    def first_at_since(self, since: dt.datetime) -> dt.datetime | None:
        """The instant of the oldest purchase at or after `since`, if any."""
        first = bisect_left(self._at_us, _micros(since))
        return _instant(self._at_us[first]) if first < len(self._at_us) else None

    def newest_first(self) -> Iterator[tuple[dt.datetime, str]]:
        """(instant, event id) of every remembered purchase, newest first (the older ones
        are unpacked only if the caller reads past the newest)."""
        for event_id, values in reversed(self._hot.items()):
            yield _instant(values[0]), event_id
        cold = self._cold_entries()
        for index in range(len(cold) - 1, -1, -1):  # not reversed(): mypyc fails on it here
            yield _instant(cold[index][1]), cold[index][0]

    def since(self, since: dt.datetime) -> list[tuple[dt.datetime, str]]:
        """(instant, event id) of the purchases at or after `since`, oldest first."""
        first = bisect_left(self._at_us, _micros(since))
        if first == len(self._at_us):
            return []
        return [(_instant(entry[1]), entry[0]) for entry in self._entries()[first:]]

    def problem(self, clock: dt.datetime | None) -> str | None:
        """What is wrong with it (for the invariants), or None."""
        at_us = self._at_us
        entries = self._entries()
        if len(at_us) != len(entries):
            return f"{len(entries)} purchases but {len(at_us)} instants"
        if any(entry[1] != at for entry, at in zip(entries, at_us, strict=True)):
            return "instants out of step with the purchases"
        if any(at_us[i] > at_us[i + 1] for i in range(len(at_us) - 1)):
            return "not in time order"
        if len({entry[0] for entry in entries}) != len(entries):
            return "an event id remembered twice"
        if at_us and clock is not None and at_us[-1] > _micros(clock):
            return "a purchase after the clock"
        return None

    # --- copies, equality, snapshots ----------------------------------------------------------

    def copy(self) -> RememberedPurchases:
        copy = RememberedPurchases.__new__(RememberedPurchases)
        copy._cold = self._cold.copy()  # chunks are bytes: immutable, shared
        copy._cold_skip = self._cold_skip
        copy._hot = self._hot.copy()  # tuples: immutable, shared
        copy._at_us = array("q", self._at_us)
        return copy

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RememberedPurchases):
            return self._entries() == other._entries()
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dict

    def __repr__(self) -> str:
        return f"RememberedPurchases({dict(self.items())!r})"

    # A tuple, never empty: pickle skips __setstate__ for a false state.
    def __getstate__(self) -> tuple[list[bytes], int, dict[str, tuple], bytes]:
        return (self._cold, self._cold_skip, self._hot, self._at_us.tobytes())

    def __setstate__(self, state: tuple[list[bytes], int, dict[str, tuple], bytes]) -> None:
        self._cold, self._cold_skip, self._hot = state[0], state[1], state[2]
        self._at_us = array("q")
        self._at_us.frombytes(state[3])


def _record(entry: _Entry) -> PurchaseRecord:
    event_id, at_us, amount_fen, merchant_id, refunded_fen, plan_id = entry
    return PurchaseRecord(event_id, _instant(at_us), amount_fen, merchant_id, refunded_fen,
                          plan_id)
