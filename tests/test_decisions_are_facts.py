"""Decisions are facts: a purchase is decided once, when it is first ingested, and every later
fold reuses the stored outcome (late-arrival replay, snapshot catch-up, `jiefeng replay`,
reads as of a past time, the pipelined file ingest). A file or batch is decided in time order,
so its outcomes do not depend on the order of its lines, on how it is cut into batches, or on
other accounts' batches running at the same time. And `authorization`: the issuer's own
authorizer already decided. Service tests run on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from backends import db_url, fresh_pg_database, require_postgres  # noqa: F401  (fixture)
from builders import HOUR, MINUTE, T0, Account, World
from jiefeng.domain import effects as E
from jiefeng.domain.core import fold
from jiefeng.domain.events import EventRejected, parse_event
from jiefeng.domain.outcomes import (
    Decided,
    Outcome,
    outcome_from_data,
    outcome_from_text,
)
from jiefeng.service import pipeline
from jiefeng.service.engine import Engine, EngineCaches, fingerprint
from jiefeng.service.ingest import decision_order, ingest, tie_rank
from jiefeng.store import schema as t
from jiefeng.store.sql import SqlStore

DAY = dt.timedelta(days=1)
NOW = T0 + 60 * DAY


def ev(event_id: str, type_: str, at: dt.datetime, account: str = "A1", **fields: Any) -> dict:
    return {"event_id": event_id, "type": type_, "at": at.isoformat(), "account_id": account,
            **fields}


def opened(account: str = "A1", at: dt.datetime = T0, limit: str = "10000.00") -> dict:
    return ev(f"{account}-open", "account_opened", at, account, credit_limit=limit,
              id_expires_on="2035-01-01")


def purchase(event_id: str, at: dt.datetime, amount: str, account: str = "A1",
             **fields: Any) -> dict:
    # A merchant of its own: round amounts at one merchant would be a cash-out signal.
    return ev(event_id, "purchase", at, account, amount=amount,
              merchant_id=fields.pop("merchant_id", f"M-{event_id}"), **fields)


def engine_for(url: str, caches: EngineCaches | None = None) -> Engine:
    return Engine(SqlStore(url), now=lambda: NOW, caches=caches)


def stored_outcomes(engine: Engine) -> dict[str, str | None]:
    """event_id -> outcome of every purchase, as stored with it."""
    e = t.events.c
    with engine.store.read() as connection:
        rows = connection.execute(select(e.event_id, e.outcome).where(e.type == "purchase"))
        return dict(rows.all())


def bought(engine: Engine, account: str = "A1", at: dt.datetime = NOW) -> set[str]:
    """The purchases the account's state holds as approved (posted), as of `at`."""
    return set(engine.state_at(account, at)[0].purchases)


def decided(effects: list[E.Effect]) -> dict[str, dict[str, Any]]:
    return {e.cause: e.data for e in effects if e.kind == E.PURCHASE_DECIDED}


# --- the pure core: a recorded outcome reaches the fold as data ---------------------------------


def _parsed(*raws: dict) -> list[Any]:
    return [parse_event(raw) for raw in raws]


def test_the_fold_reuses_a_recorded_decline_and_a_recorded_approval(policy) -> None:
    """Folded in time order, the repayment before p2 would approve it; recorded as declined,
    it stays declined. A recorded approval posts even where the fold would now decline."""
    p1, repaid, p2, p3 = _parsed(
        purchase("p1", T0 + HOUR, "9000.00"),
        ev("r1", "repayment", T0 + 2 * HOUR, amount="9000.00"),
        purchase("p2", T0 + 3 * HOUR, "2000.00"),
        purchase("p3", T0 + 4 * HOUR, "10500.00"))
    opening = parse_event(opened())
    fresh, fresh_effects = fold("A1", [opening, p1, repaid, p2, p3], policy)
    assert decided(fresh_effects)["p2"]["approved"] is True  # what deciding again would say
    assert decided(fresh_effects)["p3"]["codes"] == ["insufficient_credit"]

    declined = Outcome(False, ("insufficient_credit",))
    recorded = [opening, p1, repaid, Decided(p2, declined), Decided(p3, Outcome(True))]
    state, effects = fold("A1", recorded, policy)
    assert decided(effects)["p2"] == {**declined.data(), "amount_fen": 200_000,
                                      "policy_version": policy.version}
    assert decided(effects)["p3"]["approved"] is True
    assert set(state.purchases) == {"p1", "p3"}
    assert [d.event_id for d in state.declined_purchases] == ["p2"]
    assert state.purchases_total_fen == 900_000 + 1_050_000


