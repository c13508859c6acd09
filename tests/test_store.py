"""The store and the ingest service, on SQLite and on PostgreSQL: idempotency, rejection with
nothing half-applied, late events, replay equals incremental, atomic batches, two writers."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import random
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.service.engine import AccountNotFound, Engine, fingerprint
from jiefeng.store import schema as t
from jiefeng.store.sql import SqlStore

TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=TZ)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def ev(event_id: str, type_: str, at: dt.datetime, account: str = "A1", **fields) -> dict:
    return {"event_id": event_id, "type": type_, "at": at.isoformat(), "account_id": account,
            **fields}


def opened(account: str = "A1", at: dt.datetime = T0, event_id: str | None = None) -> dict:
    return ev(event_id or f"{account}-open", "account_opened", at, account,
              credit_limit="10000.00", id_expires_on="2035-01-01")


def engine_for(url: str, now: dt.datetime = T0 + 400 * DAY) -> Engine:
    return Engine(SqlStore(url), now=lambda: now)


def count_events(engine: Engine) -> int:
    with engine.store.read() as connection:
        return connection.execute(select(func.count()).select_from(t.events)).scalar_one()


def stored_outcomes(engine: Engine) -> dict[str, tuple[str, str]]:
    """event_id -> (account_id, outcome) of every purchase: the decisions as stored."""
    e = t.events.c
    with engine.store.read() as connection:
        rows = connection.execute(select(e.event_id, e.account_id, e.outcome)
                                  .where(e.type == "purchase"))
        return {event_id: (account_id, outcome) for event_id, account_id, outcome in rows}


def test_retried_batch_is_applied_once(db_url: str) -> None:
    engine = engine_for(db_url)
    batch = [opened(), ev("p1", "purchase", T0 + HOUR, amount="100.00", merchant_id="M1")]
    first = engine.ingest_events(batch)
    assert (first.accepted, first.duplicates, first.rejected) == (2, 0, 0)
    again = engine.ingest_events(batch)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 2, 0)
    assert count_events(engine) == 2
    state, _, _ = engine.state_at("A1", T0 + 2 * HOUR)
    assert state.unbilled_fen == 10_000  # one purchase, not two


def test_same_id_with_other_content_is_rejected(db_url: str) -> None:
    engine = engine_for(db_url)
    engine.ingest_events([opened(), ev("p1", "purchase", T0 + HOUR, amount="100.00",
                                       merchant_id="M1")])
    report = engine.ingest_events([ev("p1", "purchase", T0 + HOUR, amount="999.00",
                                      merchant_id="M1")])
    (result,) = report.results
    assert result.status == "rejected" and result.field == "event_id"
    state, _, _ = engine.state_at("A1", T0 + 2 * HOUR)
    assert state.unbilled_fen == 10_000


def test_a_differently_formatted_resend_is_a_duplicate(db_url: str) -> None:
    engine = engine_for(db_url)
    engine.ingest_events([opened()])
    line = ('{"type": "purchase", "event_id": "p1", "account_id": "A1", "merchant_id": "M1", '
            f'"amount": "100.00", "at": "{(T0 + HOUR).isoformat()}"}}')
    engine.ingest([(1, line)])
    resent = engine.ingest([(7, line.replace(", ", ","))])
    assert [(r.position, r.status) for r in resent.results] == [(7, "duplicate")]


def test_rejected_events_name_the_field_and_the_rest_applies(db_url: str) -> None:
    engine = engine_for(db_url)
    report = engine.ingest_events([
        opened(),
        ev("bad-amount", "purchase", T0 + HOUR, amount="1.005", merchant_id="M1"),
        ev("no-account", "purchase", T0 + HOUR, account="NOPE", amount="1.00", merchant_id="M"),
        ev("bad-refund", "refund", T0 + HOUR, amount="5.00", purchase_event_id="missing"),
        ev("ok", "purchase", T0 + 2 * HOUR, amount="20.00", merchant_id="M1"),
    ])
    by_id = {r.event_id: r for r in report.results}
    assert by_id["bad-amount"].field == "amount" and "2 decimal" in by_id["bad-amount"].reason
    assert by_id["no-account"].field == "account_id"
    assert by_id["bad-refund"].field == "purchase_event_id"
    assert by_id["ok"].status == "accepted"
    assert count_events(engine) == 2
    with pytest.raises(AccountNotFound):
        engine.state_at("NOPE")


def test_a_late_repayment_gives_the_state_of_in_order_arrival(db_url: str, tmp_path) -> None:
    """Events of one account may arrive out of time order."""
    purchase = ev("p1", "purchase", T0 + DAY, amount="500.00", merchant_id="M1")
    repay = ev("r1", "repayment", dt.datetime(2026, 2, 8, 12, tzinfo=TZ), amount="500.00")
    later = ev("s1", "score_update", dt.datetime(2026, 3, 1, tzinfo=TZ), score=700)
    in_order = engine_for(str(tmp_path / "in-order.db"))
    in_order.ingest_events([opened(), purchase, repay, later])
    late = engine_for(db_url)
    late.ingest_events([opened(), purchase, later])
    report = late.ingest_events([repay])
    assert report.accepted == 1
    at = dt.datetime(2026, 4, 1, tzinfo=TZ)
    assert fingerprint(late.state_at("A1", at)[0]) == fingerprint(in_order.state_at("A1", at)[0])
    assert "overdue" not in late.state_at("A1", at)[0].holds
    assert late.replay(write=False).mismatched == []


def test_explain_as_of_a_time_never_changes(db_url: str) -> None:
    engine = engine_for(db_url)
    engine.ingest_events([opened()] + [
        ev(f"pw{i}", "password_attempt", T0 + DAY + i * HOUR, ok=False) for i in range(5)])
    asked_at = T0 + DAY + 5 * HOUR
    before = engine.explain("A1", asked_at)
    engine.ingest_events([ev("s1", "score_update", T0 + 30 * DAY, score=500)])
    assert engine.explain("A1", asked_at) == before
    assert [h["code"] for h in before["holds"]] == ["password_locked"]


def test_replay_equals_incremental_on_a_portfolio(db_url: str) -> None:
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    events = generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=3))
    engine = engine_for(db_url)
    for start in range(0, len(events), 700):  # batches that cut across accounts and time
        report = engine.ingest_events(events[start : start + 700])
        assert report.rejected == 0, [r for r in report.results if r.status == "rejected"][:3]
    horizon = dt.datetime.fromisoformat(events[-1]["at"]) + DAY
    engine.advance_all(horizon)
    report = engine.replay(write=False)
    assert report.accounts == 100
    assert report.mismatched == []


def test_a_failed_batch_leaves_nothing_and_the_retry_succeeds(db_url: str, monkeypatch) -> None:
    engine = engine_for(db_url)
    engine.ingest_events([opened()])
    batch = [ev("p1", "purchase", T0 + HOUR, amount="100.00", merchant_id="M1"),
             ev("p2", "purchase", T0 + 2 * HOUR, amount="50.00", merchant_id="M1")]

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(engine.store, "insert_effect_rows", broken)
    with pytest.raises(RuntimeError):
        engine.ingest_events(batch)
    monkeypatch.undo()
    assert count_events(engine) == 1
    state, _, _ = engine.state_at("A1", T0 + 3 * HOUR)
    assert state.unbilled_fen == 0  # the in-memory state of the failed batch was dropped
    assert engine.ingest_events(batch).accepted == 2
    assert engine.state_at("A1", T0 + 3 * HOUR)[0].unbilled_fen == 15_000


def test_two_engines_alternating_on_one_account_lose_nothing(db_url: str) -> None:
    """Two processes share the database: each one's cache must notice the other's writes."""
    first, second = engine_for(db_url), engine_for(db_url)
    first.ingest_events([opened()])
    for n in range(40):
        writer = first if n % 3 else second
        writer.ingest_events([ev(f"p{n}", "purchase", T0 + (n + 1) * HOUR, amount="10.00",
                                 merchant_id=f"M{n % 7}")])
    for reader in (first, second):
        state, _, _ = reader.state_at("A1", T0 + 50 * HOUR)
        assert state.unbilled_fen == 40 * 1_000
        assert state.events_applied == 41
    assert first.replay(write=False).mismatched == []


def _post_purchases(url: str, worker: int, count: int) -> None:
    engine = engine_for(url)
    rng = random.Random(worker)
    for n in range(count):
        # Each worker resends some of its events: retries must be harmless.
        event_id = f"w{worker}-{n}"
        engine.ingest_events([
            {"event_id": event_id, "type": "purchase", "account_id": "A1",
             "at": (T0 + HOUR + dt.timedelta(seconds=worker * 100_000 + n)).isoformat(),
             "amount": "1.00", "merchant_id": "M1"}])
        if rng.random() < 0.3:
            engine.ingest_events([
                {"event_id": event_id, "type": "purchase", "account_id": "A1",
                 "at": (T0 + HOUR + dt.timedelta(seconds=worker * 100_000 + n)).isoformat(),
                 "amount": "1.00", "merchant_id": "M1"}])


def test_concurrent_writers_for_one_account_lose_no_update(db_url: str) -> None:
    engine_for(db_url).ingest_events([opened()])
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_post_purchases, args=(db_url, w, 60)) for w in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    engine = engine_for(db_url)
    state, _, _ = engine.state_at("A1", T0 + 10 * DAY)
    assert state.events_applied == 121
    assert state.unbilled_fen == 120 * 100
    assert count_events(engine) == 121
    assert engine.replay(write=False).mismatched == []


def test_a_backdated_sweep_replays_accounts_already_past_it(db_url: str) -> None:
    """An operator command older than some accounts' state is folded in its place in time."""
    engine = engine_for(db_url)
    engine.ingest_events([
        opened("A1"), opened("A2"),
        ev("s1", "score_update", T0 + DAY, "A1", score=610),
        ev("s2", "score_update", T0 + DAY, "A2", score=700),
        ev("later", "purchase", T0 + 20 * DAY, "A1", amount="5.00", merchant_id="M1"),
    ])
    sweep = {"event_id": "sw1", "type": "policy_sweep", "at": (T0 + 10 * DAY).isoformat(),
             "actor": "ops.alice", "sweep_id": "tighten-1", "criteria": "score < 650",
             "reopen_criteria": "score >= 680"}
    assert engine.ingest_events([sweep]).accepted == 1
    a1, _, _ = engine.state_at("A1", T0 + 21 * DAY)
    assert "policy_tightening" in a1.holds
    assert a1.holds["policy_tightening"].since == T0 + 10 * DAY
    # Decisions are facts: the purchase was approved when it was made and stays bought.
    assert a1.unbilled_fen == 500
    assert stored_outcomes(engine)["later"] == ("A1", "approved")
    # A purchase that arrives now, dated inside the closure, is decided at its place: declined.
    assert engine.ingest_events([ev("late", "purchase", T0 + 15 * DAY, "A1", amount="7.00",
                                    merchant_id="M1")]).accepted == 1
    assert stored_outcomes(engine)["late"] == ("A1", "declined:policy_tightening")
    assert engine.state_at("A1", T0 + 21 * DAY)[0].unbilled_fen == 500
    assert "policy_tightening" not in engine.state_at("A2", T0 + 21 * DAY)[0].holds
    assert engine.replay(write=False).mismatched == []


