"""What a state packs and pickles depends on its values alone: not on which objects happen to
be shared, nor on whether the domain runs as Python or compiled (`make native`)."""

from __future__ import annotations

import datetime as dt
import marshal
import pickle
from dataclasses import astuple, fields

from jiefeng.domain import ledger as L
from jiefeng.domain.packing import pack, unpack


def test_equal_values_pack_to_equal_bytes_whatever_they_share() -> None:
    shared = int("123456789")
    other = int("123456789")  # equal, a different object
    assert shared is not other
    assert pack((shared, shared, "M-1")) == pack((shared, other, "M-1"))
    # What the default marshal does: it flags the shared object, so the bytes differ.
    assert marshal.dumps((shared, shared)) != marshal.dumps((shared, other))
    assert unpack(pack((shared, None, True, "M-1"))) == (shared, None, True, "M-1")


def _ledger() -> L.Ledger:
    statement = L.Statement(dt.date(2026, 1, 1), dt.date(2026, 1, 20), principal_fen=5_000,
                            new_balance_fen=5_000, minimum_due_fen=500)
    plan = L.InstallmentPlan("P1", "E1", 3, dt.datetime(2026, 1, 5, tzinfo=dt.UTC), 3_000, 75)
    ledger = L.Ledger(unbilled_fen=1_200, statements=[statement], plans={"P1": plan},
                      interest_units=7, accrued_through=dt.date(2026, 1, 21))
    ledger.settled.append(L.pack_statement(statement))
    return ledger


def test_ledger_classes_pickle_as_their_class_called_with_their_fields() -> None:
    ledger = _ledger()
    for value in (ledger, ledger.statements[0], ledger.plans["P1"]):
        cls, args = value.__reduce__()
        assert cls is type(value)
        assert args == tuple(getattr(value, f.name) for f in fields(value))
        assert cls(*args) == value
    restored = pickle.loads(pickle.dumps(ledger, protocol=5))
    assert restored == ledger and restored is not ledger
    assert astuple(restored.statements[0]) == astuple(ledger.statements[0])
    assert L.unpack_statement(restored.settled[0]) == ledger.statements[0]


def test_a_settled_statement_packs_the_same_after_a_round_trip() -> None:
    statement = _ledger().statements[0]
    packed = L.pack_statement(statement)
    assert L.pack_statement(L.unpack_statement(packed)) == packed


def _settled_statement(day: int) -> L.Statement:
    return L.Statement(dt.date(2026, day, 1), dt.date(2026, day, 20), principal_fen=100,
                       paid_principal_fen=100, judged=True, paid_in_full=True)


def test_settled_statements_stay_in_date_order_whichever_settles_first() -> None:
    ledger = L.Ledger(statements=[_settled_statement(3), _settled_statement(4)])
    ledger.settled.append(L.pack_statement(_settled_statement(2)))
    L.retire_settled(ledger)  # in order: appended
    assert [s.statement_date.month for s in ledger.history] == [2, 3, 4]
    assert ledger.statements == []
    ledger.statements = [_settled_statement(1)]  # an older one settles after newer ones
    L.retire_settled(ledger)
    assert [s.statement_date.month for s in ledger.history] == [1, 2, 3, 4]