def test_reusing_the_first_decisions_reproduces_the_effects_and_the_state(policy) -> None:
    """Fold a synthetic portfolio, record every outcome, fold again with them: the same
    PURCHASE_DECIDED data (issuer decisions included) and the same states."""
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    raws = generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=4))
    by_account: dict[str, list[Any]] = {}
    rng = random.Random(4)
    for raw in raws:
        if "account_id" not in raw or raw["type"] == "appeal_decided":
            continue
        if raw["type"] == "purchase" and rng.random() < 0.1:
            raw = {**raw, "authorization": rng.choice(["approved", "declined"])}
        by_account.setdefault(raw["account_id"], []).append(parse_event(raw))
    issuer_decisions = 0
    for account_id, events in list(by_account.items())[:30]:
        first, first_effects = fold(account_id, events, policy)
        outcomes = {cause: outcome_from_data(data)
                    for cause, data in decided(first_effects).items()}
        issuer_decisions += sum(1 for o in outcomes.values() if o.issuer)
        wrapped = [Decided(e, outcomes[e.event_id]) if e.event_id in outcomes else e
                   for e in events]
        again, again_effects = fold(account_id, wrapped, policy)
        assert again_effects == first_effects, account_id
        assert fingerprint(again) == fingerprint(first), account_id
    assert issuer_decisions > 0


@pytest.mark.parametrize("outcome", [
    Outcome(True),
    Outcome(False, ("overdue", "insufficient_credit")),
    Outcome(True, (), True, ("password_locked", "insufficient_credit")),
    Outcome(True, (), True),
    Outcome(False, ("issuer_declined",), True, ("wrong_password",)),
])
def test_an_outcome_survives_its_stored_text(outcome: Outcome) -> None:
    assert outcome_from_text(outcome.to_text()) == outcome
    assert outcome_from_data(outcome.data()) == outcome


@pytest.mark.parametrize("text", ["", "ok", "approved;issuerX", "refused:overdue"])
def test_a_stored_outcome_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="outcome"):
        outcome_from_text(text)


# --- authorization: the issuer's authorizer already decided -------------------------------------


def test_an_issuer_approval_posts_over_a_hold_and_over_the_limit(account: Account) -> None:
    account.wrong_password(T0 + HOUR, times=5)
    assert "password_locked" in account.holds()
    at = T0 + 2 * HOUR
    assert not account.authorize(at, 1_200_000).approved  # jiefeng itself would decline
    effect = account.purchase(at, "12000.00", authorization="approved")
    assert effect.data["approved"] is True
    assert effect.data["codes"] == []
    assert effect.data["authorization"] == "issuer"
    assert effect.data["would_decline"] == ["password_locked", "insufficient_credit"]
    assert account.state.purchases_total_fen == 1_200_000
    assert account.last_event_id() in account.state.purchases
    assert account.state.available_credit_fen == 0  # over the limit: floors at zero


def test_an_issuer_approval_jiefeng_agrees_with_says_so(account: Account) -> None:
    effect = account.purchase(T0 + HOUR, "10.00", authorization="approved")
    assert (effect.data["approved"], effect.data["would_decline"]) == (True, [])