def test_a_maintenance_window_known_at_an_events_instant_applies_to_it(db_url: str) -> None:
    engine = engine_for(db_url)
    at = T0 + DAY
    engine.ingest_events([opened(), ev("p1", "purchase", at, amount="5.00", merchant_id="M1")])
    window = {"event_id": "mw1", "type": "maintenance_scheduled", "at": at.isoformat(),
              "actor": "ops.alice", "window_id": "w1", "start": at.isoformat(),
              "end": (at + HOUR).isoformat()}
    assert engine.ingest_events([window]).accepted == 1
    # p1 was approved before the window was known, and that decision stands; a purchase at the
    # same instant that arrives now is covered (a window known at `at` covers `at`): declined.
    assert engine.state_at("A1", at + 2 * HOUR)[0].unbilled_fen == 500
    engine.ingest_events([ev("p2", "purchase", at, amount="6.00", merchant_id="M1")])
    assert stored_outcomes(engine)["p2"] == ("A1", "declined:maintenance")
    # In one batch the command comes first at its instant, whatever the order of the lines.
    engine.ingest_events([opened("A2"),
                          ev("p3", "purchase", T0 + 3 * DAY, "A2", amount="5.00",
                             merchant_id="M1"),
                          {**window, "event_id": "mw2", "window_id": "w2",
                           "at": (T0 + 3 * DAY).isoformat(),
                           "start": (T0 + 3 * DAY).isoformat(),
                           "end": (T0 + 3 * DAY + HOUR).isoformat()}])
    assert stored_outcomes(engine)["p3"] == ("A2", "declined:maintenance")
    assert engine.state_at("A1", at + 2 * HOUR)[0].unbilled_fen == 500
    assert engine.replay(write=False).mismatched == []


