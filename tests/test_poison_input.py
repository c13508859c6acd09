"""Issue 9, poison input: event times far from the ingest clock (item 8), lines of a file that
are not UTF-8, nested too deeply or cut at U+2028 (item 10), and NUL or invisible characters
(item 11). Each bad event is rejected on its own, named by field; the others are applied."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.cli import app
from jiefeng.policy.schema import PolicyInvalid, default_policy, parse_policy_text
from jiefeng.service.engine import Engine
from jiefeng.service.lines import event_lines
from jiefeng.store.sql import SqlStore
from test_api_support import NOW as API_NOW
from test_api_support import T0 as API_T0
from test_api_support import Api, api, event, opened  # noqa: F401  (fixture)

TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=TZ)
NOW = T0 + dt.timedelta(days=30)
MINUTE = dt.timedelta(minutes=1)

runner = CliRunner()


def ev(event_id: str, type_: str, at: dt.datetime, account: str = "A1", **fields) -> dict:
    return {"event_id": event_id, "type": type_, "at": at.isoformat(), "account_id": account,
            **fields}


def account(account_id: str = "A1", at: dt.datetime = T0) -> dict:
    return ev(f"{account_id}-open", "account_opened", at, account_id,
              credit_limit="10000.00", id_expires_on="2035-01-01")


def results(report) -> list[tuple[str, str | None]]:
    return [(r.status, r.field) for r in report.results]


# --- item 8: `at` within a window around the ingest clock ----------------------------------


def test_events_ahead_of_the_ingest_clock_are_rejected_naming_at_and_the_bound(
        db_url: str) -> None:
    engine = Engine(SqlStore(db_url), now=lambda: NOW)
    report = engine.ingest_events([
        account(),
        ev("in-time", "login", NOW + 10 * MINUTE, device_id="D1"),  # the bound itself
        ev("ahead", "login", NOW + 11 * MINUTE, device_id="D1"),
        ev("year-2199", "login", NOW.replace(year=2199), device_id="D1"),
    ])
    assert results(report) == [("accepted", None), ("accepted", None), ("rejected", "at"),
                               ("rejected", "at")]
    reason = report.results[2].reason
    assert "more than 10 minutes ahead of the clock at ingest" in reason
    assert "ingest.max_future_minutes" in reason
    state, _, _ = engine.state_at("A1", NOW + 10 * MINUTE)
    assert state.clock == NOW + 10 * MINUTE  # the account never jumped to 2199


def test_events_before_the_floor_date_are_rejected(db_url: str) -> None:
    engine = Engine(SqlStore(db_url), now=lambda: NOW)
    report = engine.ingest_events([account("OLD", dt.datetime(1999, 12, 31, 23, 59,
                                                              tzinfo=dt.UTC)),
                                   account("NEW", dt.datetime(2000, 1, 1, tzinfo=dt.UTC))])
    assert results(report) == [("rejected", "at"), ("accepted", None)]
    assert "before 2000-01-01" in report.results[0].reason
    assert "ingest.min_event_date" in report.results[0].reason


def test_the_window_comes_from_the_policy(tmp_path: Path) -> None:
    text = default_policy_text_with("max_future_minutes = 10", "max_future_minutes = 0")
    text = text.replace("min_event_date = 2000-01-01", "min_event_date = 2026-01-01")
    engine = Engine(SqlStore(str(tmp_path / "j.db")), parse_policy_text(text), now=lambda: NOW)
    report = engine.ingest_events([
        account("A1"), ev("now", "login", NOW, device_id="D1"),
        ev("later", "login", NOW + MINUTE, device_id="D1"),
        account("A2", dt.datetime(2025, 12, 31, tzinfo=TZ))])
    assert results(report) == [("accepted", None), ("accepted", None), ("rejected", "at"),
                               ("rejected", "at")]


def default_policy_text_with(old: str, new: str) -> str:
    from jiefeng.policy.schema import default_policy_text

    text = default_policy_text()
    assert old in text
    return text.replace(old, new).replace('version = "default-2026.11.1"', 'version = "t-1"')


@pytest.mark.parametrize(("old", "new", "field"), [
    ("max_future_minutes = 10", "max_future_minutes = -1", "ingest.max_future_minutes"),
    ("max_future_minutes = 10", "max_future_minutes = 100000", "ingest.max_future_minutes"),
    ("max_future_minutes = 10", "max_future_minutes = 1.5", "ingest.max_future_minutes"),
    ("min_event_date = 2000-01-01", "min_event_date = 1900-01-01", "ingest.min_event_date"),
    ("min_event_date = 2000-01-01", 'min_event_date = "soon"', "ingest.min_event_date"),
])
def test_invalid_window_settings_are_refused_by_name(old: str, new: str, field: str) -> None:
    with pytest.raises(PolicyInvalid) as refused:
        parse_policy_text(default_policy_text_with(old, new))
    assert refused.value.problems[0][0] == field
    assert default_policy().ingest.max_future_minutes == 10


def test_stored_events_replay_whatever_the_clock_says_later(db_url: str) -> None:
    """The window is for arrivals: a replay, a re-sent file and a clock that moved back never
    reject what the log already holds."""
    batch = [account(), ev("late-login", "login", NOW + 5 * MINUTE, device_id="D1")]
    assert Engine(SqlStore(db_url), now=lambda: NOW).ingest_events(batch).accepted == 2
    earlier = Engine(SqlStore(db_url), now=lambda: T0 - dt.timedelta(days=1))
    earlier.replay()
    state, _, _ = earlier.state_at("A1", NOW + 6 * MINUTE)
    assert state.last_event_id == "late-login"
    again = earlier.ingest_events(batch)
    assert results(again) == [("duplicate", None), ("duplicate", None)]


def test_the_http_ingest_clock_is_the_service_clock(api: Api) -> None:  # noqa: F811
    response = api.client.post("/v1/events", headers=api.as_role("ingest"), json={"events": [
        opened("H1"), event("login", "H1", "h-ahead", API_NOW + 11 * MINUTE, device_id="D1"),
        event("login", "H1", "h-now", API_NOW, device_id="D1")]})
    assert response.status_code == 200, response.text
    statuses = [(r["status"], r.get("field")) for r in response.json()["results"]]
    assert statuses == [("accepted", None), ("rejected", "at"), ("accepted", None)]
    assert API_T0 < API_NOW


# --- item 11: NUL and invisible characters, per event, on both stores --------------------------


@pytest.mark.parametrize(("fields", "field"), [
    ({"merchant_id": "M\x001"}, "merchant_id"),
    ({"merchant_id": "M\u202e1"}, "merchant_id"),  # right-to-left override
    ({"merchant_id": "M\u200b1"}, "merchant_id"),  # zero-width space
    ({"merchant_id": "M\u2066x\u2069"}, "merchant_id"),  # isolate
    ({"merchant_id": "M\ufeff1"}, "merchant_id"),
])
def test_bad_characters_reject_the_event_and_keep_the_rest_over_http(
        api: Api, fields: dict, field: str) -> None:  # noqa: F811
    response = api.client.post("/v1/events", headers=api.as_role("ingest"), json={"events": [
        opened("N1"),
        event("purchase", "N1", "n-bad", API_T0 + MINUTE, amount="1.00", **fields),
        event("purchase", "N1", "n-good", API_T0 + 2 * MINUTE, amount="2.00",
              merchant_id="M1")]})
    assert response.status_code == 200, response.text
    items = response.json()["results"]
    assert [(r["status"], r.get("field")) for r in items] == [
        ("accepted", None), ("rejected", field), ("accepted", None)]
    assert "U+" in items[1]["reason"]
    assert api.client.get("/v1/accounts/N1", headers=api.as_role("operator")).status_code == 200


def test_nul_in_an_id_before_postgres_sees_it(api: Api) -> None:  # noqa: F811
    """Ids are looked up and locked before folding: the NUL must be caught before that."""
    response = api.client.post("/v1/events", headers=api.as_role("ingest"), json={"events": [
        opened("N\x002", event_id="open-N2"), {**opened("N3"), "event_id": "open\x00N3"},
        opened("N4")]})
    assert response.status_code == 200, response.text
    items = response.json()["results"]
    assert [(r["status"], r.get("field")) for r in items] == [
        ("rejected", "account_id"), ("rejected", "event_id"), ("accepted", None)]
    assert items[1]["event_id"] is None  # a bad id is not echoed


def test_nul_in_prose_is_rejected_and_invisible_characters_in_prose_are_kept(
        db_url: str) -> None:
    engine = Engine(SqlStore(db_url), now=lambda: NOW)
    report = engine.ingest_events([
        account(),
        {**ev("h1", "manual_hold_placed", T0 + MINUTE, reason="fraud\x00ring"), "actor": "ops"},
        # A zero-width joiner belongs in prose (emoji, some scripts): only ids refuse it.
        {**ev("h2", "manual_hold_placed", T0 + 2 * MINUTE, reason="ring \u200d note"),
         "actor": "ops"},
    ])
    assert results(report) == [("accepted", None), ("rejected", "reason"), ("accepted", None)]
    assert report.results[1].reason == "must not contain a NUL character (U+0000)"


def test_invisible_characters_in_listed_ids_name_the_item(db_url: str) -> None:
    engine = Engine(SqlStore(db_url), now=lambda: NOW)
    migration = {"event_id": "m1", "type": "migration_started", "at": T0.isoformat(),
                 "actor": "ops", "campaign_id": "C1", "account_ids": ["A1", "A\u200c2"]}
    (result,) = engine.ingest_events([migration]).results
    assert (result.status, result.field) == ("rejected", "account_ids.1")


# --- item 10: CLI lines -----------------------------------------------------------------------

OPEN = ('{"event_id":"o1","type":"account_opened","at":"2026-01-05T10:00:00+08:00",'
        '"account_id":"A1","credit_limit":"5000.00","id_expires_on":"2035-01-01"}')
BUY = ('{"event_id":"p1","type":"purchase","at":"2026-01-06T10:00:00+08:00","account_id":"A1",'
       '"amount":"120.50","merchant_id":"M1"}')
HOLD = ('{"event_id":"h1","type":"manual_hold_placed","at":"2026-01-06T11:00:00+08:00",'
        '"actor":"ops","account_id":"A1","reason":"first\u2028second"}')


def cli_ingest(path: Path, db: str):
    return runner.invoke(app, ["ingest", str(path), "--db", db])


def test_cli_rejects_a_line_that_is_not_utf8_and_applies_the_rest(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    bad = b'{"event_id":"x\xff","type":"login"}'
    events.write_bytes(b"\n".join([OPEN.encode(), bad, BUY.encode()]) + b"\n")
    result = cli_ingest(events, str(tmp_path / "j.db"))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "line 2: (line): not valid UTF-8 (byte 0xff at byte 15)" in result.output
    assert "accepted 2, duplicate 0, rejected 1" in result.output


def test_cli_rejects_a_deeply_nested_line_and_applies_the_rest(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    nested = "[" * 100_000 + "]" * 100_000
    events.write_text("\n".join([OPEN, nested, BUY]) + "\n", encoding="utf-8")
    result = cli_ingest(events, str(tmp_path / "j.db"))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "line 2: (line): nested too deeply" in result.output
    assert "accepted 2, duplicate 0, rejected 1" in result.output


def test_cli_splits_on_newline_only_and_skips_a_bom(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    # U+2028 inside a JSON string is legal JSON; CRLF line ends are fine too.
    events.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([OPEN, BUY, HOLD]).encode() + b"\r\n")
    result = cli_ingest(events, str(tmp_path / "j.db"))
    assert result.exit_code == 0, result.output
    assert "accepted 3, duplicate 0, rejected 0" in result.output


def test_cli_reads_stdin_as_bytes_too(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + "\n".join([OPEN, HOLD]).encode() + b"\n\xfe\n"
    result = runner.invoke(app, ["ingest", "-", "--db", str(tmp_path / "j.db")], input=data)
    assert result.exit_code == 2, result.output
    assert "line 3: (line): not valid UTF-8" in result.output
    assert "accepted 2, duplicate 0, rejected 1" in result.output


def test_event_lines_numbers_lines_as_an_editor_does() -> None:
    data = b"\xef\xbb\xbfa\n\n  \nb\xe2\x80\xa8c\r\nd"
    assert event_lines(data) == [(1, b"a"), (4, b"b\xe2\x80\xa8c\r"), (5, b"d")]


def test_cli_rejects_nul_without_a_traceback(db_url: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    nul = BUY.replace('"M1"', '"M\\u00001"').replace('"p1"', '"p2"')
    events.write_text("\n".join([OPEN, nul, BUY]) + "\n", encoding="utf-8")
    result = cli_ingest(events, db_url)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "line 2: event p2: merchant_id: must not contain a NUL character" in result.output
    assert "accepted 2, duplicate 0, rejected 1" in result.output


def test_the_demo_ingests_a_history_that_runs_past_today(tmp_path: Path) -> None:
    """The demo's clock is its horizon: 36 months from 2025 end in 2028, all accepted."""
    from jiefeng.batch.limits import MAX_MONTHS, MIN_ACCOUNTS

    result = runner.invoke(app, ["demo", "--accounts", str(MIN_ACCOUNTS), "--months",
                                 str(MAX_MONTHS), "--db", str(tmp_path / "demo.db"), "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "rejected 0" in result.output