def test_an_issuer_decline_never_posts_but_its_wrong_passwords_lock(account: Account) -> None:
    effects = [account.purchase(T0 + HOUR + n * MINUTE, "10.00", authorization="declined",
                                password_ok=False) for n in range(5)]
    assert all(e.data["approved"] is False for e in effects)
    assert all(e.data["codes"] == ["issuer_declined"] for e in effects)
    assert all(e.data["authorization"] == "issuer" for e in effects)
    assert effects[0].data["would_decline"] == ["wrong_password"]
    assert effects[-1].data["would_decline"] == ["password_locked", "wrong_password"]
    assert "password_locked" in account.holds()
    assert account.state.purchases == {} and account.state.purchases_total_fen == 0


def test_an_issuer_decline_counts_as_a_cash_out_signal(account: Account) -> None:
    effect = account.purchase(T0 + HOUR, "10.00", "M-HIGHRISK-001", authorization="declined")
    assert effect.data["approved"] is False
    assert "cash_out_suspected" in account.holds()
    assert account.state.purchases == {}


def test_an_issuer_decline_is_declined_even_where_jiefeng_would_approve(world: World) -> None:
    account = world.account("A2")
    effect = account.purchase(T0 + HOUR, "10.00", authorization="declined")
    assert (effect.data["approved"], effect.data["would_decline"]) == (False, [])


@pytest.mark.parametrize("value", ["maybe", "APPROVED", "", True, 1, None])
def test_an_invalid_authorization_is_rejected_naming_the_field(value: Any) -> None:
    raw = purchase("p1", T0 + HOUR, "10.00", authorization=value)
    if value is None:  # null is "absent": jiefeng decides
        assert parse_event(raw).authorization is None
        return
    with pytest.raises(EventRejected) as rejected:
        parse_event(raw)
    assert rejected.value.field == "authorization"
    assert "approved" in rejected.value.reason and "declined" in rejected.value.reason


def test_the_service_rejects_an_invalid_authorization_and_stores_an_issuer_decision(
        db_url: str) -> None:  # noqa: F811
    engine = engine_for(db_url)
    report = engine.ingest_events([
        opened(limit="100.00"),
        purchase("bad", T0 + HOUR, "10.00", authorization="stand-in"),
        purchase("over", T0 + 2 * HOUR, "500.00", authorization="approved"),
        purchase("no", T0 + 3 * HOUR, "1.00", authorization="declined")])
    rejected = [r for r in report.results if r.status == "rejected"]
    assert [(r.event_id, r.field) for r in rejected] == [("bad", "authorization")]
    # Over the limit, available credit floors at zero: jiefeng would decline even 1.00.
    assert stored_outcomes(engine) == {
        "over": "approved;issuer:insufficient_credit",
        "no": "declined:issuer_declined;issuer:insufficient_credit"}
    assert bought(engine) == {"over"}
    assert engine.replay(write=False).mismatched == []


# --- the service: the stored outcome is reused on every later fold ------------------------------


def _p2_declined(engine: Engine) -> None:
    """p2 is declined for want of credit; the account's clock moves on to T0 + 10 days."""
    first = engine.ingest_events([
        opened(),
        purchase("p1", T0 + HOUR, "9000.00"),
        purchase("p2", T0 + 3 * HOUR, "2000.00"),
        ev("s1", "score_update", T0 + 10 * DAY, score=700)])
    assert first.accepted == 4
    assert stored_outcomes(engine)["p2"] == "declined:insufficient_credit"


def _decline_then_late_repayment(engine: Engine) -> None:
    """The repayment that would have made room for p2 arrives in a later batch, dated before
    p2."""
    _p2_declined(engine)
    late = engine.ingest_events([ev("r1", "repayment", T0 + 2 * HOUR, amount="9000.00")])
    assert late.accepted == 1


