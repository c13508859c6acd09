"""Sweep dry runs over the feature table, as a ratio to a plain `SELECT count(*) ... WHERE
criteria` over the same rows in the same run (the baseline).

Builds a SQLite store with N accounts whose feature rows are exact at the queried time (as
after the service's daily advance), with random but plausible values, then times:

- baseline: `SELECT count(*) FROM account_features WHERE <criteria>` (sqlite3, no jiefeng);
- dry run: `sweep_dry_run` as `POST /v1/sweeps/dry-run` runs it (counts, statuses by segment,
  the sample, the stale accounts: none here);
- DuckDB: the same count over a Parquet file of the same rows (what `jiefeng export features`
  writes), for portfolios analysed outside the service.

Target on the two-core machines: a dry run over 1,000,000 accounts in under 5 s.

Usage: python bench/bench_sweep.py [--accounts 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

CRITERIA = (
    "score < 600 AND utilization > 0.8",
    "days_past_due > 30 OR (revolving_balance / credit_limit > 0.5 AND months_revolving >= 3)",
    "segment = 'young' AND account_age_days < 200 AND purchases_90d = 0",
)
AT = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def build(db: str, accounts: int) -> None:
    from jiefeng.store.schema import utc_text
    from jiefeng.store.sql import SqlStore

    SqlStore(db).close()  # the schema
    rng = random.Random(7)
    clock = utc_text(AT - dt.timedelta(hours=2))
    today = AT.date().toordinal()
    connection = sqlite3.connect(db)
    account_rows, feature_rows = [], []
    for n in range(accounts):
        account_id = f"A{n:07d}"
        limit = rng.choice([2000.0, 5000.0, 10000.0, 20000.0])
        used = limit * rng.random() ** 2
        revolving = used * rng.random() if rng.random() < 0.4 else 0.0
        past_due = today - rng.randint(1, 90) if rng.random() < 0.05 else None
        status = "frozen" if past_due else "active"
        account_rows.append((account_id, 1, 10, None, 4, 0, clock, status,
                             rng.choice(["standard", "young", "premium"]), "", "default"))
        feature_rows.append((
            account_id, clock, None, status, "overdue" if past_due else "",
            today - rng.randint(10, 2000), past_due,
            rng.randint(350, 950) if rng.random() < 0.9 else None, limit, limit - used,
            used / limit, 0.0, revolving, 0.0, float(rng.randint(0, 12)),
            round(rng.random() * 50000, 2), round(rng.random() * 100000, 2),
            float(rng.randint(0, 40)), account_rows[-1][8]))
    connection.executemany("INSERT INTO accounts (account_id, revision, events_applied, "
                           "snapshot, snapshot_format, snapshot_events, clock_utc, status, "
                           "segment, hold_codes, policy_version) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", account_rows)
    connection.executemany(
        "INSERT INTO account_features (account_id, clock_utc, stable_until_utc, own_status, "
        "hold_codes, opened_ordinal, past_due_ordinal, score, credit_limit, available_credit, "
        "utilization, minimum_due, revolving_balance, installment_balance, months_revolving, "
        "deposits, wealth_balance, purchases_90d, segment) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", feature_rows)
    connection.commit()
    connection.close()


def plain_count(db: str, where: str) -> float:
    today = AT.date().toordinal()
    connection = sqlite3.connect(db)
    started = time.perf_counter()
    connection.execute(
        "SELECT count(*) FROM (SELECT *, CAST(? - opened_ordinal AS REAL) AS account_age_days, "
        "CASE WHEN past_due_ordinal IS NULL THEN 0.0 ELSE CAST(? - past_due_ordinal AS REAL) "
        f"END AS days_past_due FROM account_features) WHERE {where}", (today, today)).fetchall()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def dry_run(db: str, criteria: str) -> tuple[float, int]:
    from jiefeng.service.engine import Engine
    from jiefeng.service.operator import sweep_dry_run
    from jiefeng.store.sql import SqlStore

    engine = Engine(SqlStore(db, upgrade=False), now=lambda: AT)
    started = time.perf_counter()
    result = sweep_dry_run(engine, criteria, "score >= 700", AT)
    elapsed = time.perf_counter() - started
    engine.store.close()
    return elapsed, result.count


def duckdb_count(db: str, parquet: Path, where: str) -> float:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not parquet.exists():
        connection = sqlite3.connect(db)
        cursor = connection.execute("SELECT * FROM account_features")
        names = [d[0] for d in cursor.description]
        columns = list(zip(*cursor.fetchall(), strict=True))
        pq.write_table(pa.table(dict(zip(names, columns, strict=True))), parquet)
        connection.close()
    today = AT.date().toordinal()
    started = time.perf_counter()
    duckdb.sql(
        f"SELECT count(*) FROM (SELECT *, CAST({today} - opened_ordinal AS DOUBLE) AS "
        f"account_age_days, CASE WHEN past_due_ordinal IS NULL THEN 0.0 ELSE "
        f"CAST({today} - past_due_ordinal AS DOUBLE) END AS days_past_due "
        f"FROM read_parquet('{parquet}')) WHERE {where}").fetchall()
    return time.perf_counter() - started


def main() -> None:
    from jiefeng.policy.criteria import transpile_criteria

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=None,
                        help="accepted for run_all.py; accounts = events / 10")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    accounts = args.events // 10 if args.events else args.accounts
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "sweep.db")
        started = time.perf_counter()
        build(db, accounts)
        print(f"accounts: {accounts:,} (built in {time.perf_counter() - started:.1f} s), "
              f"repeat {args.repeat}, median seconds")
        for criteria in CRITERIA:
            where_sqlite = transpile_criteria(criteria, "sqlite")
            where_duckdb = transpile_criteria(criteria, "duckdb")
            base = statistics.median(plain_count(db, where_sqlite) for _ in range(args.repeat))
            runs = [dry_run(db, criteria) for _ in range(args.repeat)]
            sweep = statistics.median(r[0] for r in runs)
            duck = statistics.median(duckdb_count(db, Path(tmp) / "f.parquet", where_duckdb)
                                     for _ in range(args.repeat))
            print(f"{criteria}\n  plain count {base:7.3f} s   dry run {sweep:7.3f} s "
                  f"(ratio {sweep / base:5.2f}, {runs[0][1]:,} matched)   "
                  f"duckdb/parquet {duck:7.3f} s (ratio {duck / base:5.2f})")


if __name__ == "__main__":
    main()