def test_late_arrivals_at_scale_give_the_in_order_portfolio(db_url: str, tmp_path) -> None:
    """Deliver a portfolio with some events held back (account events and operator commands
    alike): every account ends as if all had arrived in time order, except that a purchase is
    decided when it arrives (decisions are facts). Where no decision differs, the states are
    the in-order ones exactly; a replay reproduces the stored state either way."""
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    events = generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=5))
    rng = random.Random(9)
    # Hold back 3 % of the events nothing else refers to (a refund cannot come before its
    # purchase, nor a cancellation before its window), a policy sweep among them.
    referenced = {e.get("purchase_event_id") for e in events}
    referenced |= {pid for e in events for pid in e.get("purchase_event_ids", [])}
    holdable = {"repayment", "score_update", "asset_update", "activity", "login",
                "password_attempt", "bureau_record", "profile_change", "policy_sweep",
                "purchase"}
    arrival, held = [], []
    for event in events:
        if (event["type"] in holdable and event["event_id"] not in referenced
                and (event["type"] == "policy_sweep" or rng.random() < 0.03)):
            held.append(event)
        else:
            arrival.append(event)
    for event in held:  # each arrives somewhere after its time
        arrival.insert(rng.randrange(events.index(event), len(arrival) + 1), event)
    assert any(e["type"] == "policy_sweep" for e in held)
    assert sorted(e["event_id"] for e in arrival) == sorted(e["event_id"] for e in events)

    in_order = engine_for(str(tmp_path / "in-order.db"))
    late = engine_for(db_url)
    for engine, stream in ((in_order, events), (late, arrival)):
        retry = []
        for start in range(0, len(stream), 900):
            batch = stream[start : start + 900]
            report = engine.ingest_events(batch)
            # A refund of a purchase that, without a repayment still in transit, was declined
            # is refused: the purchase stays declined, so a retry is refused too.
            rejected = [r for r in report.results if r.status == "rejected"]
            assert all(r.field == "purchase_event_id" for r in rejected), rejected
            retry += [batch[r.position] for r in rejected]
        assert engine is late or not retry
    refused = {e["account_id"] for e in retry}
    decided_in_order, decided_late = stored_outcomes(in_order), stored_outcomes(late)
    assert decided_late.keys() == decided_in_order.keys()
    differing = [event_id for event_id, (_, outcome) in decided_late.items()
                 if decided_in_order[event_id][1] != outcome]
    # A decision differs only where, when the purchase arrived, an earlier event of its
    # account (or the sweep) was still held back. (One offset throughout: text order is time
    # order.)
    arrived = {e["event_id"]: n for n, e in enumerate(arrival)}
    by_id = {e["event_id"]: e for e in events}
    for event_id in differing:
        purchase = by_id[event_id]
        assert any(arrived[h["event_id"]] > arrived[event_id]
                   and h["at"] < purchase["at"]
                   and h.get("account_id", purchase["account_id"]) == purchase["account_id"]
                   for h in held), event_id
    redecided = {decided_late[event_id][0] for event_id in differing}
    assert refused <= redecided  # a refund is refused only where a purchase was declined
    horizon = dt.datetime.fromisoformat(events[-1]["at"]) + DAY
    accounts = sorted({e["account_id"] for e in events if "account_id" in e})
    same = [a for a in accounts if a not in redecided]
    assert len(same) >= len(accounts) // 2, redecided  # the comparison keeps its reach
    for account_id in same:
        expected = fingerprint(in_order.state_at(account_id, horizon)[0])
        assert fingerprint(late.state_at(account_id, horizon)[0]) == expected, account_id
    assert late.replay(write=False).mismatched == []


