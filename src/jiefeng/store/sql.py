"""The event log and account snapshots on SQLAlchemy Core: SQLite (embedded default) or
PostgreSQL (production), one code path.

The log is append-only with a unique `event_id`; a batch of accepted events, the snapshots of
the accounts they touched and their effects commit in one transaction, or not at all.

Writers serialize per account: SQLite takes its write lock at BEGIN (BEGIN IMMEDIATE), so the
state a writer reads cannot change under it; PostgreSQL takes a transaction-scoped advisory lock
per account before reading its snapshot.

Why one long module: the schema and the transactions that must agree with it (one batch's
events, snapshots and effects in one transaction) are kept together.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from jiefeng.domain.state import AccountState
from jiefeng.store import checkpoints
from jiefeng.store import schema as t
from jiefeng.store.connect import check_before_connecting, explain_error, no_jiefeng_database
from jiefeng.store.features import clear_feature_rows, write_feature_rows

_SCHEMA_LOCK_KEY = 0x6A6965666E67  # 'jiefng': one lock id for schema upgrades
SNAPSHOT_FORMAT = 13  # bump when AccountState changes shape; older snapshots are rebuilt
# 5: declined purchases remember amount, merchant and codes; score holds keep their numbers
# 10: remembered purchases are packed (jiefeng.domain.remembered); 11: older ones together
# 12: ledgers pickle as their class called with their fields (jiefeng.domain.pickled), the
# same bytes compiled or not; 13: the bureau facts and appeals too
MAX_BATCH_EVENTS = 1_000  # one API request: the batch a client sends
# One transaction when ingesting a file. Each transaction rewrites the row of every account it
# touches, so bigger transactions (still bounded) cost fewer row writes and commits per event;
# but a batch's buffers (its events parsed, their rows, effects and write set, three batches in
# flight) and, on a time-ordered file, the states of the accounts it touches (up to one an
# event) are held at once. Measured with the pipelined `jiefeng ingest` (bench/README.md):
# 10,000 took no longer than 20,000 (6.5 s against 6.8 s for 100,000 events of 1,000
# accounts; 94 s against 95 s for 1,000,000 of 29,000) and peaked 55 to 75 MB lower; 5,000
# saved 40 MB more on the second file for twice the row writes of the first.
FILE_BATCH_EVENTS = 10_000
SQLITE_DEFAULT_PATH = "jiefeng.db"
HEAD_REVISION = "0006"  # the newest migration (tests keep it equal to Alembic's head)


def database_url(db: str | None) -> str:
    """`--db` accepts a file path (SQLite) or a SQLAlchemy URL (`postgresql://...`)."""
    if not db:
        db = SQLITE_DEFAULT_PATH
    if "://" in db:
        url = make_url(db)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    return f"sqlite:///{Path(db).expanduser()}"


# One accepted event as stored, before the log numbers it:
# (event_id, account_id, type, at_utc, actor, body, outcome).
EventValues = tuple[str, str | None, str, str, str | None, str, str | None]
# A stored account event as a fold reads it: (body, outcome); the outcome is a purchase's
# recorded decision (see jiefeng.domain.outcomes), None for other events.
EventRecord = tuple[str, str | None]
LogRecord = tuple[int, str, str | None]  # (seq, body, outcome)


@dataclass(frozen=True)
class AccountRow:
    revision: int
    events_applied: int
    snapshot_events: int
    snapshot_format: int
    clock: dt.datetime


@dataclass(frozen=True)
class AccountWrite:
    state: AccountState
    status: str
    hold_codes: tuple[str, ...]
    policy_version: str
    revision: int
    is_new: bool
    with_snapshot: bool
    # Its account_features row (jiefeng.service.feature_table.feature_values, a tuple in
    # FEATURE_ROW_COLUMNS order), None: leave the row as it is.
    features: tuple | None = None


_ROW_COLUMNS = ("revision", "events_applied", "clock_utc", "status", "segment", "hold_codes",
                "policy_version")
_BLOB_COLUMNS = ("snapshot", "snapshot_format", "snapshot_events")


def encode_state(state: AccountState) -> bytes:
    return zlib.compress(pickle.dumps(state, protocol=5), 1)


def decode_state(blob: bytes) -> AccountState:
    return pickle.loads(zlib.decompress(blob))


@dataclass
class AccountValues:
    """Account rows ready for the driver: computed where the states are, written later."""

    inserts: list[dict[str, Any]]
    updates: list[tuple]  # _ROW_COLUMNS values, then account_id
    blob_updates: list[tuple]  # _ROW_COLUMNS + _BLOB_COLUMNS values, then account_id
    features: list[tuple] = field(default_factory=list)  # account_features rows (tuples)

    def extend(self, other: AccountValues) -> None:
        self.inserts.extend(other.inserts)
        self.updates.extend(other.updates)
        self.blob_updates.extend(other.blob_updates)
        self.features.extend(other.features)


def account_values(writes: Sequence[AccountWrite]) -> AccountValues:
    inserts, updates, blob_updates, features = [], [], [], []
    for write in writes:
        state = write.state
        if write.features is not None:
            features.append(write.features)
        values = {
            "account_id": state.account_id,
            "revision": write.revision,
            "events_applied": state.events_applied,
            "clock_utc": t.utc_text(state.clock) if state.clock else "",
            "status": write.status,
            "segment": state.segment,
            "hold_codes": ",".join(write.hold_codes),
            "policy_version": write.policy_version,
        }
        if write.with_snapshot:
            values["snapshot"] = encode_state(state)
            values["snapshot_format"] = SNAPSHOT_FORMAT
            values["snapshot_events"] = state.events_applied
        if write.is_new:
            values.setdefault("snapshot", None)
            values.setdefault("snapshot_format", SNAPSHOT_FORMAT)
            values.setdefault("snapshot_events", 0)
            inserts.append(values)
        elif write.with_snapshot:
            blob_updates.append(tuple(values[name] for name in _ROW_COLUMNS + _BLOB_COLUMNS)
                                + (state.account_id,))
        else:
            updates.append(tuple(values[name] for name in _ROW_COLUMNS) + (state.account_id,))
    return AccountValues(inserts, updates, blob_updates, features)


def effect_rows(effects: Sequence[Any]) -> list[tuple]:
    return [
        (e.account_id, e.kind, e.code, t.utc_text(e.at), e.cause,
         json.dumps(e.data, default=str, ensure_ascii=False))
        for e in effects
    ]


SQLITE_BUSY_TIMEOUT_MS = 30_000


def enable_wal(cursor: Any, timeout_s: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
    """Put the database in WAL mode (kept in the file: later connections find it so).

    Two processes opening a new database at once can both ask for the switch; SQLite then
    answers one of them "database is locked" at once, without waiting through the busy
    timeout (it would otherwise deadlock). That one asks again, a little later, until the
    timeout: by then the other has switched the file, and asking again changes nothing."""
    deadline = time.monotonic() + timeout_s
    pause_s = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause_s > deadline:
                raise
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 0.1)


def _install_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # First: switching to WAL takes a lock, and another process creating the schema may
        # hold it for longer than the driver's 5 s default wait ("database is locked").
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front: read-modify-write of a snapshot must not
        # interleave. Readers begin deferred and never wait for a writer (WAL).
        if connection.get_execution_options().get("jiefeng_readonly"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class SqlStore:
    def __init__(self, db: str | None = None, *, upgrade: bool = True,
                 must_exist: bool = False):
        """`must_exist`: a read-only use; a SQLite file that is not there is not created.
        Raises StoreUnavailable (one line naming --db) when the database cannot be used."""
        self.url = database_url(db)
        self.dialect = make_url(self.url).get_backend_name()
        check_before_connecting(self.url, must_exist=must_exist)
        if self.dialect == "sqlite":
            self.engine = create_engine(self.url)
            _install_sqlite_pragmas(self.engine)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        try:
            if must_exist and self.current_revision() is None:  # read-only: no schema added
                self.engine.dispose()
                raise no_jiefeng_database(self.url)
            if upgrade:
                self.upgrade()
            else:
                self.current_revision()  # connect once: a bad --db fails here, clearly
        except SQLAlchemyError as error:
            self.engine.dispose()
            raise explain_error(self.url, error) from None

    # --- schema ---------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Apply Alembic migrations up to head (idempotent). A database already at head is
        recognised without loading Alembic: that import was a tenth of a short command's
        start-up (`jiefeng explain`, `jiefeng authorize`)."""
        if self.current_revision() == HEAD_REVISION:
            return
        if self.dialect == "sqlite" and self._created_at_head():
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option(
            "script_location", str(resources.files("jiefeng.store").joinpath("migrations"))
        )
        with self.engine.begin() as connection:
            # Two processes that start on a new database must not both create the tables:
            # SQLite's BEGIN IMMEDIATE already serialises them; PostgreSQL takes a lock for
            # the transaction. The second then finds the schema at head and does nothing.
            if self.dialect == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def _created_at_head(self) -> bool:
        """An empty SQLite database is given the head schema at once (see
        jiefeng.store.fresh_sqlite); False for one that holds anything."""
        from jiefeng.store import fresh_sqlite

        with self.engine.begin() as connection:
            if not fresh_sqlite.is_empty(connection):
                return False
            fresh_sqlite.create_head_schema(connection, HEAD_REVISION)
        return True

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            try:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception:  # noqa: BLE001 - no table yet means no revision
                return None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: a consistent view that blocks no writer."""
        with self.engine.connect() as connection:
            connection = connection.execution_options(jiefeng_readonly=True)
            with connection.begin():
                yield connection

    def lock_accounts(self, connection: Connection, account_ids: Iterable[str]) -> None:
        """Serialize writers per account (PostgreSQL; SQLite already holds the write lock)."""
        if self.dialect != "postgresql":
            return
        keys = sorted(set(account_ids))
        if not keys:
            return
        # One round trip for the whole batch; locks are taken in hash order, the same order
        # in every transaction, so two batches can never wait on each other in a cycle.
        connection.exec_driver_sql(
            "SELECT count(pg_advisory_xact_lock(h)) FROM "
            "(SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(%s::text[]) AS k "
            "ORDER BY h) AS ordered",
            (keys,),
        )

    def lock_portfolio(self, connection: Connection, *, exclusive: bool = True) -> None:
        """The portfolio lock, taken before any account lock. Operator commands that change
        the scopes take it exclusively; every other write batch takes it shared, so no batch
        folds against scopes that a concurrent command is changing. (SQLite's single write
        lock already serializes everything.)"""
        if self.dialect != "postgresql":
            return
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        connection.exec_driver_sql(f"SELECT {function}(7201)")

    # --- events ---------------------------------------------------------------------------------

    def existing_bodies(self, connection: Connection, event_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(event_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            # The driver's own statement: SQLAlchemy's expansion of a 500-item IN cost ~10 ms.
            if self.dialect == "sqlite":
                marks = ", ".join("?" * len(chunk))
                rows = connection.exec_driver_sql(
                    f"SELECT event_id, body FROM events WHERE event_id IN ({marks})",
                    tuple(chunk))
            else:
                rows = connection.exec_driver_sql(
                    "SELECT event_id, body FROM events WHERE event_id = ANY(%s)", (chunk,))
            found.update({event_id: body for event_id, body in rows})
        return found

    @property
    def placeholder(self) -> str:
        """The driver's parameter marker, for SQL handed straight to it."""
        return "?" if self.dialect == "sqlite" else "%s"

    def _executemany(self, connection: Connection, sql: str, rows: list[tuple]) -> None:
        """Hand rows straight to the driver's executemany: on the ingest path SQLAlchemy's
        per-row parameter processing cost more than the insert itself."""
        if self.dialect != "sqlite":
            sql = sql.replace("?", "%s")
        connection.exec_driver_sql(sql, rows)

    def append_events(self, connection: Connection, rows: Sequence[EventValues],
                      ingested_at_utc: str) -> None:
        if not rows:
            return
        values = [row + (ingested_at_utc,) for row in rows]
        columns = ("event_id, account_id, type, at_utc, actor, body, outcome, "
                   "ingested_at_utc")
        if self.dialect == "postgresql":
            # COPY: several times faster than even a pipelined executemany for a batch.
            raw = connection.connection.dbapi_connection
            with raw.cursor() as cursor, cursor.copy(
                f"COPY events ({columns}) FROM STDIN"
            ) as copy:
                for value in values:
                    copy.write_row(value)
            return
        self._executemany(
            connection, f"INSERT INTO events ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)

    def account_event_records(self, connection: Connection, account_id: str,
                              until: dt.datetime | None = None) -> list[EventRecord]:
        """(body, outcome) of the account's events in (time, arrival) order: a purchase comes
        with the decision recorded when it was first ingested, for the fold to reuse."""
        query = select(t.events.c.body, t.events.c.outcome).where(
            t.events.c.account_id == account_id)
        if until is not None:
            query = query.where(t.events.c.at_utc <= t.utc_text(until))
        query = query.order_by(t.events.c.at_utc, t.events.c.seq)
        return [(row.body, row.outcome) for row in connection.execute(query)]

    def accounts_event_bodies(self, connection: Connection, account_ids: Sequence[str],
                              until: dt.datetime | None = None) -> dict[str, list[str]]:
        """The stored bodies of several accounts' events, each account's in (time, arrival)
        order (see `accounts_event_rows`)."""
        return {account_id: [body for _, _, _, body in rows] for account_id, rows in
                self.accounts_event_rows(connection, account_ids, until).items()}

    def accounts_event_rows(self, connection: Connection, account_ids: Sequence[str],
                            until: dt.datetime | None = None
                            ) -> dict[str, list[tuple[str, str, str, str]]]:
        """(account_id, type, at_utc, body) of several accounts' events, each account's in
        (time, arrival) order, in one query (a backtest reads its accounts a chunk at a time;
        one query an account was a twelfth of its time). Accounts without events are absent.
        The type and the instant let a reader skip finding them in the body
        (`jiefeng.domain.events.parse_stored_rows`)."""
        if not account_ids:
            return {}
        marker = self.placeholder
        sql = (f"SELECT account_id, type, at_utc, body FROM events WHERE account_id IN "
               f"({', '.join([marker] * len(account_ids))})")
        parameters: list[Any] = list(account_ids)
        if until is not None:
            sql += f" AND at_utc <= {marker}"
            parameters.append(t.utc_text(until))
        sql += " ORDER BY account_id, at_utc, seq"
        rows: dict[str, list[tuple[str, str, str, str]]] = {}
        # The driver's own cursor, in the connection's transaction: SQLAlchemy's result rows
        # cost a quarter of reading them (measured on SQLite, 4,000 rows a query). Its rows
        # are kept as they come: a tuple built again for each would only be more to free.
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute(sql, tuple(parameters))
            current: list[tuple[str, str, str, str]] = []
            current_id = None
            for row in cursor:
                if row[0] != current_id:
                    current_id, current = row[0], []
                    rows[current_id] = current
                current.append(row)
        finally:
            cursor.close()
        return rows

    def account_events_page(self, connection: Connection, account_id: str, after_seq: int,
                            limit: int) -> list[tuple[int, str]]:
        query = (
            select(t.events.c.seq, t.events.c.body)
            .where(t.events.c.account_id == account_id, t.events.c.seq > after_seq)
            .order_by(t.events.c.seq)
            .limit(limit)
        )
        return [(row.seq, row.body) for row in connection.execute(query)]

    def scope_marker(self, connection: Connection, types: Iterable[str]) -> tuple[int, int]:
        """(count, max seq) of the given event types: changes whenever one is added."""
        # One index probe per type on (type, seq), in one statement of the driver's own: on
        # the read path of every request, SQLAlchemy's per-statement cost was most of it.
        # The log is append-only, so the largest seq of those types changes exactly when
        # one is added.
        kinds = sorted(types)
        placeholder = self.placeholder
        union = " UNION ALL ".join(
            f"SELECT max(seq) AS newest FROM events WHERE account_id IS NULL AND type = "
            f"{placeholder}" for _ in kinds)
        newest = connection.exec_driver_sql(
            f"SELECT max(newest) FROM ({union}) AS per_type", tuple(kinds)).scalar()
        return 0, int(newest or 0)

    def peek(self, account_id: str, types: Iterable[str]) -> tuple[int, AccountRow | None]:
        """(scope marker, the account's row) in one statement and one round trip: enough for a
        reader whose caches already hold the state and the scopes (the common case).

        On PostgreSQL it runs outside a transaction (one statement is one snapshot), saving
        the BEGIN and COMMIT round trips that cost more than the query."""
        kinds = sorted(types)
        mark = "?" if self.dialect == "sqlite" else "%s"
        union = " UNION ALL ".join(
            f"SELECT max(seq) AS newest FROM events WHERE account_id IS NULL AND type = {mark}"
            for _ in kinds)
        sql = (
            "SELECT a.revision, a.events_applied, a.snapshot_events, a.snapshot_format, "
            f"a.clock_utc, m.newest FROM (SELECT max(newest) AS newest FROM ({union}) AS t) AS m "
            f"LEFT JOIN accounts AS a ON a.account_id = {mark}"
        )
        params = (*kinds, account_id)
        if self.dialect == "sqlite":
            with self.read() as connection:
                row = connection.exec_driver_sql(sql, params).one()
        else:
            with self.engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                row = connection.exec_driver_sql(sql, params).one()
        revision, applied, snapshot_events, snapshot_format, clock, newest = row
        account = None if revision is None else AccountRow(
            revision, applied, snapshot_events, snapshot_format, t.parse_utc_text(clock))
        return int(newest or 0), account

    def operator_event_bodies(self, connection: Connection, types: Iterable[str]) -> list[str]:
        query = (
            select(t.events.c.body)
            .where(t.events.c.account_id.is_(None), t.events.c.type.in_(list(types)))
            .order_by(t.events.c.at_utc, t.events.c.seq)
        )
        return [row.body for row in connection.execute(query)]

    def operator_events(self, connection: Connection,
                        types: Iterable[str]) -> list[tuple[str, str]]:
        """(at_utc, body) of the operator commands of these types, in (time, arrival) order."""
        query = (
            select(t.events.c.at_utc, t.events.c.body)
            .where(t.events.c.account_id.is_(None), t.events.c.type.in_(list(types)))
            .order_by(t.events.c.at_utc, t.events.c.seq)
        )
        return [(row.at_utc, row.body) for row in connection.execute(query)]

    def iter_all_event_records(self, connection: Connection
                               ) -> Iterator[tuple[str | None, EventRecord]]:
        """(account_id, (body, outcome)) of every account event in (account, time, arrival)
        order, for replay."""
        query = (
            select(t.events.c.account_id, t.events.c.body, t.events.c.outcome)
            .where(t.events.c.account_id.is_not(None))
            .order_by(t.events.c.account_id, t.events.c.at_utc, t.events.c.seq)
            .execution_options(yield_per=5_000)
        )
        for row in connection.execute(query):
            yield row.account_id, (row.body, row.outcome)

    def count_events(self, connection: Connection) -> int:
        return connection.execute(select(func.count()).select_from(t.events)).scalar_one()

    # --- account rows and snapshots ---------------------------------------------------------------

    def account_rows(self, connection: Connection,
                     account_ids: Iterable[str]) -> dict[str, AccountRow]:
        """The small columns of each account row (no snapshot blob)."""
        ids = list(dict.fromkeys(account_ids))
        found: dict[str, AccountRow] = {}
        placeholder = self.placeholder
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join([placeholder] * len(chunk))
            # The driver's own statement: this runs on every request's read path.
            rows = connection.exec_driver_sql(
                "SELECT account_id, revision, events_applied, snapshot_events, snapshot_format, "
                f"clock_utc FROM accounts WHERE account_id IN ({marks})", tuple(chunk))
            for account_id, revision, applied, snapshot_events, snapshot_format, clock in rows:
                found[account_id] = AccountRow(revision, applied, snapshot_events,
                                               snapshot_format, t.parse_utc_text(clock))
        return found

    def load_blobs(self, connection: Connection, account_ids: Sequence[str]) -> dict[str, bytes]:
        blobs: dict[str, bytes] = {}
        ids = list(account_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for row in connection.execute(
                select(t.accounts.c.account_id, t.accounts.c.snapshot).where(
                    t.accounts.c.account_id.in_(chunk), t.accounts.c.snapshot.is_not(None),
                    t.accounts.c.snapshot_format == SNAPSHOT_FORMAT)
            ):
                blobs[row.account_id] = row.snapshot
        return blobs

    def account_event_log(self, connection: Connection, account_id: str,
                          after: tuple[str, int] | None = None) -> list[LogRecord]:
        """(seq, body, outcome) of the account's events in (time, arrival) order, those after
        the fold position `after` (at_utc, seq) only when given."""
        mark = "?" if self.dialect == "sqlite" else "%s"
        sql = f"SELECT seq, body, outcome FROM events WHERE account_id = {mark}"
        parameters: tuple = (account_id,)
        if after is not None:
            sql += f" AND (at_utc > {mark} OR (at_utc = {mark} AND seq > {mark}))"
            parameters += (after[0], after[0], after[1])
        rows = connection.exec_driver_sql(sql + " ORDER BY at_utc, seq", parameters)
        return [(row[0], row[1], row[2]) for row in rows]

    def nearest_checkpoint(self, connection: Connection, account_id: str,
                           before: dt.datetime) -> checkpoints.Checkpoint | None:
        """The account's latest checkpoint taken strictly before `before`."""
        return checkpoints.nearest(connection, account_id, before, inclusive=False,
                                   state_format=SNAPSHOT_FORMAT)

    def account_event_records_from(self, connection: Connection, account_id: str,
                                   offset: int) -> list[EventRecord]:
        """(body, outcome) of the account's events in (time, arrival) order, skipping the
        first `offset`."""
        query = (
            select(t.events.c.body, t.events.c.outcome)
            .where(t.events.c.account_id == account_id)
            .order_by(t.events.c.at_utc, t.events.c.seq)
            .offset(offset)
        )
        return [(row.body, row.outcome) for row in connection.execute(query)]

    def save_accounts(self, connection: Connection, writes: Sequence[AccountWrite]) -> None:
        """Insert new account rows and update existing ones; the blob only where given."""
        self.write_account_values(connection, account_values(writes))

    def write_account_values(self, connection: Connection, values: AccountValues) -> None:
        if values.inserts:
            connection.execute(t.accounts.insert(), values.inserts)
        plans = ((values.updates, _ROW_COLUMNS),
                 (values.blob_updates, _ROW_COLUMNS + _BLOB_COLUMNS))
        for batch, columns in plans:
            if not batch:
                continue
            assignments = ", ".join(f"{name} = ?" for name in columns)
            self._executemany(
                connection, f"UPDATE accounts SET {assignments} WHERE account_id = ?", batch)
        write_feature_rows(connection, values.features)

    def account_ids(self, connection: Connection, *, clock_after: dt.datetime | None = None,
                    # clock_after is inclusive: an account at exactly that instant counts
                    segment: str | None = None) -> list[str]:
        query = select(t.accounts.c.account_id).order_by(t.accounts.c.account_id)
        if clock_after is not None:
            query = query.where(t.accounts.c.clock_utc >= t.utc_text(clock_after))
        if segment is not None:
            query = query.where(t.accounts.c.segment == segment)
        return list(connection.execute(query).scalars())

    def account_event_counts(self, connection: Connection) -> list[tuple[str, int]]:
        """(account, account events in its log), every account, in account order."""
        query = select(t.accounts.c.account_id, t.accounts.c.events_applied).order_by(
            t.accounts.c.account_id)
        return [(account_id, int(events)) for account_id, events in connection.execute(query)]

    def count_accounts(self, connection: Connection, *, clock_from: str | None = None) -> int:
        """Accounts whose clock is at or after `clock_from` (UTC text; None: every account)."""
        query = select(func.count()).select_from(t.accounts)
        if clock_from is not None:
            query = query.where(t.accounts.c.clock_utc >= clock_from)
        return int(connection.execute(query).scalar() or 0)

    def account_exists(self, connection: Connection, account_id: str) -> bool:
        return connection.execute(
            select(t.accounts.c.account_id).where(t.accounts.c.account_id == account_id)
        ).first() is not None

    def status_counts(self, connection: Connection) -> dict[str, int]:
        rows = connection.execute(
            select(t.accounts.c.status, func.count()).group_by(t.accounts.c.status)
        )
        return {row[0]: row[1] for row in rows}

    def hold_code_rows(self, connection: Connection) -> list[str]:
        return list(connection.execute(select(t.accounts.c.hold_codes)).scalars())

    def clear_snapshots(self, connection: Connection) -> None:
        connection.execute(t.accounts.delete())
        connection.execute(t.effects.delete())
        clear_feature_rows(connection)
        checkpoints.clear(connection)

    # --- effects --------------------------------------------------------------------------------

    def append_effects(self, connection: Connection, effects: Sequence[Any]) -> None:
        self.insert_effect_rows(connection, effect_rows(effects))

    def insert_effect_rows(self, connection: Connection, rows: Sequence[tuple]) -> None:
        if rows:
            self._executemany(
                connection,
                "INSERT INTO effects (account_id, kind, code, at_utc, cause, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def delete_effects(self, connection: Connection, account_id: str, keep: int = 0) -> None:
        """Delete the account's effect rows but the first `keep` (in seq order, which is the
        order its fold produced them: a replay from a checkpoint rewrites those after it)."""
        query = t.effects.delete().where(t.effects.c.account_id == account_id)
        if keep:
            first_dropped = connection.execute(
                select(t.effects.c.seq).where(t.effects.c.account_id == account_id)
                .order_by(t.effects.c.seq).offset(keep).limit(1)).scalar()
            if first_dropped is None:
                return
            query = query.where(t.effects.c.seq >= first_dropped)
        connection.execute(query)

    def hold_effects(self, connection: Connection) -> Iterator[tuple[str, str, str, str]]:
        """(account_id, kind, code, at_utc) of every hold placement and release, in time order."""
        query = (
            select(t.effects.c.account_id, t.effects.c.kind, t.effects.c.code, t.effects.c.at_utc)
            .where(t.effects.c.kind.in_(["hold_placed", "hold_released"]))
            .order_by(t.effects.c.at_utc, t.effects.c.seq)
            .execution_options(yield_per=5_000)
        )
        for row in connection.execute(query):
            yield row.account_id, row.kind, row.code, row.at_utc

    # --- appeals --------------------------------------------------------------------------------

    def appeal_account(self, connection: Connection, appeal_id: str) -> str | None:
        return connection.execute(
            select(t.appeals.c.account_id).where(t.appeals.c.appeal_id == appeal_id)
        ).scalar()

    def upsert_appeal(self, connection: Connection, values: dict[str, Any]) -> None:
        exists = connection.execute(
            select(t.appeals.c.appeal_id).where(t.appeals.c.appeal_id == values["appeal_id"])
        ).first()
        if exists:
            connection.execute(
                t.appeals.update().where(t.appeals.c.appeal_id == values["appeal_id"]).values(
                    **{k: v for k, v in values.items() if k != "appeal_id"})
            )
        else:
            connection.execute(t.appeals.insert().values(**values))

    def list_appeals(self, connection: Connection, status: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        query = select(t.appeals).order_by(t.appeals.c.submitted_at_utc).limit(limit)
        if status is not None:
            query = query.where(t.appeals.c.status == status)
        return [dict(row._mapping) for row in connection.execute(query)]

    def get_appeal(self, connection: Connection, appeal_id: str) -> dict[str, Any] | None:
        row = connection.execute(
            select(t.appeals).where(t.appeals.c.appeal_id == appeal_id)
        ).first()
        return dict(row._mapping) if row else None
