"""A file is ingested from the file, a transaction at a time (issue 10 §4): the lines, their
decision order and the transactions are those of the list the whole file used to become, and
so are the results, the stored rows and the effects; memory does not hold one object a line.
"""

from __future__ import annotations

import io
import json
import random
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.cli import app
from jiefeng.service import event_file
from jiefeng.service.audit import AuditLog
from jiefeng.service.event_file import scan, spooled
from jiefeng.service.ingest import REJECTED, FileReport, decision_batches, ingest
from jiefeng.service.lines import UTF8_BOM, event_lines
from jiefeng.service.security import COMMAND_TYPES
from jiefeng.service.states import FILE_SNAPSHOT_EVERY_EVENTS
from jiefeng.store.sql import SqlStore
from test_pipeline import _contents, _engine, _lines, second_url  # noqa: F401  (fixture)

BATCH = 250  # the file is 20 transactions and more


def _file_bytes(seed: int = 7) -> bytes:
    """test_pipeline's lines (late events, a resend, an invalid line, a reused id) shuffled,
    with what files also hold: a BOM, blank lines, CRLF endings, an unreadable line and a
    line that is not UTF-8."""
    lines = [line.encode() for _, line in _lines(seed)]
    random.Random(seed).shuffle(lines)
    lines[40] = lines[40] + b"\r"  # CRLF: the \r stays in the line, JSON ignores it
    lines.insert(100, b"")
    lines.insert(101, b"  \t \r")
    lines.insert(2_000, b"not json at all")
    lines.insert(3_000, b'{"event_id": "bad-\xff\xfe", "type": "login"}')
    lines.insert(3_500, lines[10])  # a repeat, far from its first line
    return UTF8_BOM + b"\n".join(lines) + b"\n\n"


def _type_of(line: bytes) -> str | None:
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    return raw.get("type") if isinstance(raw, dict) else None


def _rejected(results) -> list[tuple]:
    return [(r.position, r.event_id, r.field, r.reason) for r in results if r.status == REJECTED]


@pytest.mark.parametrize("block_bytes", [event_file.SCAN_BLOCK_BYTES, 97])
@pytest.mark.parametrize("batch_events", [1, 7, BATCH, 6_000])
def test_a_file_gives_the_lines_order_and_cuts_of_the_whole_file_in_memory(
        monkeypatch, block_bytes, batch_events) -> None:
    monkeypatch.setattr(event_file, "SCAN_BLOCK_BYTES", block_bytes)  # lines across blocks
    monkeypatch.setattr(event_file, "READ_RUN_BYTES", 1_000)  # a batch read in many pieces
    data = _file_bytes()
    items = event_lines(data)
    with scan(io.BytesIO(data)) as lines:
        assert len(lines) == len(items)
        assert lines.items() == items
        batches = lines.batches(batch_events)
        expected = decision_batches(items, batch_events)
        assert len(batches) == len(expected)
        assert [list(b) for b in batches] == [list(b) for b in expected]
        assert [list(b) for b in batches[3:]] == [list(b) for b in expected[3:]]


def test_repeats_are_settled_by_their_ids_whatever_their_hashes(monkeypatch) -> None:
    """Every id hashing alike (a collision everywhere) changes nothing: ids are compared."""
    monkeypatch.setattr(event_file, "id_hash", lambda _: 42)
    data = _file_bytes(seed=3)
    with scan(io.BytesIO(data)) as lines:
        assert [list(b) for b in lines.batches(BATCH)] == [
            list(b) for b in decision_batches(event_lines(data), BATCH)]


def test_a_file_in_time_order_is_not_sorted_and_a_small_one_needs_no_index(monkeypatch) -> None:
    lines = [f'{{"event_id":"e{n}","type":"login","account_id":"A",'
             f'"at":"2026-01-01T00:00:{n:02d}+08:00"}}'.encode() for n in range(60)]
    with scan(io.BytesIO(b"\n".join(lines))) as indexed:
        assert indexed.decision_order(10) == range(60)
        assert indexed.decision_order(60) == range(60)  # one transaction: not even looked at
        assert indexed.hashes is None  # settled once, then dropped