def test_a_repayment_in_time_order_would_approve_the_purchase(db_url: str) -> None:  # noqa: F811
    """The control for the tests below: the repayment really makes room for p2."""
    engine = engine_for(db_url)
    engine.ingest_events([opened(), purchase("p1", T0 + HOUR, "9000.00"),
                          ev("r1", "repayment", T0 + 2 * HOUR, amount="9000.00"),
                          purchase("p2", T0 + 3 * HOUR, "2000.00")])
    assert stored_outcomes(engine)["p2"] == "approved"
    assert bought(engine) == {"p1", "p2"}


def test_a_decline_stays_a_decline_when_an_earlier_repayment_arrives_late(
        db_url: str) -> None:  # noqa: F811
    engine = engine_for(db_url)
    _decline_then_late_repayment(engine)
    assert stored_outcomes(engine) == {"p1": "approved", "p2": "declined:insufficient_credit"}
    assert bought(engine) == {"p1"}
    # A read before the account's clock folds the log: p2 still declined.
    assert bought(engine, at=T0 + 4 * HOUR) == {"p1"}
    # Another process (empty caches) reads the stored state.
    assert bought(engine_for(db_url)) == {"p1"}


def test_a_replay_rebuilds_with_the_stored_decisions(db_url: str) -> None:  # noqa: F811
    engine = engine_for(db_url)
    _decline_then_late_repayment(engine)
    report = engine.replay()  # what `jiefeng replay` runs: rebuild and write every account
    assert report.mismatched == []
    assert stored_outcomes(engine)["p2"] == "declined:insufficient_credit"
    reader = engine_for(db_url)
    assert bought(reader) == {"p1"}
    assert reader.state_at("A1")[0].purchases_total_fen == 900_000


def test_a_reload_without_a_snapshot_folds_the_log_with_the_stored_decisions(
        db_url: str) -> None:  # noqa: F811
    """A reader whose snapshot is gone (or of an older format) folds every event from the
    log: the catch-up reuses the stored decisions."""
    engine = engine_for(db_url)
    _decline_then_late_repayment(engine)
    with engine.store.transaction() as connection:
        connection.execute(update(t.accounts).values(snapshot=None, snapshot_events=0))
    reader = engine_for(db_url)
    assert bought(reader) == {"p1"}
    assert bought(reader, at=T0 + 11 * DAY) == {"p1"}
    engine.ingest_events([ev("s2", "score_update", T0 + 11 * DAY, score=710)])  # writer too
    assert bought(engine_for(db_url)) == {"p1"}


def test_a_late_purchase_is_decided_at_its_place_and_the_others_keep_theirs(
        db_url: str) -> None:  # noqa: F811
    engine = engine_for(db_url)
    engine.ingest_events([
        opened(), purchase("p1", T0 + HOUR, "9000.00"),
        purchase("p3", T0 + 5 * HOUR, "2000.00"),
        ev("s1", "score_update", T0 + 10 * DAY, score=700)])
    assert stored_outcomes(engine)["p3"] == "declined:insufficient_credit"
    # One batch, all late: p0 before the repayment (no room), r1, then p2 after it (room).
    engine.ingest_events([
        purchase("p2", T0 + 3 * HOUR, "500.00"),
        ev("r1", "repayment", T0 + 2 * HOUR, amount="9000.00"),
        purchase("p0", T0 + 90 * MINUTE, "1500.00")])
    assert stored_outcomes(engine) == {"p1": "approved", "p0": "declined:insufficient_credit",
                                       "p2": "approved", "p3": "declined:insufficient_credit"}
    assert bought(engine) == {"p1", "p2"}
    # Later still, a repayment before p0: p0 stays declined, and so does p3.
    engine.ingest_events([ev("r0", "repayment", T0 + 80 * MINUTE, amount="9000.00")])
    assert stored_outcomes(engine)["p0"] == "declined:insufficient_credit"
    assert stored_outcomes(engine)["p3"] == "declined:insufficient_credit"
    assert bought(engine) == {"p1", "p2"}
    assert engine.replay(write=False).mismatched == []


