"""What the process that summarizes a backtest keeps of the pairs of runs an engine hands back.

Pure: no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from jiefeng.batch import backtest as B
from jiefeng.batch.backtest_summary import Tally

Pair = tuple[B.AccountRun, B.AccountRun]  # one account's runs: baseline, candidate


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