def test_an_activated_policy_decides_from_its_activation_on(db_url: str) -> None:
    """Activation is an event: before it the built-in policy decided, after it the new one,
    and a replay reproduces both; an explicit what-if policy ignores activations."""
    from jiefeng.policy.schema import default_policy, parse_policy_text
    from jiefeng.service import policies

    engine = engine_for(db_url)
    tight = 'version = "tight-1"\n[password]\nmax_consecutive_failures = 2\n'
    policies.upload(engine.store, tight, "ops.alice", T0)
    engine.ingest_events([opened()] + [
        ev(f"pw{i}", "password_attempt", T0 + (i + 1) * HOUR, ok=False) for i in range(2)])
    activation = policies.activation_event(engine.store, "tight-1", "ops.alice", T0 + 5 * HOUR)
    assert engine.ingest_events([activation]).accepted == 1
    engine.ingest_events([
        ev(f"late{i}", "password_attempt", T0 + (6 + i) * HOUR, ok=False) for i in range(2)])

    before = engine.explain("A1", T0 + 4 * HOUR)
    assert before["policy_version"] == default_policy().version and before["holds"] == []
    after = engine.explain("A1", T0 + 8 * HOUR)
    assert after["policy_version"] == "tight-1"
    assert [h["code"] for h in after["holds"]] == ["password_locked"]
    assert engine.replay(write=False).mismatched == []

    what_if = Engine(SqlStore(db_url), parse_policy_text(tight.replace("tight-1", "what-if")),
                     now=lambda: T0)
    assert what_if.explain("A1", T0 + 4 * HOUR)["policy_version"] == "what-if"


