"""Approved purchases an account remembers (for refunds, installment plans, appeals), packed.

An account remembers up to 180 days of approved purchases: about 35 for a typical card holder,
and they were the largest part of a cached state (a record object, its datetime and its ints
cost about 290 bytes each, and a window of the last 90 days kept (instant, id) pairs of the same
purchases again). A remembered purchase changes only on a refund or a conversion into an
installment plan, and is read only then (and by explanations), so each is kept as one bytes
object (marshal of a tuple of ints, strings and None, about 75 bytes) and unpacked on access.
Their instants are also kept in one array of int64, in the same (time) order, so counting or
listing the purchases since an instant (the 90-day window) builds no record.
"""

from __future__ import annotations

import datetime as dt
import marshal
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any


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


def pack_purchase(record: PurchaseRecord) -> bytes:
    """The record without its event id (the key), its instant (UTC, as the fold keeps it) as
    microseconds since the epoch first, so trimming reads it without building the record."""
    return marshal.dumps(((record.at - _EPOCH) // _MICROSECOND, record.amount_fen,
                          record.merchant_id, record.refunded_fen, record.plan_id))


def unpack_purchase(event_id: str, packed: bytes) -> PurchaseRecord:
    at_us, amount_fen, merchant_id, refunded_fen, plan_id = marshal.loads(packed)
    return PurchaseRecord(event_id, _EPOCH + at_us * _MICROSECOND, amount_fen, merchant_id,
                          refunded_fen, plan_id)


class RememberedPurchases:
    """event id -> PurchaseRecord, stored packed, in time order: purchases are approved in the
    order of their instants, so a new one is never older than the last.

    Reads and writes whole records, as a dict of records would: a refund or a plan replaces
    the record (same instant, same place); nothing changes a record in place."""

    __slots__ = ("_packed", "_at_us")

    def __init__(self, records: Mapping[str, PurchaseRecord] | None = None):
        self._packed: dict[str, bytes] = {}
        self._at_us = array("q")  # each purchase's instant, in the order of _packed
        for event_id, record in (records or {}).items():
            self[event_id] = record

    # --- the mapping ---------------------------------------------------------------------------

    def __getitem__(self, event_id: str) -> PurchaseRecord:
        return unpack_purchase(event_id, self._packed[event_id])

    def get(self, event_id: str, default: Any = None) -> Any:
        packed = self._packed.get(event_id)
        return default if packed is None else unpack_purchase(event_id, packed)

    def __setitem__(self, event_id: str, record: PurchaseRecord) -> None:
        if record.event_id != event_id:
            raise ValueError(f"record {record.event_id} stored under {event_id}")
        at_us = _micros(record.at)
        packed = self._packed
        if event_id in packed:
            if unpack_purchase(event_id, packed[event_id]).at != record.at:
                raise ValueError(f"purchase {event_id}: a record keeps its instant")
        elif self._at_us and at_us < self._at_us[-1]:
            raise ValueError(f"purchase {event_id} is older than the last one remembered")
        else:
            self._at_us.append(at_us)
        packed[event_id] = pack_purchase(record)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def keys(self) -> Any:
        return self._packed.keys()

    def values(self) -> list[PurchaseRecord]:
        return [unpack_purchase(event_id, packed) for event_id, packed in self._packed.items()]

    def items(self) -> list[tuple[str, PurchaseRecord]]:
        return [(record.event_id, record) for record in self.values()]

    # --- what the fold needs cheaply ----------------------------------------------------------

    def remember(self, event_id: str, at: dt.datetime, amount_fen: int, merchant_id: str,
                 span: dt.timedelta, keep_at_most: int) -> None:
        """A newly approved purchase (not refunded, in no plan), then forget the oldest ones
        beyond `keep_at_most` or older than `span` before it. The fold's path, once per
        approved purchase: no record object, one subtraction for the instants."""
        at_us = (at - _EPOCH) // _MICROSECOND
        at_list = self._at_us
        if at_list and at_us < at_list[-1]:
            raise ValueError(f"purchase {event_id} is older than the last one remembered")
        if event_id in self._packed:
            raise ValueError(f"purchase {event_id} is already remembered")
        self._packed[event_id] = marshal.dumps((at_us, amount_fen, merchant_id, 0, None))
        at_list.append(at_us)
        horizon_us = at_us - span // _MICROSECOND
        drop = 0
        count = len(at_list)
        while count - drop > keep_at_most or at_list[drop] < horizon_us:
            drop += 1
        if drop:
            packed = self._packed
            for event_id_gone in list(islice(packed, drop)):
                del packed[event_id_gone]
            del at_list[:drop]

    def oldest_at(self) -> dt.datetime | None:
        """The instant of the oldest remembered purchase."""
        return _EPOCH + self._at_us[0] * _MICROSECOND if self._at_us else None

    def forget_oldest(self) -> None:
        del self._packed[next(iter(self._packed))]
        del self._at_us[0]

    def count_since(self, since: dt.datetime) -> int:
        """How many remembered purchases happened at or after `since`."""
        return len(self._at_us) - bisect_left(self._at_us, _micros(since))

    def first_at_since(self, since: dt.datetime) -> dt.datetime | None:
        """The instant of the oldest purchase at or after `since`, if any."""
        first = bisect_left(self._at_us, _micros(since))
        return _EPOCH + self._at_us[first] * _MICROSECOND if first < len(self._at_us) else None

    def newest_first(self) -> Iterator[tuple[dt.datetime, str]]:
        """(instant, event id) of every remembered purchase, newest first."""
        for at_us, event_id in zip(reversed(self._at_us), reversed(self._packed), strict=True):
            yield _EPOCH + at_us * _MICROSECOND, event_id

    def since(self, since: dt.datetime) -> list[tuple[dt.datetime, str]]:
        """(instant, event id) of the purchases at or after `since`, oldest first."""
        first = bisect_left(self._at_us, _micros(since))
        if first == len(self._at_us):
            return []
        ids = list(self._packed)[first:]
        return [(_EPOCH + at_us * _MICROSECOND, event_id)
                for at_us, event_id in zip(self._at_us[first:], ids, strict=True)]

    def problem(self, clock: dt.datetime | None) -> str | None:
        """What is wrong with it (for the invariants), or None."""
        at_us = self._at_us
        if len(at_us) != len(self._packed):
            return f"{len(self._packed)} purchases but {len(at_us)} instants"
        if any(at_us[i] > at_us[i + 1] for i in range(len(at_us) - 1)):
            return "not in time order"
        if at_us and clock is not None and at_us[-1] > _micros(clock):
            return "a purchase after the clock"
        return None

    # --- copies, equality, snapshots ----------------------------------------------------------

    def copy(self) -> RememberedPurchases:
        copy = RememberedPurchases.__new__(RememberedPurchases)
        copy._packed = self._packed.copy()  # packed records are immutable: shared
        copy._at_us = array("q", self._at_us)
        return copy

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RememberedPurchases):
            return self._packed == other._packed
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dict

    def __repr__(self) -> str:
        return f"RememberedPurchases({dict(self.items())!r})"

    # A tuple, never empty: pickle skips __setstate__ for a false state.
    def __getstate__(self) -> tuple[dict[str, bytes], bytes]:
        return (self._packed, self._at_us.tobytes())

    def __setstate__(self, state: tuple[dict[str, bytes], bytes]) -> None:
        self._packed = state[0]
        self._at_us = array("q")
        self._at_us.frombytes(state[1])
