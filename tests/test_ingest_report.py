"""A file's report counts every line's result and keeps only those someone reads (rejected
ones, and the watched command lines); the helper sends its accepted lines compactly
(`AcceptedLines`), and the report takes them as it takes the results one by one."""

from __future__ import annotations

import pickle
import random

import pytest

from jiefeng.service.ingest import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    AcceptedLines,
    FileReport,
    IngestReport,
    ItemResult,
)


def _results(count: int, seed: int) -> list[ItemResult]:
    rng = random.Random(seed)
    results = []
    for position in range(1, count + 1):
        roll = rng.random()
        if roll < 0.8:
            results.append(ItemResult(position, ACCEPTED, f"e{position}"))
        elif roll < 0.9:
            results.append(ItemResult(position, DUPLICATE, f"e{position}"))
        else:
            results.append(ItemResult(position, REJECTED, f"e{position}", "amount",
                                      "must be greater than zero"))
    rng.shuffle(results)
    return results


def test_accepted_lines_split_off_the_plain_acceptances_and_give_them_back() -> None:
    results = _results(500, seed=1)
    others, accepted = AcceptedLines.split(results)
    assert all(r.status != ACCEPTED for r in others)
    assert len(others) + len(accepted.positions) == len(results)
    back = sorted([*others, *accepted.results()], key=lambda r: r.position)
    assert back == sorted(results, key=lambda r: r.position)
    copied = pickle.loads(pickle.dumps(accepted, protocol=5))
    assert list(copied.positions) == list(accepted.positions)
    assert copied.event_ids == accepted.event_ids


def test_an_acceptance_with_anything_more_is_kept_whole() -> None:
    unusual = [ItemResult(1, ACCEPTED, None), ItemResult(2, ACCEPTED, "e2", "note", "why")]
    others, accepted = AcceptedLines.split(unusual)
    assert others == unusual and len(accepted.positions) == 0


@pytest.mark.parametrize("watched", [frozenset(), frozenset({3, 17, 250, 499})])
def test_a_report_takes_accepted_lines_as_it_takes_their_results(watched) -> None:
    results = _results(500, seed=2)
    others, accepted = AcceptedLines.split(results)
    one_by_one, compact = FileReport(watched=watched), FileReport(watched=watched)
    one_by_one.add(results)
    compact.add(others)
    compact.add_accepted(accepted)
    for status in (ACCEPTED, DUPLICATE, REJECTED):
        assert compact.count(status) == one_by_one.count(status)
    key = lambda r: r.position  # noqa: E731
    assert sorted(compact.results, key=key) == sorted(one_by_one.results, key=key)
    kept_accepted = {r.position for r in compact.results if r.status == ACCEPTED}
    assert kept_accepted == {r.position for r in results
                             if r.status == ACCEPTED and r.position in watched}
    plain = IngestReport()
    plain.add(others)
    plain.add_accepted(accepted)
    assert sorted(plain.results, key=key) == sorted(results, key=key)
