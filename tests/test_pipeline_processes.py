"""The processes of a pipelined file ingest started ahead (`jiefeng.service.pipeline_processes`):
`jiefeng ingest` starts them before it opens the database, forked on Linux, else as fresh
interpreters. Whatever happens next, none is left running, and a file ingested through them
is stored as one process stores it."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio
from jiefeng.cli import PRESTART_BYTES, app
from jiefeng.service import pipeline, pipeline_processes
from jiefeng.service.engine import Engine
from jiefeng.service.event_file import scan, spooled
from jiefeng.service.security import COMMAND_TYPES
from jiefeng.store.sql import SqlStore
from test_pipeline import _contents

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
# Set in a test's own process (`forks`): the test runs there, not again in a process of its own.
OWN_PROCESS = "JIEFENG_TEST_IN_OWN_PROCESS"


def forks(when: Callable[..., bool] = lambda **_: True):
    """A test that forks this process (or needs it to be able to): `jiefeng ingest` forks only
    from a process running one thread, and the test session runs others by now (servers and
    portals of other tests' fixtures). Run in a pytest process of its own, where it forks as
    the command line does; `when(**arguments)` says which parameters fork."""

    def decorate(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            if os.environ.get(OWN_PROCESS) == "1" or not when(**kwargs):
                return test(*args, **kwargs)
            node = os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]
            completed = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
                 "addopts=", node], cwd=ROOT, env={**os.environ, OWN_PROCESS: "1"},
                capture_output=True, text=True, timeout=600)
            assert completed.returncode == 0 and " passed" in completed.stdout, (
                completed.stdout[-4000:] + completed.stderr[-2000:])
            return None

        return run

    return decorate


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    """A file large enough for `jiefeng ingest` to start its processes ahead."""
    path = tmp_path_factory.mktemp("big") / "events.jsonl"
    events = generate_portfolio(PortfolioSpec(accounts=100, months=18, seed=5))
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events),
                    encoding="utf-8")
    assert path.stat().st_size >= PRESTART_BYTES
    return path


@pytest.fixture(params=["forked", "spawned"])
def mode(request, monkeypatch) -> str:
    """How `jiefeng ingest` starts its processes: forked (Linux, one thread running: the
    command line's case) or as fresh interpreters (anywhere else)."""
    if request.param == "spawned":
        monkeypatch.setattr(pipeline_processes, "can_fork", lambda: False)
    elif os.environ.get(OWN_PROCESS) == "1":  # where the test runs (`forks`)
        assert pipeline_processes.can_fork(), (
            "forks only on Linux from a process running one thread; running: "
            f"{[t.name for t in threading.enumerate()]}")
    return request.param


def _forked_mode(mode: str, **_) -> bool:
    """For a test parametrized by `mode` (it takes `mode` itself, so that `forks` sees it)."""
    return mode == "forked"


@pytest.fixture
def launches(monkeypatch, mode) -> list[pipeline_processes.Launched]:
    """Every set of processes `jiefeng ingest` launches, to look at once it has returned."""
    seen: list[pipeline_processes.Launched] = []
    launch = pipeline_processes.launch

    def recorded(**options) -> pipeline_processes.Launched:
        seen.append(launch(**options))
        kind = (pipeline_processes.ForkedChild if mode == "forked"
                else pipeline_processes.ChildProcess)
        assert all(type(c) is kind for c in _children(seen[-1]))
        return seen[-1]

    monkeypatch.setattr(pipeline_processes, "launch", recorded)
    return seen


@pytest.fixture
def early_scans(monkeypatch) -> list[tuple[pipeline_processes.EarlyScan, list]]:
    """Every early scan `jiefeng ingest` forks, with what each collected."""
    seen: list[tuple[pipeline_processes.EarlyScan, list]] = []
    start = pipeline_processes.EarlyScan.start

    def recorded(source, keep_types):
        early = start(source, keep_types)
        if early is not None:
            collected: list = []
            collect = early.collect

            def collect_recorded():
                collected.append(collect())
                return collected[-1]

            early.collect = collect_recorded
            seen.append((early, collected))
        return early

    monkeypatch.setattr(pipeline_processes.EarlyScan, "start", staticmethod(recorded))
    return seen


def _children(launched: pipeline_processes.Launched) -> list[pipeline_processes.ChildProcess]:
    return [c for c in (launched.writer, launched.helper) if c is not None]


@forks(_forked_mode)
def test_a_file_goes_through_the_processes_started_ahead_and_is_stored_as_one_process_does(
        tmp_path, big_file, launches, early_scans, mode) -> None:
    ahead = runner.invoke(app, ["ingest", str(big_file), "--db", str(tmp_path / "a.db"),
                                "--quiet"])
    assert ahead.exit_code == 0, ahead.output
    assert len(launches) == 1 and not any(c.is_alive() for c in _children(launches[0]))
    if mode == "forked":  # the file's first lines were indexed by an early scan, and used
        [(early, collected)] = early_scans
        assert not early.is_alive() and early.returncode == 0
        assert collected and collected[0] is not None and len(collected[0][0]) > 0
    else:
        assert early_scans == []
    one = runner.invoke(app, ["ingest", str(big_file), "--db", str(tmp_path / "b.db"),
                              "--quiet", "--no-pipeline"])
    assert one.exit_code == 0, one.output
    assert len(launches) == 1  # --no-pipeline starts none
    lines = big_file.read_text(encoding="utf-8").count("\n")
    assert f"accepted {lines}, duplicate 0, rejected 0" in ahead.stdout
    assert _contents(Engine(SqlStore(str(tmp_path / "a.db")))) == _contents(
        Engine(SqlStore(str(tmp_path / "b.db"))))


@pytest.mark.parametrize("db", ["no/such/folder/x.db", "notes.db"])
@forks(_forked_mode)
def test_processes_started_ahead_end_when_the_database_cannot_be_used(
        tmp_path, monkeypatch, big_file, launches, early_scans, db, mode) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.db").write_text("hello, not SQLite\n" * 100, encoding="utf-8")
    refused = runner.invoke(app, ["ingest", str(big_file), "--db", db])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert f"--db {db}" in refused.stderr
    assert len(launches) == 1
    assert not any(c.is_alive() for c in _children(launches[0]))
    assert not any(early.is_alive() for early, _ in early_scans)  # stopped, not waited for


@forks(_forked_mode)
def test_processes_started_ahead_end_when_the_policy_file_is_invalid(
        tmp_path, big_file, launches, mode) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[billing]\nminimum_payment_pct = 0\n", encoding="utf-8")
    refused = runner.invoke(app, ["ingest", str(big_file), "--db", str(tmp_path / "p.db"),
                                  "--policy", str(bad)])
    assert refused.exit_code == 2 and "minimum_payment_pct" in refused.output
    assert len(launches) == 1
    assert not any(c.is_alive() for c in _children(launches[0]))


@forks(_forked_mode)
def test_a_small_file_starts_nothing_ahead(tmp_path, launches, mode) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps({"event_id": "e1", "type": "account_opened",
                                 "at": "2026-01-01T00:00:00+08:00", "account_id": "A1",
                                 "credit_limit": "1000.00", "statement_day": 1,
                                 "due_day": 9, "id_expires_on": "2038-07-18"}) + "\n",
                     encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(small), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    assert launches == []


@pytest.mark.parametrize("forked", [True, False])
@forks(lambda forked, **_: forked)
def test_a_child_closed_before_its_setup_exits_at_once(forked) -> None:
    launched = pipeline_processes.launch(forked=forked)
    started = time.monotonic()
    launched.close()
    for child in _children(launched):
        assert not child.is_alive() and child.returncode == 0
    # Closed, a child returns from waiting on its setup: it is not killed at the timeout.
    assert time.monotonic() - started < 25


@forks()
def test_a_forked_child_does_not_hold_its_siblings_connection() -> None:
    """The helper, forked after the writer, closes its copy of this process's connection to
    the writer: closing that connection here ends the writer while the helper runs on."""
    launched = pipeline_processes.launch(forked=True)
    assert launched.helper is not None  # these machines have two cores or more
    try:
        launched.writer.connection.close()
        launched.writer.join(timeout=20)
        assert not launched.writer.is_alive() and launched.writer.returncode == 0
        assert launched.helper.is_alive()
    finally:
        launched.close()
    assert not launched.helper.is_alive()


@forks()
def test_a_forked_child_that_fails_exits_with_an_error_and_never_returns_here(
        capfd) -> None:
    """A setup it cannot use (here: the wrong number of values) ends the child with status 1
    and the error on stderr; the child never runs this test's code after the fork."""
    launched = pipeline_processes.launch(forked=True)
    try:
        launched.writer.connection.send(("sqlite:///x.db", "not", "a writer's setup"))
        launched.writer.join(timeout=20)
        assert launched.writer.returncode == 1
    finally:
        launched.close()
    assert "TypeError" in capfd.readouterr().err


@forks()
def test_no_fork_while_another_thread_runs() -> None:
    """A fork copies only the calling thread, and any lock another thread holds stays held in
    the child: `jiefeng ingest` forks only with one thread running."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not pipeline_processes.can_fork()
        with pytest.raises(RuntimeError, match="one thread"):
            pipeline_processes.launch(forked=True)
    finally:
        stop.set()
        other.join()
    assert pipeline_processes.can_fork()


def _indexed(path: Path, elsewhere=None) -> tuple[list, list]:
    with path.open("rb") as source, scan(source, COMMAND_TYPES, elsewhere) as indexed:
        return indexed.items(), [list(b) for b in indexed.batches(10_000)]


def test_the_second_folding_process_indexes_half_of_a_large_file(tmp_path, big_file) -> None:
    engine = Engine(SqlStore(str(tmp_path / "h.db")))
    processes = engine.start_file_processes()
    assert processes.helper is not None  # these machines have two cores or more
    collected = []
    collect = processes.helper.collect_scan

    def recorded():
        collected.append(collect())
        return collected[-1]

    processes.helper.collect_scan = recorded
    try:
        got = _indexed(big_file, processes.helper)
    finally:
        processes.close()
    part, lines = collected[0]  # the helper's half, not None: it did index it
    # Its lines, and the empty piece after the file's last "\n".
    assert 0 < len(part) < len(got[0]) and lines == len(part) + 1
    assert got == _indexed(big_file)


def test_the_helper_imports_what_a_files_sweep_needs_before_its_first_part(
        tmp_path, big_file) -> None:
    """A sweep's criteria import sqlglot on first use; the helper is told to import it while
    it waits (nothing answered), not in the middle of a batch. It is told only when the
    file's commands hold a sweep, and goes on answering what it is sent after."""
    lines = [(n, line.encode()) for n, line in enumerate(
        big_file.read_text(encoding="utf-8").splitlines(), start=1)
        if json.loads(line)["type"] in COMMAND_TYPES]
    sweeps = [item for item in lines if json.loads(item[1])["type"] == "policy_sweep"]
    assert sweeps and len(sweeps) < len(lines)
    sent = []
    told = SimpleNamespace(connection=SimpleNamespace(send=sent.append))
    pipeline._FoldHelper.expect_commands(told, [i for i in lines if i not in sweeps])
    assert sent == []
    pipeline._FoldHelper.expect_commands(told, lines)
    assert sent == [(pipeline.WARM, ("jiefeng.policy.criteria",))]

    engine = Engine(SqlStore(str(tmp_path / "w.db")))
    processes = engine.start_file_processes()
    assert processes.helper is not None
    try:
        processes.helper.expect_commands(sweeps)
        with big_file.open("rb") as source:
            assert processes.helper.start_scan(source, 0, COMMAND_TYPES)
            answer = processes.helper.collect_scan()  # the next answer is the scan's
    finally:
        processes.close()
    assert answer is not None and len(answer[0]) > 0
    assert processes.helper.process.returncode == 0  # it ended as asked, not on an error


def test_a_file_replaced_under_its_path_is_indexed_here(tmp_path, big_file, caplog) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(big_file.read_bytes())
    engine = Engine(SqlStore(str(tmp_path / "r.db")))
    processes = engine.start_file_processes()
    try:
        with path.open("rb") as source:
            (tmp_path / "other.jsonl").write_bytes(b"{}\n" * 1_000_000)
            os.replace(tmp_path / "other.jsonl", path)  # the path names another file now
            with scan(source, COMMAND_TYPES, processes.helper) as indexed:
                got = indexed.items(), [list(b) for b in indexed.batches(10_000)]
    finally:
        processes.close()
    assert "is no longer the file being ingested" in caplog.text
    assert got == _indexed(big_file)


def test_a_child_imports_jiefeng_from_where_this_process_did(tmp_path, monkeypatch) -> None:
    """Not from a folder named jiefeng in the working directory (`python -m` would put the
    working directory first)."""
    fake = tmp_path / "jiefeng"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit(3)\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    launched = pipeline_processes.launch()
    launched.close()
    assert [c.returncode for c in _children(launched)] == [0] * len(_children(launched))


@forks()
def test_an_early_scan_indexes_the_first_lines_or_the_whole_file(tmp_path, big_file,
                                                                 monkeypatch) -> None:
    """Forked before the engine is imported, it indexes up to a line past the middle plus its
    head start (a file smaller than the head start: all of it); `scan` joins what it sends."""
    expected = _indexed(big_file)
    for head_bytes in (pipeline_processes.EARLY_SCAN_HEAD_BYTES, 0):
        monkeypatch.setattr(pipeline_processes, "EARLY_SCAN_HEAD_BYTES", head_bytes)
        with big_file.open("rb") as source:
            early = pipeline_processes.EarlyScan.start(source, COMMAND_TYPES)
            assert early is not None
            size = big_file.stat().st_size
            if head_bytes >= size:
                assert early.end is None
            else:
                assert size // 2 <= early.end < size and big_file.read_bytes()[early.end - 1] == 10
            with scan(source, COMMAND_TYPES, first=early) as indexed:
                got = indexed.items(), [list(b) for b in indexed.batches(10_000)]
        assert not early.is_alive() and early.returncode == 0
        assert got == expected


@forks()
def test_a_file_replaced_before_its_early_scan_is_indexed_here(tmp_path, big_file,
                                                                caplog) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(big_file.read_bytes())
    with path.open("rb") as source:
        stat = os.fstat(source.fileno())
        (tmp_path / "other.jsonl").write_bytes(b"{}\n" * 1_000_000)
        os.replace(tmp_path / "other.jsonl", path)  # the path names another file now
        early = pipeline_processes.EarlyScan(str(path), (stat.st_dev, stat.st_ino), None,
                                             COMMAND_TYPES)
        with scan(source, COMMAND_TYPES, first=early) as indexed:
            got = indexed.items(), [list(b) for b in indexed.batches(10_000)]
    assert "is no longer the file being ingested" in caplog.text
    assert got == _indexed(big_file)


@forks()
def test_stdin_has_no_early_scan(big_file) -> None:
    """Spooled to an unnamed temporary file, it has no path another process could open."""
    with big_file.open("rb") as stream, spooled(stream) as source:
        assert pipeline_processes.EarlyScan.start(source, COMMAND_TYPES) is None


@forks()
def test_an_early_scan_stopped_before_it_is_done_is_killed_at_once(tmp_path) -> None:
    path = tmp_path / "large.jsonl"
    line = json.dumps({"event_id": "e", "type": "purchase", "at": "2026-01-01T00:00:00+08:00",
                       "account_id": "A1", "amount": "1.00"}).encode() + b"\n"
    path.write_bytes(line * 500_000)  # a second or more of indexing
    with path.open("rb") as source:
        early = pipeline_processes.EarlyScan.start(source, ())
        assert early is not None
        started = time.monotonic()
        early.close()
    assert not early.is_alive() and time.monotonic() - started < 5
    assert early.returncode == -9  # killed, not waited for


def test_the_file_index_imports_no_event_model_store_nor_engine() -> None:
    """What lets the early scan start before the command imports the rest of jiefeng."""
    code = ("import sys, jiefeng.service.event_file, jiefeng.service.pipeline_processes; "
            "heavy = [m for m in ('jiefeng.domain.events', 'jiefeng.service.ingest', "
            "'jiefeng.store.sql', 'pydantic', 'sqlalchemy') if m in sys.modules]; "
            "print(heavy)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True)
    assert completed.stdout.strip() == "[]", completed.stdout


def test_the_event_kinds_known_ahead_are_the_models() -> None:
    from jiefeng.domain import event_kinds
    from jiefeng.domain.events import OPERATOR_TYPES

    assert event_kinds.OPERATOR_TYPES == OPERATOR_TYPES
    assert event_kinds.SCOPE_TYPES <= OPERATOR_TYPES
    assert COMMAND_TYPES == event_kinds.COMMAND_TYPES == {*OPERATOR_TYPES, "appeal_submitted"}
