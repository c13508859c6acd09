"""A log written before a change replays to the same answers after it (issue 12: behaviour does
not change when the rules are reorganised).

`fixtures/replay_portfolio.jsonl` is a synthetic portfolio cut to one account per freeze cause
(with every operator command); `fixtures/replay_portfolio.answers.json` holds what an earlier
jiefeng answered for it: the accepted count, each account's status, holds (since, releases_at,
evidence) and money at three moments, and every effect it stored. A change of behaviour on
purpose regenerates the answers with `python tests/test_replay_golden.py` and says why in its
commit; any other difference is a regression.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from pathlib import Path

from sqlalchemy import select

from jiefeng.service.engine import Engine
from jiefeng.store import schema as t
from jiefeng.store.sql import SqlStore

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EVENTS = FIXTURES / "replay_portfolio.jsonl"
ANSWERS = FIXTURES / "replay_portfolio.answers.json"
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
LEDGER_KEYS = ("total_owed", "past_due", "minimum_due", "revolving", "available_credit")


def answers_for(db: str) -> dict:
    events = [json.loads(line) for line in EVENTS.read_text(encoding="utf-8").splitlines()]
    engine = Engine(SqlStore(db), now=lambda: NOW)
    report = engine.ingest_events(events)
    last = max(dt.datetime.fromisoformat(e["at"]) for e in events)
    found: dict = {"accepted": report.accepted, "rejected": report.rejected, "accounts": {}}
    with engine.store.read() as connection:
        ids = list(connection.execute(
            select(t.accounts.c.account_id).order_by(t.accounts.c.account_id)).scalars())
        effects = connection.execute(
            select(t.effects.c.account_id, t.effects.c.kind, t.effects.c.code, t.effects.c.at_utc,
                   t.effects.c.cause, t.effects.c.data)
            .order_by(t.effects.c.account_id, t.effects.c.seq)).all()
    by_account = collections.defaultdict(list)
    for account_id, kind, code, at, cause, data in effects:
        data = json.loads(data)
        if kind == "hold_placed":  # the rule and version a trace adds are not behaviour
            data.pop("rule", None)
            data.pop("policy_version", None)
        by_account[account_id].append([kind, code, at, cause, data])
    for account_id in ids:
        seen = found["accounts"].setdefault(account_id, {})
        for when in (last - dt.timedelta(days=200), last, last + dt.timedelta(days=400)):
            x = engine.explain(account_id, when)
            seen[when.isoformat()] = {
                "status": x["status"], "primary_code": x.get("primary_code"),
                "holds": [[h["code"], h["since"], h["releases_at"], h["evidence"]]
                          for h in x["holds"]],
                "ledger": {key: x["ledger"][key] for key in LEDGER_KEYS},
            }
        seen["effects"] = by_account[account_id]
    engine.store.close()
    return json.loads(json.dumps(found, ensure_ascii=False))  # tuples as lists, as stored


def test_the_fixture_covers_every_cause_that_an_account_holds() -> None:
    expected = json.loads(ANSWERS.read_text(encoding="utf-8"))
    placed = {effect[1] for account in expected["accounts"].values()
              for effect in account["effects"] if effect[0] == "hold_placed"}
    assert {"overdue", "cure_probation", "external_overdue", "cash_out_suspected",
            "score_below_threshold", "dormant", "account_security", "id_expired",
            "password_locked", "policy_tightening"} <= placed


def test_a_log_written_before_replays_to_the_same_answers(tmp_path) -> None:
    expected = json.loads(ANSWERS.read_text(encoding="utf-8"))
    found = answers_for(str(tmp_path / "replay.db"))
    assert found["accepted"] == expected["accepted"] and found["rejected"] == expected["rejected"]
    assert sorted(found["accounts"]) == sorted(expected["accounts"])
    for account_id, answers in expected["accounts"].items():
        mine = found["accounts"][account_id]
        for moment, answer in answers.items():
            assert mine[moment] == answer, f"{account_id} at {moment}"


if __name__ == "__main__":  # regenerate the answers (a change of behaviour on purpose)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        answers = answers_for(str(Path(tmp) / "replay.db"))
    ANSWERS.write_text(json.dumps(answers, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                       encoding="utf-8")