def test_a_stream_is_spooled_and_read_as_the_file() -> None:
    data = _file_bytes()
    with scan(spooled(io.BytesIO(data)), keep_types=COMMAND_TYPES) as lines:
        assert lines.items() == event_lines(data)
        assert lines.kept == [(n, line) for n, line in event_lines(data)
                              if _type_of(line) in COMMAND_TYPES]
        assert lines.kept  # the portfolio has operator commands and appeals


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-process"])
def test_a_file_stores_and_reports_what_the_list_of_its_lines_does(
        db_url, second_url, monkeypatch, tmp_path: Path, pipelined) -> None:  # noqa: F811
    """On both databases, pipelined or not: the counts, the rejected lines with their
    reasons and every stored row equal those of `ingest` on the list of the file's lines;
    the report holds the rejected results and those of the kept lines, not one per line."""
    monkeypatch.setattr("jiefeng.service.engine.FILE_BATCH_EVENTS", BATCH)
    data = _file_bytes()
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    items = event_lines(data)
    expected_engine = _engine(second_url)
    expected = ingest(expected_engine.store, items, expected_engine.base_policy,
                      expected_engine.now, expected_engine.cache, expected_engine.scope_cache,
                      BATCH, FILE_SNAPSHOT_EVERY_EVENTS, keep_effects=False)
    engine = _engine(db_url)
    with path.open("rb") as source, scan(source, keep_types=COMMAND_TYPES) as lines:
        report = engine.ingest_file(lines, pipelined=pipelined)
    assert isinstance(report, FileReport)
    for status in ("accepted", "duplicate", "rejected"):
        assert report.count(status) == expected.count(status), status
    assert report.rejected >= 4 and report.duplicates >= 2
    assert _rejected(report.results) == _rejected(expected.results)
    kept = {n for n, _ in lines.kept}
    assert len(report.results) == report.rejected + sum(
        1 for r in expected.results if r.position in kept and r.status != REJECTED)
    assert len(report.results) < len(items) / 10
    assert [r.position for r in report.results] == sorted(r.position for r in report.results)
    assert _contents(engine) == _contents(expected_engine)
    assert engine.replay(write=False).mismatched == []


def test_the_command_reads_a_file_and_stdin_alike(monkeypatch, tmp_path: Path) -> None:
    """`jiefeng ingest FILE` and `jiefeng ingest - < FILE`: the same rejected lines, totals,
    exit status and audited commands as the list of the file's lines gives."""
    monkeypatch.setattr("jiefeng.service.engine.FILE_BATCH_EVENTS", BATCH)
    data = _file_bytes()
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    runner = CliRunner()
    from_file = runner.invoke(app, ["ingest", str(path), "--db", str(tmp_path / "f.db")])
    from_stdin = runner.invoke(app, ["ingest", "-", "--db", str(tmp_path / "s.db")], input=data)
    assert from_file.exit_code == from_stdin.exit_code == 2, from_file.output
    assert from_file.stdout == from_stdin.stdout

    engine = _engine(str(tmp_path / "expected.db"))
    expected = ingest(engine.store, event_lines(data), engine.base_policy, engine.now,
                      engine.cache, engine.scope_cache, BATCH, FILE_SNAPSHOT_EVERY_EVENTS)
    for position, event_id, field, _reason in _rejected(expected.results):
        assert f"line {position}:" in from_file.stdout
        if event_id is not None and "\\" not in event_id:
            assert f"event {event_id}: {field}:" in from_file.stdout
    assert (f"accepted {expected.accepted}, duplicate {expected.duplicates}, "
            f"rejected {expected.rejected}") in from_file.stdout
    accepted = {r.position for r in expected.results if r.status == "accepted"}
    commands = [n for n, line in event_lines(data)
                if n in accepted and json.loads(line)["type"] in COMMAND_TYPES]

    for db in ("f.db", "s.db"):
        audited = AuditLog(SqlStore(str(tmp_path / db))).page(limit=500)
        assert sorted(int(e["path"].split("line ")[1].rstrip(")")) for e in audited) == \
            sorted(commands)