def test_the_head_revision_the_store_knows_is_alembics_head() -> None:
    from importlib import resources

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from jiefeng.store.sql import HEAD_REVISION

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("jiefeng.store").joinpath("migrations")))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_a_database_at_head_opens_without_migrating(db_url: str, monkeypatch) -> None:
    """A second open finds the schema current and neither loads nor runs Alembic; a database
    behind head is migrated."""
    import alembic.command

    from jiefeng.store.sql import HEAD_REVISION

    SqlStore(db_url).close()  # creates the schema (the fixture's database may be new)
    calls = []
    monkeypatch.setattr(alembic.command, "upgrade", lambda *args: calls.append(args))
    store = SqlStore(db_url)
    assert store.current_revision() == HEAD_REVISION and calls == []
    with store.transaction() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    SqlStore(db_url).close()
    assert len(calls) == 1  # behind head: Alembic is asked to upgrade
    with store.transaction() as connection:  # leave the database as the fixture found it
        connection.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{HEAD_REVISION}'")
    store.close()


def test_a_sweep_writes_every_account_a_chunk_at_a_time(db_url: str, monkeypatch) -> None:
    """The accounts a sweep batch does not otherwise hold are loaded, advanced and written a
    chunk at a time, never all at once; each ends as a refold says, with its feature row and
    its appeals (one lapses on the way) up to date."""
    from jiefeng.service import ingest
    from jiefeng.store.features import account_features

    monkeypatch.setattr(ingest, "SWEEP_CHUNK_ACCOUNTS", 2)
    accounts = [f"A{n}" for n in range(1, 8)]
    setup = engine_for(db_url)
    setup.ingest_events(
        [opened(a) for a in accounts]
        + [ev(f"{a}-score", "score_update", T0 + DAY, a, score=600 if n % 2 else 700)
           for n, a in enumerate(accounts)]
        # A3: a cash-out hold lifting after 60 quiet days, appealed: the appeal lapses then.
        + [ev("A3-transfer", "purchase", T0 + 2 * DAY, "A3", amount="50.00",
              merchant_id="M1", kind="transfer"),
           ev("A3-appeal", "appeal_submitted", T0 + 3 * DAY, "A3", appeal_id="ap-3",
              hold_code="cash_out_suspected", statement="it was rent")])
    loaded: list[int] = []
    load_states = ingest.load_states

    def counted(store, connection, account_ids, *args, **kwargs):
        account_ids = list(account_ids)
        loaded.append(len(account_ids))
        return load_states(store, connection, account_ids, *args, **kwargs)

    monkeypatch.setattr(ingest, "load_states", counted)
    engine = engine_for(db_url)  # a new process cache: every state comes from the store
    sweep_at = T0 + 90 * DAY
    sweep = {"event_id": "sw1", "type": "policy_sweep", "at": sweep_at.isoformat(),
             "actor": "ops.alice", "sweep_id": "tighten-1", "criteria": "score < 650",
             "reopen_criteria": "score >= 680"}
    assert engine.ingest_events([sweep]).accepted == 1
    assert loaded and max(loaded) <= 2 and sum(loaded) >= len(accounts)

    with engine.store.read() as connection:
        rows = {r.account_id: r for r in connection.execute(select(t.accounts))}
        features = {r.account_id: r for r in connection.execute(select(account_features))}
        appeal = connection.execute(select(t.appeals.c.status)
                                    .where(t.appeals.c.appeal_id == "ap-3")).scalar_one()
    for n, account_id in enumerate(accounts):
        swept = n % 2 == 1
        assert ("policy_tightening" in rows[account_id].hold_codes) is swept, account_id
        assert rows[account_id].status == ("closed" if swept else "active"), account_id
        assert rows[account_id].clock_utc == t.utc_text(sweep_at)
        assert features[account_id].hold_codes == rows[account_id].hold_codes
        assert features[account_id].clock_utc == t.utc_text(sweep_at)
    assert "cash_out_suspected" not in rows["A3"].hold_codes
    assert appeal == "lapsed"
    assert engine.replay(write=False).mismatched == []
    # The next batch finds them as written.
    engine.ingest_events([ev("A2-later", "score_update", sweep_at + DAY, "A2", score=690)])
    assert engine.state_at("A2", sweep_at + 91 * DAY)[0].sweeps_seen == 1