@pytest.fixture
def second_url(db_url: str, tmp_path) -> Iterator[str]:  # noqa: F811
    """A second fresh database of the same backend."""
    if db_url.startswith("postgresql"):
        yield from fresh_pg_database()
    else:
        yield str(tmp_path / "second.db")


def _filler(start: dt.datetime, count: int) -> list[dict]:
    """Other accounts' events, one a minute from `start`: they fill the file's batches."""
    events = [opened(f"B{n}", start - DAY) for n in range(5)]
    events += [ev(f"f{n}", "login", start + n * MINUTE, f"B{n % 5}", device_id="D1")
               for n in range(count)]
    return events


def test_the_pipelined_file_ingest_keeps_the_stored_decisions(
        db_url: str, second_url: str) -> None:  # noqa: F811
    """A file, pipelined: the repayment and a purchase of A1 both arrive late, in different
    batches of it (the purchase's replay reads the repayment from a batch in flight); the
    purchase declined by an earlier file stays declined, and the file stores what the
    sequential path stores."""
    start = T0 + 2 * HOUR
    later = [ev("r1", "repayment", start, amount="9000.00")]
    later += _filler(start + MINUTE, 150)  # r1 and p4 are batches apart
    later.append(purchase("p4", start + 200 * MINUTE, "500.00"))
    random.Random(2).shuffle(later)  # the order of the lines does not matter
    lines = list(enumerate(map(_json, later), start=1))
    results = []
    for url, ingest_file in ((db_url, _pipelined), (second_url, _sequential)):
        engine = engine_for(url)
        _p2_declined(engine)
        report = ingest_file(engine, lines)
        assert report.rejected == 0, [r for r in report.results if r.status == "rejected"][:3]
        outcomes = stored_outcomes(engine)
        assert outcomes["p2"] == "declined:insufficient_credit"
        assert outcomes["p4"] == "approved"
        assert bought(engine_for(url)) == {"p1", "p4"}
        assert engine.replay(write=False).mismatched == []
        results.append((outcomes, [(r.position, r.status) for r in report.results]))
    assert results[0] == results[1]


BATCH = 40  # a file of several transactions, several in flight


def _json(raw: dict) -> str:
    import json

    return json.dumps(raw)


def _pipelined(engine: Engine, lines: list[tuple[int, str]]):
    return pipeline.ingest_pipelined(engine.store, lines, engine.base_policy, engine.now,
                                     engine.cache, engine.scope_cache, BATCH)


def _sequential(engine: Engine, lines: list[tuple[int, str]]):
    return ingest(engine.store, lines, engine.base_policy, engine.now, engine.cache,
                  engine.scope_cache, BATCH)


# --- time order within a file -------------------------------------------------------------------


def test_a_file_is_taken_in_time_order_with_repeats_behind_their_first_line() -> None:
    """The command first (the portfolio's lines), then the account's lines in time order."""
    lines = [
        (1, _json(purchase("p2", T0 + 2 * HOUR, "1.00"))),
        (2, "not json"),
        (3, _json(opened())),
        (4, _json(purchase("p2", T0 - DAY, "9.00"))),  # a repeat of p2, dated earlier
        (5, _json(purchase("p1", T0 + HOUR, "1.00"))),
        (6, _json({"event_id": "w", "type": "maintenance_scheduled", "actor": "ops",
                   "at": (T0 + HOUR).isoformat(), "window_id": "w",
                   "start": (T0 + HOUR).isoformat(), "end": (T0 + 2 * HOUR).isoformat()})),
    ]
    assert [n for n, _ in decision_order(lines)] == [2, 6, 3, 5, 1, 4]
    assert tie_rank("maintenance_scheduled") < tie_rank("account_opened") < tie_rank("purchase")