def _scan_peak_bytes(count: int) -> int:
    """Peak traced memory to index a file of `count` lines and read it batch by batch."""
    line = ('{"event_id":"e%08d","type":"purchase","account_id":"A%05d","amount":"12.30",'
            '"merchant_id":"M1","at":"2026-01-01T00:%02d:%02d+08:00"}')
    data = b"\n".join((line % (n, n % 977, n // 60 % 60, n % 60)).encode()
                      for n in range(count))
    source = io.BytesIO(data)
    del data
    tracemalloc.start()
    try:
        with scan(source) as lines:
            for batch in lines.batches(1_000):
                assert batch
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_by_a_few_int64_a_line_not_by_the_lines(monkeypatch) -> None:
    """Indexing and reading back 80,000 lines of about 130 bytes costs under 64 bytes more a
    line than 20,000 (the index: 20 bytes a line, and the id hashes until the repeats are
    settled, with the arrays' spare room), not the lines' bytes, and not the ~300 bytes a
    line that a list of them took."""
    monkeypatch.setattr(event_file, "SCAN_BLOCK_BYTES", 64 * 1024)  # both files span blocks
    _scan_peak_bytes(5_000)  # first: what importing pyarrow allocates
    small, large = _scan_peak_bytes(20_000), _scan_peak_bytes(80_000)
    assert large - small < 60_000 * 64, (small, large)


def test_the_index_keeps_line_numbers_only_once_a_blank_line_shifts_them(monkeypatch) -> None:
    """Without blank lines a line's number is its position plus one and is not stored; from
    the first blank line on, numbers are. A line too long for a uint32 length turns the
    lengths into int64 (the limit made small here)."""
    lines = [f'{{"event_id":"e{n}","type":"login","account_id":"A{n % 7}",'
             f'"at":"2026-01-01T00:{n // 60:02d}:{n % 60:02d}+08:00"}}'.encode()
             for n in range(300)]
    plain = b"\n".join(lines) + b"\n"
    with scan(io.BytesIO(plain)) as indexed:
        assert indexed.numbers is None and indexed.lengths.typecode == "I"
        assert indexed.items() == event_lines(plain)
    shifted = b"\n".join(lines[:120] + [b"", b" \t"] + lines[120:]) + b"\n"
    with scan(io.BytesIO(shifted)) as indexed:
        assert indexed.numbers is not None and list(indexed.numbers[118:122]) == [
            119, 120, 123, 124]
        assert indexed.items() == event_lines(shifted)
        assert [list(b) for b in indexed.batches(BATCH)] == [
            list(b) for b in decision_batches(event_lines(shifted), BATCH)]
    monkeypatch.setattr(event_file, "LENGTH_LIMIT", len(lines[0]) + 5)
    long = b"\n".join(lines[:50] + [lines[50] + b" " * 40] + lines[51:]) + b"\n"
    with scan(io.BytesIO(long)) as indexed:
        assert indexed.lengths.typecode == "q"
        assert indexed.items() == event_lines(long)


# Lines the scan's inline read must hand to `_order_facts` (or read as it does): whatever a
# line holds, the index is the one the line-by-line order gives.
ODD_LINES = [
    b'{"event_id":"n1","type":"login","account_id":"A1","at":"2026-01-01T00:00:00"}',  # naive
    b'{"event_id":7,"type":"login","account_id":"A1","at":"2026-01-01T00:00:01+08:00"}',
    b'{"event_id":"t1","type":3,"account_id":"A1","at":"2026-01-01T00:00:02+08:00"}',
    b'{"event_id":"t2","type":"login","account_id":"A1","at":1767196800}',
    b'{"event_id":"t3","type":"login","account_id":"A1","at":"yesterday"}',
    b'["event_id","at","type"]',
    b'"a string"',
    b"42",
    b'{"event_id":"t4","type":"login","account_id":"A1"}',  # no time
    b'{"event_id":"y1","type":"login","account_id":"A1","at":"0001-01-01T00:00:00+01:00"}',
    b'{"event_id":"y2","type":"login","account_id":"A2","at":"9999-12-31T23:59:59-01:00"}',
    b'{"event_id":"z1","type":"login","account_id":"A2","at":"2026-01-01T00:00:03Z"}',
    b'{"event_id":"f1","type":"login","account_id":"A2","at":"2026-01-01T00:00:03.250001-05:30"}',
    b'{"event_id":"i1","type":"login","account_id":12,"at":"2026-01-01T00:00:04+08:00"}',
    b'{"event_id":"s1","type":"appeal_submitted","account_id":"A3","appeal_id":"AP1",'
    b'"hold_code":"cash_out","statement":"x","at":"2026-01-01T00:00:05+08:00"}',
    b'{"event_id":"s2","type":"appeal_submitted","account_id":"A3","appeal_id":5,'
    b'"hold_code":"cash_out","statement":"x","at":"2026-01-01T00:00:05+08:00"}',
    b'{"event_id":"d1","type":"appeal_decided","appeal_id":"AP1","actor":"ops",'
    b'"decision":"approve","at":"2026-01-01T00:00:06+08:00"}',
    b'{"event_id":"m1","type":"maintenance_scheduled","account_id":"A1","actor":"ops",'
    b'"window_id":"W1","start":"2026-01-02T00:00:00+08:00","end":"2026-01-02T06:00:00+08:00",'
    b'"at":"2026-01-01T00:00:00+08:00"}',
    b'{"event_id":"o1","type":"account_opened","account_id":"A4","at":"2026-01-01T00:00:00+08:00"}',
    b'{"event_id":"r1","type":"login","account_id":"A1","at":"2026-01-01T00:00:07+08:00"}',
    b'{"event_id":"r1","type":"login","account_id":"A9","at":"2025-01-01T00:00:07+08:00"}',
]


@pytest.mark.parametrize("seed", range(4))
def test_the_scan_reads_odd_lines_as_the_line_by_line_order_does(seed) -> None:
    lines = list(ODD_LINES)
    random.Random(seed).shuffle(lines)
    data = b"\n".join(lines) + b"\n"
    items = event_lines(data)
    with scan(io.BytesIO(data), keep_types=COMMAND_TYPES) as indexed:
        assert indexed.items() == items
        assert [list(b) for b in indexed.batches(3)] == [
            list(b) for b in decision_batches(items, 3)]
        assert sorted(n for n, _ in indexed.kept) == sorted(
            n for n, line in items if _type_of(line) in COMMAND_TYPES)


def _index(indexed: event_file.EventFile) -> dict:
    """Everything the index holds before it is ordered."""
    return {"items": indexed.items(), "numbers": None if indexed.numbers is None else list(
        indexed.numbers), "lengths": (indexed.lengths.typecode, list(indexed.lengths)),
        "keys": list(indexed.keys), "groups": list(indexed.groups),
        "accounts": list(indexed.accounts.items()), "barriers": indexed.barrier_keys,
        "submitted": indexed.submitted, "unrouted": indexed.unrouted,
        "hashes": list(indexed.hashes or []), "kept": indexed.kept}


def _starts(data: bytes) -> list[int]:
    """Where each line after the first starts."""
    return [index + 1 for index, byte in enumerate(data) if byte == 10 and index + 1 < len(data)]


@pytest.mark.parametrize("seed", range(3))
def test_a_file_indexed_in_two_halves_and_joined_is_indexed_as_in_one(monkeypatch,
                                                                      seed) -> None:
    """Whichever line the second half starts at: after blank lines or among them, before or
    after a repeat's first line, an appeal's submission or its decision, a long line."""
    monkeypatch.setattr(event_file, "SCAN_BLOCK_BYTES", 997)  # lines across blocks
    data = _file_bytes(seed)
    starts = _starts(data)
    chosen = sorted(random.Random(seed).sample(starts, 40)) + [starts[0], starts[-1]]
    chosen += [s for s in starts if data[s - 2:s] in (b"\n\n", b"\r\n")][:6]
    with scan(io.BytesIO(data), keep_types=COMMAND_TYPES) as whole:
        expected = _index(whole)
        batches = [list(b) for b in whole.batches(BATCH)]
    for split in chosen:
        first, lines_before = event_file.scan_range(io.BytesIO(data), COMMAND_TYPES, 0, split)
        second, _ = event_file.scan_range(io.BytesIO(data), COMMAND_TYPES, split)
        first.join(second, lines_before)
        assert _index(first) == expected, split
        assert [list(b) for b in first.batches(BATCH)] == batches, split
    monkeypatch.setattr(event_file, "LENGTH_LIMIT", 200)  # long lines in one half or both
    with scan(io.BytesIO(data)) as whole:
        expected = _index(whole)
    for split in chosen[:10]:
        first, lines_before = event_file.scan_range(io.BytesIO(data), (), 0, split)
        second, _ = event_file.scan_range(io.BytesIO(data), (), split)
        first.join(second, lines_before)
        assert _index(first) == expected, split


class _InProcess:
    """Another process's half, indexed here (or not at all: `fails`)."""

    def __init__(self, data: bytes, fails: bool = False) -> None:
        self.data, self.fails, self.started = data, fails, None

    def start_scan(self, source, start, keep_types) -> bool:
        self.started = (start, frozenset(keep_types))
        return True

    def collect_scan(self):
        if self.fails:
            return None
        start, keep_types = self.started
        return event_file.scan_range(io.BytesIO(self.data), keep_types, start)


@pytest.mark.parametrize("fails", [False, True])
def test_a_large_file_is_indexed_in_halves_elsewhere_or_here_if_that_fails(
        monkeypatch, tmp_path: Path, fails) -> None:
    monkeypatch.setattr(event_file, "SPLIT_SCAN_BYTES", 10_000)
    data = _file_bytes()
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    elsewhere = _InProcess(data, fails)
    with path.open("rb") as source, scan(source, COMMAND_TYPES, elsewhere) as indexed:
        start = elsewhere.started[0]
        assert len(data) // 2 <= start < len(data) // 2 + 1_000 and data[start - 1] == 10
        got = _index(indexed)
        batches = [list(b) for b in indexed.batches(BATCH)]
    with scan(io.BytesIO(data), COMMAND_TYPES) as whole:
        assert got == _index(whole)
        assert batches == [list(b) for b in whole.batches(BATCH)]
    small = tmp_path / "small.jsonl"
    small.write_bytes(data[:9_000])
    elsewhere = _InProcess(data[:9_000])
    with small.open("rb") as source, scan(source, (), elsewhere):
        assert elsewhere.started is None  # too small to split


class _FirstInProcess:
    """Another process's index of the first lines, made here (or not at all: `fails`)."""

    def __init__(self, data: bytes, end: int | None, keep_types, fails: bool = False) -> None:
        self.data, self.end, self.keep_types, self.fails = data, end, keep_types, fails
        self.collected = False

    def collect(self):
        self.collected = True
        if self.fails:
            return None
        part, lines = event_file.scan_range(io.BytesIO(self.data), self.keep_types, 0, self.end)
        part.source = None  # as it arrives from another process
        return part, lines


@pytest.mark.parametrize("fails", [False, True])
@pytest.mark.parametrize("halves", [False, True])
def test_a_file_whose_first_lines_are_indexed_elsewhere_gives_the_index_of_one_scan(
        monkeypatch, tmp_path: Path, fails, halves) -> None:
    """`jiefeng ingest`'s early scan: another process indexes the lines before a point, this one
    the rest (itself, or in halves with the helper); cut anywhere, whole file included, and if
    that process fails, the index and the batches are those of one scan."""
    monkeypatch.setattr(event_file, "SPLIT_SCAN_BYTES", 10_000)
    data = _file_bytes()
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    with scan(io.BytesIO(data), COMMAND_TYPES) as whole:
        expected = _index(whole), [list(b) for b in whole.batches(BATCH)]
        expected_kept = list(whole.kept)
    assert expected_kept  # the file holds commands: their line numbers are checked too
    starts = [i + 1 for i, byte in enumerate(data) if byte == 10][:-1]
    random.Random(3).shuffle(starts)
    for end in [*starts[:12], None]:
        first = _FirstInProcess(data, end, COMMAND_TYPES, fails)
        elsewhere = _InProcess(data) if halves else None
        with path.open("rb") as source, scan(source, COMMAND_TYPES, elsewhere,
                                             first) as indexed:
            assert first.collected and indexed.source is source
            got = _index(indexed), [list(b) for b in indexed.batches(BATCH)]
            assert got == expected, end
            assert indexed.kept == expected_kept, end
        if halves and end is not None and len(data) - end >= 10_000:
            assert elsewhere.started is not None and elsewhere.started[0] > end
        if end is None and halves:
            assert elsewhere.started is None  # nothing left to split


def test_the_second_half_starts_at_a_line_past_the_middle_or_not_at_all(
        monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(event_file, "SPLIT_SCAN_BYTES", 100)
    monkeypatch.setattr(event_file, "SCAN_BLOCK_BYTES", 7)  # the next line found across blocks
    path = tmp_path / "f.jsonl"

    def split_of(data: bytes) -> int | None:
        path.write_bytes(data)
        with path.open("rb") as source:
            return event_file._split_point(source)

    assert split_of(b"a" * 60 + b"\n" + b"b" * 60 + b"\n") is None  # the middle's line is last
    assert split_of(b"a" * 40 + b"\n" + b"b" * 40 + b"\n" + b"c" * 40 + b"\n") == 82
    assert split_of(b"a" * 30 + b"\n" + b"b" * 100) is None  # a line that runs to the end
    assert split_of(b"a" * 99) is None  # too small
    assert split_of(b"\n" * 200) == 101  # blank lines: cut after the middle's


def test_a_time_out_of_range_once_in_utc_is_a_rejected_line_not_a_crash(tmp_path: Path) -> None:
    """Every line's time is now read before the ingest, small files too: a time that cannot
    be moved to UTC (year 1 at +01:00) is rejected with its line, as validation would."""
    opened = ('{"event_id":"o1","type":"account_opened","at":"2026-01-05T10:00:00+08:00",'
              '"account_id":"A1","credit_limit":"5000.00","id_expires_on":"2035-01-01"}')
    early = ('{"event_id":"e1","type":"login","account_id":"A1","device_id":"D1",'
             '"at":"0001-01-01T00:00:00+01:00"}')
    late = early.replace("e1", "e2").replace("0001-01-01T00:00:00+01:00",
                                             "9999-12-31T23:59:59-01:00")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([opened, early, late]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", str(path), "--db", str(tmp_path / "t.db")])
    assert result.exit_code == 2, result.output
    assert "line 2: event e1: at:" in result.stdout and "line 3: event e2: at:" in result.stdout
    assert "accepted 1, duplicate 0, rejected 2" in result.stdout


def test_the_state_caches_take_their_bound_from_the_environment(monkeypatch,
                                                                 tmp_path: Path) -> None:
    from jiefeng.service.engine import EngineCaches
    from jiefeng.service.states import MAX_CACHED_ACCOUNTS

    assert EngineCaches().states.max_accounts == MAX_CACHED_ACCOUNTS
    monkeypatch.setenv("JIEFENG_CACHE_ACCOUNTS", "2000")
    caches = EngineCaches()
    assert caches.states.max_accounts == caches.read_states.max_accounts == 2_000
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"")
    for wrong in ("ten", "99", "-5"):
        monkeypatch.setenv("JIEFENG_CACHE_ACCOUNTS", wrong)
        result = CliRunner().invoke(app, ["ingest", str(path), "--db", str(tmp_path / "w.db")])
        assert result.exit_code == 2
        assert "JIEFENG_CACHE_ACCOUNTS: give a whole number from 100" in result.output


def test_a_cache_smaller_than_the_accounts_in_flight_changes_nothing_but_speed(
        monkeypatch, tmp_path: Path) -> None:
    """States the cache let go are reloaded; a pipelined batch that needs one goes on in one
    process. The file stores what it stores with the default cache."""
    from jiefeng.service.engine import Engine, EngineCaches

    monkeypatch.setattr("jiefeng.service.engine.FILE_BATCH_EVENTS", BATCH)
    data = _file_bytes()
    expected = _engine(str(tmp_path / "expected.db"))
    with scan(io.BytesIO(data)) as lines:
        expected_report = expected.ingest_file(lines)
    small = Engine(SqlStore(str(tmp_path / "small.db")), now=expected.now,
                   caches=EngineCaches(max_accounts=20))
    with scan(io.BytesIO(data)) as lines:
        report = small.ingest_file(lines)
    assert report.counts == expected_report.counts
    assert _rejected(report.results) == _rejected(expected_report.results)
    assert _contents(small)["events"] == _contents(expected)["events"]
    assert small.replay(write=False).mismatched == []


def test_the_sort_keys_are_dropped_once_the_order_is_known() -> None:
    """Only the order is needed after it is computed: the keys (8 bytes a line) go, and asking
    again gives the same order (sorted or not)."""
    data = _file_bytes(seed=5)
    with scan(io.BytesIO(data)) as lines:
        assert len(lines.keys) == len(lines)
        first = list(lines.decision_order(BATCH))
        assert len(lines.keys) == 0
        assert list(lines.decision_order(BATCH)) == first
        assert [list(b) for b in lines.batches(BATCH)] == [
            list(b) for b in decision_batches(event_lines(data), BATCH)]


def test_a_file_with_more_possible_repeats_than_a_dict_should_hold_gives_the_same_batches(
        monkeypatch) -> None:
    """Past MAX_REPEAT_CANDIDATES (a file sent twice), repeats are settled by arrow, whose
    memory is bounded by the largest group: the same order and cuts."""
    monkeypatch.setattr(event_file, "MAX_REPEAT_CANDIDATES", 0)
    data = _file_bytes(seed=5)
    with scan(io.BytesIO(data)) as lines:
        assert [list(b) for b in lines.batches(BATCH)] == [
            list(b) for b in decision_batches(event_lines(data), BATCH)]


@pytest.mark.parametrize("shuffled", [False, True], ids=["in-time-order", "shuffled"])
def test_a_file_in_any_order_is_ordered_without_arrow(tmp_path: Path, shuffled: bool) -> None:
    """Arrow (about 45 MB resident and 0.15 s once imported) is not needed to order a file:
    one in time order (a repeat takes its first line's time) is counted into place, another
    is counted by account and each account's lines sorted."""
    import subprocess
    import sys

    lines = [json.dumps({"event_id": f"e{n}", "type": "login", "account_id": f"A{n % 3}",
                         "at": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}+08:00",
                         "device_id": "d1"}) for n in range(1_200)]
    lines.insert(6, lines[5])  # a repeat, right after its first line
    if shuffled:
        random.Random(3).shuffle(lines)
    path = tmp_path / "lines.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    probe = (
        "import sys\n"
        "from jiefeng.service import event_file\n"
        f"with event_file.scan(open({str(path)!r}, 'rb')) as lines:\n"
        "    cuts = [len(batch) for batch in lines.batches(500)]\n"
        "print(sum(cuts), 'pyarrow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["1201", "False"]
    with scan(io.BytesIO(path.read_bytes())) as indexed:
        assert [list(b) for b in indexed.batches(500)] == [
            list(b) for b in decision_batches(event_lines(path.read_bytes()), 500)]