def _sqlite_schema(path: Path) -> tuple[list[tuple], list[tuple]]:
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        objects = connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        version = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection.close()
    return objects, version


def test_a_new_sqlite_database_is_made_at_head_as_the_migrations_make_it(
        tmp_path: Path, monkeypatch) -> None:
    """A new SQLite file gets the head schema in one step, without Alembic: the same tables,
    columns, indexes, triggers and version, object for object, as running every migration.
    A migration that changes the schema without the tables (or the reverse) fails here."""
    import subprocess
    import sys

    from jiefeng.store.sql import HEAD_REVISION

    probe = ("import sys\nfrom jiefeng.store.sql import SqlStore\n"
             f"SqlStore({str(tmp_path / 'fresh.db')!r}).close()\n"
             "print('alembic' in sys.modules)\n"
             "print('sqlalchemy.dialects.postgresql' in sys.modules)\n")
    made = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    # made without Alembic, and without loading PostgreSQL's dialect (19 modules, 15-20 ms)
    assert made.stdout.split() == ["False", "False"]
    monkeypatch.setattr(SqlStore, "_created_at_head", lambda self: False)
    SqlStore(str(tmp_path / "migrated.db")).close()
    fresh = _sqlite_schema(tmp_path / "fresh.db")
    assert fresh == _sqlite_schema(tmp_path / "migrated.db")
    assert fresh[1] == [(HEAD_REVISION,)]
    assert {name for kind, name, _, _ in fresh[0] if kind == "trigger"} == {
        "audit_log_no_update", "audit_log_no_delete"}


def test_the_metadata_declares_the_partial_index_as_migration_0001_made_it() -> None:
    """The operator-type index is partial on both databases: SQLite's condition is declared
    with the table, PostgreSQL's where Alembic reads the metadata (`with_postgresql_options`),
    so that comparing the metadata with a PostgreSQL database finds what the migration made."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex

    ddl = CreateIndex(t.operator_type_index)
    assert str(ddl.compile(dialect=sqlite.dialect())).endswith("WHERE account_id IS NULL")
    t.with_postgresql_options()
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        assert str(ddl.compile(dialect=dialect)).endswith("WHERE account_id IS NULL")


def test_a_sqlite_file_that_holds_anything_is_migrated_not_made_afresh(tmp_path: Path) -> None:
    """Only an empty database is made in one step: one with a table of its own (not jiefeng's,
    or an old schema without a version) goes through the migrations, which refuse or upgrade
    it as before."""
    import sqlite3

    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.commit()
    connection.close()
    store = SqlStore(str(path))  # the migrations create jiefeng's tables beside it
    store.close()
    objects, version = _sqlite_schema(path)
    assert ("table", "notes", "notes", "CREATE TABLE notes (text TEXT)") in objects
    assert len(version) == 1


def test_the_audit_log_of_a_database_made_at_head_is_append_only(tmp_path: Path) -> None:
    from sqlalchemy.exc import DatabaseError

    store = SqlStore(str(tmp_path / "fresh.db"))
    with store.transaction() as connection:
        connection.exec_driver_sql(
            "INSERT INTO audit_log (at_utc, request_id, actor_kind, actor, roles, action, "
            "method, path, status) VALUES ('t', 'r', 'api_key', 'a', 'operator', 'x', 'POST', "
            "'/p', 200)")
    for statement in ("UPDATE audit_log SET actor = 'b'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"):
            with store.transaction() as connection:
                connection.exec_driver_sql(statement)
    store.close()