def test_a_files_lines_in_any_order_store_the_same_outcomes(db_url: str, second_url: str
                                                             ) -> None:  # noqa: F811
    """Every purchase depends on the repayment before it; the lines come reversed, in
    transactions of three: each is still decided in time order."""
    events = [opened(limit="100.00")]
    for n in range(8):  # repaid two hours on: not a brushing cycle (see [cash_out])
        events.append(purchase(f"p{n}", T0 + (4 * n + 1) * HOUR, "80.00"))
        events.append(ev(f"r{n}", "repayment", T0 + (4 * n + 3) * HOUR, amount="80.00"))
    events.append(purchase("p-over", T0 + 40 * HOUR, "150.00"))
    in_order, reversed_lines = engine_for(db_url), engine_for(second_url)
    in_order.ingest(list(enumerate(events)), batch_events=len(events))
    report = reversed_lines.ingest(list(enumerate(reversed(events))), batch_events=3)
    assert report.rejected == 0
    assert [r.position for r in report.results] == list(range(len(events)))  # as sent
    expected = {f"p{n}": "approved" for n in range(8)}
    expected["p-over"] = "declined:insufficient_credit"
    assert stored_outcomes(in_order) == expected
    assert stored_outcomes(reversed_lines) == expected


# --- property: line order, batches and threads ---------------------------------------------------

ACCOUNT_IDS = ("A1", "A2", "A3")
SPAN_MINUTES = 50 * 24 * 60  # past the first statement's due date: overdue holds play too


@st.composite
def portfolios(draw: st.DrawFn) -> list[dict]:
    """Two or three accounts with small limits, purchases near them (some with a wrong
    password or an issuer's decision), repayments, password attempts, and maybe a maintenance
    window announced at an instant some purchase also has. Times are distinct within an
    account; the window may share one."""
    events: list[dict] = []
    accounts = ACCOUNT_IDS[: draw(st.integers(2, 3))]
    sizes = [draw(st.integers(3, 9)) for _ in accounts]
    minutes = draw(st.lists(st.integers(1, SPAN_MINUTES), min_size=sum(sizes) + len(accounts),
                            max_size=sum(sizes) + len(accounts), unique=True))
    for account, size in zip(accounts, sizes, strict=True):
        own = sorted(minutes[:size + 1])
        del minutes[:size + 1]
        events.append(opened(account, T0 + own[0] * MINUTE, limit="500.00"))
        for n, minute in enumerate(own[1:]):
            at, event_id = T0 + minute * MINUTE, f"{account}-{n}"
            kind = draw(st.sampled_from(["purchase"] * 3 + ["repayment", "password_attempt"]))
            if kind == "purchase":
                fields: dict[str, Any] = {}
                password_ok = draw(st.sampled_from([None, None, True, False]))
                authorization = draw(st.sampled_from([None] * 4 + ["approved", "declined"]))
                if password_ok is not None:
                    fields["password_ok"] = password_ok
                if authorization is not None:
                    fields["authorization"] = authorization
                amount = draw(st.sampled_from(["120.00", "260.00", "480.00"]))
                events.append(purchase(event_id, at, amount, account, **fields))
            elif kind == "repayment":
                amount = draw(st.sampled_from(["200.00", "500.00"]))
                events.append(ev(event_id, "repayment", at, account, amount=amount))
            else:
                events.append(ev(event_id, "password_attempt", at, account,
                                 ok=draw(st.booleans())))
    if draw(st.booleans()):
        purchases = [e for e in events if e["type"] == "purchase"]
        at = (dt.datetime.fromisoformat(draw(st.sampled_from(purchases))["at"]) if purchases
              else T0 + DAY)
        events.append({"event_id": "mw1", "type": "maintenance_scheduled", "actor": "ops",
                       "at": at.isoformat(), "window_id": "w1", "start": at.isoformat(),
                       "end": (at + draw(st.integers(1, 48)) * HOUR).isoformat()})
    return events


def _time_ordered(events: list[dict]) -> list[dict]:
    return sorted(events, key=lambda e: (dt.datetime.fromisoformat(e["at"]),
                                         tie_rank(e["type"])))


