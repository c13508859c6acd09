"""The command line as a user drives it: exit statuses, line numbers, output forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jiefeng.cli import app

runner = CliRunner()

LINES = [
    '{"event_id":"o1","type":"account_opened","at":"2026-01-05T10:00:00+08:00",'
    '"account_id":"A1","credit_limit":"5000.00","id_expires_on":"2035-01-01"}',
    '{"event_id":"p1","type":"purchase","at":"2026-01-06T10:00:00+08:00","account_id":"A1",'
    '"amount":"120.50","merchant_id":"M1"}',
    "",
    '{"event_id":"p2","type":"purchase","at":"2026-01-06T11:00:00+08:00","account_id":"A1",'
    '"amount":"-3","merchant_id":"M1"}',
    "this is not json",
] + [
    f'{{"event_id":"pw{n}","type":"password_attempt","at":"2026-01-07T10:0{n}:00+08:00",'
    '"account_id":"A1","ok":false}' for n in range(5)
]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, str]:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return events, str(tmp_path / "cli.db")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_ingest_reports_each_rejected_line_and_exits_2(files) -> None:
    events, db = files
    result = invoke("ingest", str(events), "--db", db)
    assert result.exit_code == 2
    assert "line 4: event p2: amount: must not be negative" in result.output
    assert "line 5: (line): not valid JSON" in result.output
    assert "accepted 7, duplicate 0, rejected 2" in result.output


def test_ingest_is_idempotent(files) -> None:
    events, db = files
    invoke("ingest", str(events), "--db", db)
    again = invoke("ingest", str(events), "--db", db, "--quiet")
    assert "accepted 0, duplicate 7, rejected 2" in again.output


def test_ingest_of_a_clean_file_exits_0(tmp_path: Path) -> None:
    events = tmp_path / "clean.jsonl"
    events.write_text(LINES[0] + "\n", encoding="utf-8")
    result = invoke("ingest", str(events), "--db", str(tmp_path / "c.db"))
    assert result.exit_code == 0, result.output


def test_ingest_names_an_invalid_authorization_and_keeps_an_issuer_decision(
        tmp_path: Path) -> None:
    events = tmp_path / "issuer.jsonl"
    purchase = ('{"event_id":"%s","type":"purchase","at":"2026-01-06T10:00:0%d+08:00",'
                '"account_id":"A1","amount":"9000.00","merchant_id":"M%d","authorization":"%s"}')
    events.write_text("\n".join([LINES[0], purchase % ("p1", 1, 1, "stand-in"),
                                 purchase % ("p2", 2, 2, "approved")]) + "\n", encoding="utf-8")
    db = str(tmp_path / "issuer.db")
    result = invoke("ingest", str(events), "--db", db)
    assert result.exit_code == 2
    assert ("line 2: event p1: authorization: Input should be 'approved' or 'declined'"
            in result.output)
    # p2 (9,000.00 on a 5,000.00 line) posted on the issuer's word.
    summary = json.loads(invoke("explain", "A1", "--db", db, "--at",
                                "2026-01-07T00:00:00+08:00", "--json").output)
    assert summary["ledger"]["unbilled"] == "9000.00"
    assert summary["ledger"]["available_credit"] == "0.00"
    assert "mismatched 0" in invoke("replay", "--db", db).output


def test_ingest_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = invoke("ingest", str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 2


def test_explain_json_and_text_in_both_languages(files) -> None:
    events, db = files
    invoke("ingest", str(events), "--db", db)
    at = "2026-01-07T12:00:00+08:00"
    result = invoke("explain", "A1", "--at", at, "--json", "--db", db)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "frozen" and data["can_purchase"] is False
    assert [h["code"] for h in data["holds"]] == ["password_locked"]
    assert data["holds"][0]["releases_at"] == "2026-01-08T10:04:00+08:00"
    assert data["policy_version"]
    zh = invoke("explain", "A1", "--at", at, "--db", db)
    en = invoke("explain", "A1", "--at", at, "--lang", "en", "--db", db)
    assert "密码" in zh.output and "password" in en.output.lower()
    lifted = invoke("explain", "A1", "--at", "2026-01-08T10:04:00+08:00", "--json", "--db", db)
    assert json.loads(lifted.output)["status"] == "active"


def test_explain_refuses_bad_input(files) -> None:
    events, db = files
    invoke("ingest", str(events), "--db", db)
    assert invoke("explain", "NOPE", "--db", db).exit_code == 2
    assert invoke("explain", "A1", "--at", "2026-01-07T12:00:00", "--db", db).exit_code == 2
    assert invoke("explain", "A1", "--lang", "fr", "--db", db).exit_code == 2


def test_authorize_exit_status_follows_the_decision(files) -> None:
    events, db = files
    invoke("ingest", str(events), "--db", db)
    locked = invoke("authorize", "A1", "--amount", "10.00", "--at", "2026-01-07T12:00:00+08:00",
                    "--json", "--db", db)
    assert locked.exit_code == 1
    assert json.loads(locked.output)["codes"] == ["password_locked"]
    fine = invoke("authorize", "A1", "--amount", "10.00", "--at", "2026-01-09T12:00:00+08:00",
                  "--db", db)
    assert fine.exit_code == 0 and "approved" in fine.output
    too_much = invoke("authorize", "A1", "--amount", "99999.00", "--at",
                      "2026-01-09T12:00:00+08:00", "--json", "--db", db)
    assert json.loads(too_much.output)["codes"] == ["insufficient_credit"]
    assert invoke("authorize", "A1", "--amount", "1.001", "--db", db).exit_code == 2


def test_replay_finds_no_mismatch(files) -> None:
    events, db = files
    invoke("ingest", str(events), "--db", db)
    result = invoke("replay", "--db", db)
    assert result.exit_code == 0
    assert "mismatched 0" in result.output


def test_policy_show_and_validate(tmp_path: Path) -> None:
    shown = invoke("policy", "show")
    assert shown.exit_code == 0 and 'version = "' in shown.output
    good = tmp_path / "good.toml"
    good.write_text(shown.output, encoding="utf-8")
    assert invoke("policy", "validate", str(good)).exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(shown.output.replace("release_at = 600", "release_at = 550")
                   + "\n[nonsense]\nx = 1\n", encoding="utf-8")
    result = invoke("policy", "validate", str(bad))
    assert result.exit_code == 2
    assert "score.release_at" in result.output
    assert "nonsense: unknown setting" in result.output


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output == f"jiefeng {version('jiefeng')}\n"


def _not_utf8_policy(tmp_path: Path) -> Path:
    shown = invoke("policy", "show").output
    path = tmp_path / "latin1.toml"
    # A comment saved in GBK by an editor that does not write UTF-8: bytes, not text.
    path.write_bytes(shown.encode("utf-8") + "# 花呗\n".encode("gbk"))
    return path


@pytest.mark.parametrize("command", [
    ["ingest", "EVENTS", "--db", "DB", "--policy", "POLICY"],
    ["policy", "validate", "POLICY"],
    ["policy", "show", "POLICY"],
    ["backtest", "--policy", "POLICY", "--db", "DB"],
    ["backtest", "--policy", "GOOD", "--baseline", "POLICY", "--db", "DB"],
])
def test_a_policy_file_that_is_not_utf8_is_refused_in_one_line(files, tmp_path, command) -> None:
    events, db = files
    invoke("ingest", str(events), "--db", db, "--quiet")
    good = tmp_path / "good.toml"
    good.write_text(invoke("policy", "show").output, encoding="utf-8")
    bad = _not_utf8_policy(tmp_path)
    names = {"EVENTS": str(events), "DB": db, "POLICY": str(bad), "GOOD": str(good)}
    result = invoke(*[names.get(part, part) for part in command])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # not an uncaught UnicodeDecodeError
    assert "not UTF-8 text (byte 0xbb at byte" in result.output
    assert "Traceback" not in result.output


def test_a_policy_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + invoke("policy", "show").output.encode("utf-8"))
    assert invoke("policy", "validate", str(path)).exit_code == 0
    assert invoke("policy", "show", str(path)).output.startswith("# jiefeng default policy")


def test_a_missing_policy_file_names_its_option_and_the_reason(files, tmp_path) -> None:
    events, db = files
    invoke("ingest", str(events), "--db", db, "--quiet")
    good = tmp_path / "good.toml"
    good.write_text(invoke("policy", "show").output, encoding="utf-8")
    missing = str(tmp_path / "missing.toml")
    result = invoke("backtest", "--policy", str(good), "--baseline", missing, "--db", db)
    assert result.exit_code == 2
    assert f"--baseline {missing}: No such file or directory" in result.output
    result = invoke("ingest", str(events), "--db", db, "--policy", str(tmp_path))
    assert result.exit_code == 2
    assert f"--policy {tmp_path}: Is a directory" in result.output


def test_the_installed_command_runs_as_a_process(files) -> None:
    """The console script, not only the in-process runner, is what the README promises."""
    events, db = files
    jiefeng = Path(sys.executable).with_name("jiefeng")
    env = {**os.environ, "JIEFENG_DB": db}
    completed = subprocess.run([str(jiefeng), "ingest", str(events), "--quiet"],
                               capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 2
    assert "accepted 7" in completed.stdout


def test_the_ingest_process_ends_with_its_output_written_and_its_database_closed(
        files, tmp_path) -> None:
    """The command ends its process without the interpreter's teardown: what it printed must
    still reach a file (not a terminal: buffered), and the database must be closed, its
    write-ahead log folded back (a copy of the .db file alone holds every event)."""
    import sqlite3

    events, db = files
    jiefeng = Path(sys.executable).with_name("jiefeng")
    for expected_code, source in ((2, events), (0, tmp_path / "clean.jsonl")):
        if expected_code == 0:
            source.write_text(LINES[0] + "\n" + LINES[1] + "\n", encoding="utf-8")
        out = tmp_path / f"out-{expected_code}.txt"
        with out.open("w", encoding="utf-8") as stdout:
            completed = subprocess.run([str(jiefeng), "ingest", str(source), "--db", db],
                                       stdout=stdout, stderr=subprocess.PIPE, text=True,
                                       timeout=120)
        assert completed.returncode == expected_code, completed.stderr
        printed = out.read_text(encoding="utf-8")
        assert printed.rstrip().splitlines()[-1].startswith("accepted ")
        assert not Path(db + "-wal").exists()
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(db).read_bytes())
    with sqlite3.connect(copy) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone()[0] == 7


def test_ingest_quiet_prints_only_the_totals(files) -> None:
    """Without --quiet the command draws its progress bar and names each rejected line on
    top of the totals; with it, the totals alone (what a script parses), exit code unchanged."""
    events, db = files
    jiefeng = Path(sys.executable).with_name("jiefeng")
    loud = subprocess.run([str(jiefeng), "ingest", str(events), "--db", db],
                          capture_output=True, text=True, timeout=120)
    assert loud.returncode == 2
    assert "ingest" in loud.stderr and "9/9" in loud.stderr  # the bar, at its end
    assert "line 4: event p2: amount: must not be negative" in loud.stdout
    quiet = subprocess.run([str(jiefeng), "ingest", str(events), "--db", db, "--quiet"],
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2
    assert quiet.stderr == ""
    assert quiet.stdout.strip().splitlines() == ["accepted 0, duplicate 7, rejected 2"]


@pytest.mark.postgres
def test_the_commands_on_postgresql(files) -> None:
    from backends import fresh_pg_database, require_postgres

    require_postgres()
    events, _ = files
    for url in fresh_pg_database():
        upgraded = invoke("db", "upgrade", "--db", url)
        assert upgraded.exit_code == 0 and "revision" in upgraded.output
        assert invoke("ingest", str(events), "--db", url).exit_code == 2  # two bad lines
        explained = invoke("explain", "A1", "--at", "2026-01-07T12:00:00+08:00", "--json",
                           "--db", url)
        assert json.loads(explained.output)["holds"][0]["code"] == "password_locked"
        assert "mismatched 0" in invoke("replay", "--db", url).output


def test_pipelined_ingest_reports_the_same_lines(files, monkeypatch, tmp_path: Path) -> None:
    """Files over one transaction are folded here and written by a second process; what the
    command reports and stores is what one transaction at a time gives."""
    events, db = files
    monkeypatch.setattr("jiefeng.service.engine.FILE_BATCH_EVENTS", 3)
    piped = invoke("ingest", str(events), "--db", db)
    alone = invoke("ingest", str(events), "--db", str(tmp_path / "alone.db"), "--no-pipeline")
    assert piped.exit_code == alone.exit_code == 2
    assert piped.output.splitlines()[-3:] == alone.output.splitlines()[-3:]
    assert "line 4: event p2: amount: must not be negative" in piped.output
    assert "accepted 7, duplicate 0, rejected 2" in piped.output
    frozen = invoke("explain", "A1", "--db", db, "--at", "2026-01-07T12:00:00+08:00", "--json")
    assert "password_locked" in frozen.output


def test_the_installed_command_pipelines_a_large_file(tmp_path: Path) -> None:
    import datetime as dt

    from jiefeng.store.sql import FILE_BATCH_EVENTS

    start = dt.datetime(2026, 1, 8, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    lines = [LINES[0]] + [
        json.dumps({"event_id": f"l{n}", "type": "login", "account_id": "A1",
                    "at": (start + dt.timedelta(seconds=n)).isoformat(), "device_id": f"D{n % 3}"})
        for n in range(FILE_BATCH_EVENTS + 200)
    ]
    lines[300], lines[4000] = lines[4000], lines[300]  # one early, one late
    lines[FILE_BATCH_EVENTS + 50] = '{"event_id": "x"}'
    events = tmp_path / "big.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    jiefeng = Path(sys.executable).with_name("jiefeng")
    completed = subprocess.run(
        [str(jiefeng), "ingest", str(events), "--db", str(tmp_path / "big.db")],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 2, completed.stderr
    assert f"line {FILE_BATCH_EVENTS + 51}: event x: type:" in completed.stdout
    assert f"accepted {len(lines) - 1}, duplicate 0, rejected 1" in completed.stdout
    replay = subprocess.run([str(jiefeng), "replay", "--db", str(tmp_path / "big.db")],
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stdout + replay.stderr


def test_policy_show_and_validate_take_db(tmp_path):
    """`policy show --db` prints the store's active version; `policy validate --db` refuses a
    version the store holds with other settings (hardening item 21)."""
    import datetime as dt

    from jiefeng.policy.schema import default_policy_text
    from jiefeng.service import policies
    from jiefeng.store.sql import SqlStore

    T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    db = str(tmp_path / "p.db")
    store = SqlStore(db)
    text = default_policy_text().replace('version = "', 'version = "mine-', 1)
    version = policies.upload(store, text, "ops", T0).record["version"]
    shown = invoke("policy", "show", "--db", db)
    assert shown.exit_code == 0 and shown.output.strip() == default_policy_text().strip()
    policies.activate(store, version, "ops", T0)
    store.close()
    assert invoke("policy", "show", "--db", db).output.strip() == text.strip()
    same = tmp_path / "same.toml"
    same.write_text(text, encoding="utf-8")
    assert invoke("policy", "validate", str(same), "--db", db).exit_code == 0
    changed = tmp_path / "changed.toml"
    changed.write_text(
        text.replace("[cure_probation]\ndays = 90 ", "[cure_probation]\ndays = 91 "),
        encoding="utf-8")
    refused = invoke("policy", "validate", str(changed), "--db", db)
    assert refused.exit_code == 2 and "already stored" in refused.output
    assert invoke("policy", "show", str(same), "--db", db).exit_code == 2


def test_help_names_the_spark_extra_with_its_brackets() -> None:
    """The help is rendered as markup, where `[spark]` would be a tag and vanish: the command's
    help must still say which extra to install."""
    result = runner.invoke(app, ["backtest", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "jiefeng[spark]" in result.output
