"""How the process that runs a backtest splits its accounts into partitions for the local
engine, and what it keeps of the pairs of runs an engine hands back.

Pure: no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from jiefeng.batch import backtest as B
from jiefeng.batch.backtest_summary import Tally

Pair = tuple[B.AccountRun, B.AccountRun]  # one account's runs: baseline, candidate

# A partition of the local engine: consecutive accounts, at least MIN_PARTITION_ACCOUNTS and
# about PARTITION_EVENTS events, at most MAX_PARTITION_ACCOUNTS accounts. 25 accounts a
# partition suited 170 events an account and more (timed against partitions of 2,000 and 4,000
# events on 170 and 340 events an account, it was as fast or faster); with 17 each, a worker's
# partition was over before its round trip through the pool paid off: two workers, every
# account folded twice, 0.80-0.84 of the time with partitions of 2,000-4,000 events.
MIN_PARTITION_ACCOUNTS = 25
PARTITION_EVENTS = 2_000
MAX_PARTITION_ACCOUNTS = 500  # a query's list of accounts stays short


def partitions(account_ids: Sequence[str], event_counts: Sequence[int] | None
               ) -> list[Sequence[str]]:
    """Consecutive accounts, a partition closed once it holds MIN_PARTITION_ACCOUNTS accounts
    and PARTITION_EVENTS events, or MAX_PARTITION_ACCOUNTS accounts; without counts,
    MIN_PARTITION_ACCOUNTS accounts a partition."""
    if event_counts is None:
        return [account_ids[i : i + MIN_PARTITION_ACCOUNTS]
                for i in range(0, len(account_ids), MIN_PARTITION_ACCOUNTS)]
    if len(event_counts) != len(account_ids):
        raise ValueError("one event count per account")
    chunks: list[Sequence[str]] = []
    start = events = 0
    for index, count in enumerate(event_counts):
        events += count
        accounts = index + 1 - start
        if (accounts >= MIN_PARTITION_ACCOUNTS and events >= PARTITION_EVENTS) \
                or accounts >= MAX_PARTITION_ACCOUNTS:
            chunks.append(account_ids[start : index + 1])
            start, events = index + 1, 0
    if start < len(account_ids):
        chunks.append(account_ids[start:])
    return chunks


class PairCollector:
    """What this process keeps of the pairs an engine hands back (`take`, a chunk at a time):
    each goes into the summary at once and is dropped, so the memory does not grow with the
    accounts (see jiefeng.batch.backtest_summary). With a sample of the accounts the criteria
    select (`sample`), which accounts count is known only once every one was tested: the
    `sample` selected first in sample order are kept meanwhile, and summarized by `finish`."""

    def __init__(self, tally: Tally, sample: int | None):
        self.tally = tally
        self.sample = sample
        self.left_out = 0  # accounts the criteria left out
        self._first: list[tuple[str, str, Pair]] = []  # (sample order, account, pair), sorted

    def take(self, results: Iterable[Pair | None]) -> None:
        for result in results:
            if result is None:
                self.left_out += 1
            elif self.sample is None:
                self.tally.add(*result)
            else:
                self._keep(result)

    def merge(self, other: PairCollector) -> None:
        """Add what another collector took, of other accounts (a partition summarized where
        it ran); it is not used afterwards."""
        self.tally.merge(other.tally)
        self.left_out += other.left_out
        for _, _, pair in other._first:
            self._keep(pair)

    def _keep(self, pair: Pair) -> None:
        account_id = pair[0].account_id
        entry = (B.sample_order(account_id), account_id, pair)  # accounts are unique: no tie
        first = self._first
        if len(first) < self.sample or entry[:2] < first[-1][:2]:
            bisect.insort(first, entry, key=lambda e: e[:2])
            del first[self.sample:]

    def finish(self) -> None:
        for _, _, pair in self._first:
            self.tally.add(*pair)
        self._first = []