def _stored(engine: Engine, accounts: list[str]) -> tuple[dict, dict]:
    e = t.events.c
    with engine.store.read() as connection:
        rows = dict(connection.execute(select(e.event_id, e.outcome)).all())
    end = T0 + (SPAN_MINUTES + 60) * MINUTE
    states = {a: fingerprint(engine.state_at(a, end)[0]) for a in accounts}
    return rows, states


@contextlib.contextmanager
def _fresh_databases(backend: str, tmp_root: str) -> Iterator[Any]:
    """A factory of fresh, empty databases of `backend`, dropped afterwards."""
    with contextlib.ExitStack() as stack:
        stores: list[SqlStore] = []

        def make() -> str:
            if backend == "sqlite":
                import tempfile

                return str(tempfile.mkdtemp(dir=tmp_root)) + "/db.sqlite"
            return stack.enter_context(contextlib.contextmanager(fresh_pg_database)())

        try:
            yield make, stores
        finally:
            for store in stores:
                store.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgres)])
def test_outcomes_depend_neither_on_line_order_nor_batches_nor_threads(backend: str,
                                                                       tmp_path) -> None:
    """The same events, delivered (1) as a file with its lines permuted, in transactions of a
    few events; (2) time-ordered but cut into batches at random, each batch's lines permuted;
    (3) by concurrent threads that share the caches as the HTTP server does, each posting its
    own accounts' events: the stored outcomes, results and states are those of one
    time-ordered batch."""
    if backend == "postgresql":
        require_postgres()

    @settings(max_examples=40 if backend == "sqlite" else 6, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(portfolios(), st.data())
    def check(events: list[dict], data: st.DataObject) -> None:
        accounts = sorted({e["account_id"] for e in events if "account_id" in e})
        ordered = _time_ordered(events)
        with _fresh_databases(backend, str(tmp_path)) as (make, stores):
            def engine(caches: EngineCaches | None = None) -> Engine:
                made = engine_for(make(), caches)
                stores.append(made.store)
                return made

            reference = engine()
            assert reference.ingest_events(ordered).rejected == 0
            expected = _stored(reference, accounts)

            # (1) a file with its lines permuted, several transactions
            permuted = data.draw(st.permutations(events), label="file lines")
            as_file = engine()
            report = as_file.ingest(list(enumerate(permuted)),
                                    batch_events=data.draw(st.integers(1, 4), label="batch"))
            assert report.rejected == 0
            assert _stored(as_file, accounts) == expected

            # (2) cut into batches, each batch's lines permuted
            cuts = sorted(data.draw(st.sets(st.integers(1, len(ordered) - 1), max_size=6),
                                    label="cuts"))
            split = engine()
            for begin, end in zip([0, *cuts], [*cuts, len(ordered)], strict=True):
                batch = data.draw(st.permutations(ordered[begin:end]), label="batch lines")
                assert split.ingest_events(batch).rejected == 0
            assert _stored(split, accounts) == expected

            # (3) threads, one per group of accounts; operator commands first
            caches = EngineCaches()
            url = make()
            first = engine_for(url, caches)
            stores.append(first.store)
            commands = [e for e in ordered if "account_id" not in e]
            if commands:
                first.ingest_events(commands)
            groups = [[e for e in ordered if e.get("account_id") == a] for a in accounts]
            failures: list[BaseException] = []

            def post(group: list[dict]) -> None:
                try:
                    mine = Engine(first.store, now=lambda: NOW, caches=caches)
                    for begin in range(0, len(group), 2):
                        assert mine.ingest_events(group[begin:begin + 2]).rejected == 0
                except BaseException as error:  # noqa: BLE001 - reported below
                    failures.append(error)

            threads = [threading.Thread(target=post, args=(g,)) for g in groups]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert failures == []
            assert _stored(first, accounts) == expected

    check()
