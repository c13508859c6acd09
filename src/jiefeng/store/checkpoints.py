"""The `account_checkpoints` table: an account's state part-way through its history.

A checkpoint is the state after folding the account's events up to and including one stored
event, in the log's fold order (time, then arrival `seq`), with the number of the account's
effect rows that prefix produced. A late event at t may start from any checkpoint taken at or
before t (it sorts after every stored event of its instant), so its replay costs the events
since that checkpoint, not the whole history. Checkpoints after the point a replay starts from
are replaced by those the replay takes; an operator command at s invalidates every checkpoint
at or after s, since events from s on are folded with the command.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    Table,
    and_,
    delete,
    or_,
    select,
)

from jiefeng.store.schema import ID, TIME, events, metadata, utc_text

account_checkpoints = Table(
    "account_checkpoints",
    metadata,
    Column("account_id", ID, primary_key=True),
    Column("at_utc", TIME, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("effects_kept", BigInteger, nullable=False),
    Column("state_format", Integer, nullable=False),
    Column("state", LargeBinary, nullable=False),
)
Index("ix_account_checkpoints_at", account_checkpoints.c.at_utc)

_c = account_checkpoints.c


@dataclass(frozen=True, slots=True)
class Checkpoint:
    at_utc: str
    seq: int | None  # None: taken after an event of the batch being written, found by its id
    effects_kept: int  # the account's effect rows (in seq order) that the prefix produced
    state: bytes
    event_id: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.at_utc, self.seq


def nearest(connection: Connection, account_id: str, bound: dt.datetime, *, inclusive: bool,
            state_format: int) -> Checkpoint | None:
    """The latest checkpoint taken at or before `bound` (strictly before unless `inclusive`)."""
    # Driver SQL: once per late event, where building the statement cost more than running it.
    mark = "?" if connection.dialect.name == "sqlite" else "%s"
    compare = "<=" if inclusive else "<"
    row = connection.exec_driver_sql(
        f"SELECT at_utc, seq, effects_kept, state FROM account_checkpoints "
        f"WHERE account_id = {mark} AND at_utc {compare} {mark} AND state_format = {mark} "
        f"ORDER BY at_utc DESC, seq DESC LIMIT 1",
        (account_id, utc_text(bound), state_format)).first()
    return None if row is None else Checkpoint(row[0], row[1], row[2], bytes(row[3]))


def replace_after(connection: Connection, account_id: str, after: tuple[str, int] | None,
                  rows: Sequence[Checkpoint], state_format: int) -> None:
    """Drop the account's checkpoints after `after` (all of them if None), insert `rows`."""
    query = delete(account_checkpoints).where(_c.account_id == account_id)
    if after is not None:
        query = query.where(or_(_c.at_utc > after[0],
                                and_(_c.at_utc == after[0], _c.seq > after[1])))
    connection.execute(query)
    unknown = [row.event_id for row in rows if row.seq is None]
    if unknown:
        # Events of this batch: inserted by now, earlier in the same transaction.
        seqs = dict(connection.execute(
            select(events.c.event_id, events.c.seq).where(events.c.event_id.in_(unknown))).all())
        rows = [row if row.seq is not None else replace(row, seq=seqs[row.event_id])
                for row in rows]
    if rows:
        connection.execute(account_checkpoints.insert(), [
            {"account_id": account_id, "at_utc": row.at_utc, "seq": row.seq,
             "effects_kept": row.effects_kept, "state_format": state_format,
             "state": row.state} for row in rows])


def drop_from(connection: Connection, at: str) -> None:
    """An operator command at `at` (UTC text): every checkpoint from then on is stale."""
    connection.execute(delete(account_checkpoints).where(_c.at_utc >= at))


def clear(connection: Connection) -> None:
    connection.execute(delete(account_checkpoints))
