"""How the Spark engine splits an events export into tasks and reads one bucket: pure
functions over Parquet files (no Spark session needed)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jiefeng.batch.export import EVENT_SCHEMA
from jiefeng.service.backtest_spark import Bucket, assign_buckets, export_buckets, read_bucket

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)


def _rows(specs: list[tuple[int, str, int]]) -> pa.Table:
    """(seq, account, minutes after T0) rows in the export's schema."""
    return pa.Table.from_pylist([
        {"seq": seq, "event_id": f"e{seq}", "account_id": account, "type": "activity",
         "at_utc": T0 + dt.timedelta(minutes=minutes), "actor": "system",
         "body": f'{{"seq": {seq}}}', "outcome": None}
        for seq, account, minutes in specs], schema=EVENT_SCHEMA)


def test_files_are_grouped_by_bucket_folder_and_hidden_files_are_not_data(tmp_path):
    for folder, name in (("account_bucket=01", "part-0.parquet"),
                         ("account_bucket=01", "part-1.parquet"),
                         ("account_bucket=00", "part-0.parquet"),
                         ("account_bucket=00/_temporary", "part-9.parquet"),
                         (".hidden", "part-0.parquet")):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        pq.write_table(_rows([(1, "A", 0)]), tmp_path / folder / name)
    (tmp_path / "_SUCCESS").write_text("", encoding="utf-8")
    buckets = export_buckets(tmp_path)
    assert [[f.split(str(tmp_path))[1] for f in b.files] for b in buckets] == [
        ["/account_bucket=00/part-0.parquet"],
        ["/account_bucket=01/part-0.parquet", "/account_bucket=01/part-1.parquet"]]
    assert buckets[1].size_bytes == sum((tmp_path / "account_bucket=01" / n).stat().st_size
                                        for n in ("part-0.parquet", "part-1.parquet"))


def test_files_outside_bucket_folders_are_one_group(tmp_path):
    for name in ("b.parquet", "a.parquet"):
        pq.write_table(_rows([(1, "A", 0)]), tmp_path / name)
    (buckets,) = [export_buckets(tmp_path)]
    assert len(buckets) == 1 and [f.rsplit("/", 1)[1] for f in buckets[0].files] == \
        ["a.parquet", "b.parquet"]
    assert export_buckets(tmp_path / "missing") == []


def test_buckets_are_balanced_by_size_and_each_goes_to_one_task():
    buckets = [Bucket((f"b{n}",), size) for n, size in enumerate([50, 40, 30, 20, 10, 10])]
    tasks = assign_buckets(buckets, 2)
    assert sorted(sum(b.size_bytes for b in task) for task in tasks) == [80, 80]
    assert assign_buckets(buckets, 1) == [sorted(buckets, key=lambda b: -b.size_bytes)]
    # More tasks than buckets: no empty task is started.
    assert [len(task) for task in assign_buckets(buckets[:2], 4)] == [1, 1]


@given(st.lists(st.integers(0, 10**6), max_size=40), st.integers(1, 8))
def test_every_bucket_is_assigned_exactly_once_and_the_same_way_every_time(sizes, tasks):
    buckets = [Bucket((f"b{n}",), size) for n, size in enumerate(sizes)]
    assigned = assign_buckets(buckets, tasks)
    flat = [b for task in assigned for b in task]
    assert sorted(flat, key=lambda b: b.files) == sorted(buckets, key=lambda b: b.files)
    assert len(assigned) <= tasks and all(assigned)
    assert assign_buckets(list(reversed(buckets)), tasks) == assigned
    if buckets:  # no task holds more than the average plus the largest bucket
        loads = [sum(b.size_bytes for b in task) for task in assigned]
        assert max(loads) <= sum(sizes) / len(assigned) + max(sizes)


def test_a_bucket_is_read_sorted_by_account_time_and_arrival_across_its_files(tmp_path):
    pq.write_table(_rows([(5, "B", 10), (1, "A", 30), (3, "B", 10)]), tmp_path / "x.parquet")
    pq.write_table(_rows([(2, "A", 20), (4, "A", 30), (6, "B", 0)]), tmp_path / "y.parquet")
    bucket = export_buckets(tmp_path)[0]
    table = read_bucket(bucket, T0 + dt.timedelta(days=1), None)
    assert table.column_names == ["account_id", "type", "at_utc", "seq", "body"]
    assert list(zip(table["account_id"].to_pylist(), table["seq"].to_pylist(), strict=True)) \
        == [("A", 2), ("A", 1), ("A", 4), ("B", 6), ("B", 3), ("B", 5)]


@pytest.mark.parametrize(("until_minutes", "accounts", "expected"), [
    (20, None, [2, 6, 3, 5]),  # the window's end is inclusive
    (19, None, [6, 3, 5]),
    (60, ["B"], [6, 3, 5]),
    (60, ["A", "nobody"], [2, 1, 4]),
    (60, [], []),
])
def test_a_bucket_keeps_the_window_and_the_sample_only(tmp_path, until_minutes, accounts,
                                                       expected):
    pq.write_table(_rows([(5, "B", 10), (1, "A", 30), (3, "B", 10), (2, "A", 20),
                          (4, "A", 30), (6, "B", 0)]), tmp_path / "x.parquet")
    table = read_bucket(export_buckets(tmp_path)[0],
                        T0 + dt.timedelta(minutes=until_minutes), accounts)
    assert table["seq"].to_pylist() == expected


def test_the_window_end_is_an_instant_whatever_its_offset(tmp_path):
    pq.write_table(_rows([(1, "A", 0), (2, "A", 60), (3, "A", 61)]), tmp_path / "x.parquet")
    beijing = dt.timezone(dt.timedelta(hours=8))
    until = (T0 + dt.timedelta(minutes=60)).astimezone(beijing)  # 09:00 in Beijing
    assert read_bucket(export_buckets(tmp_path)[0], until, None)["seq"].to_pylist() == [1, 2]


def test_files_another_tool_rewrote_are_read_in_the_columns_types(tmp_path):
    """Times in nanoseconds and an outcome column of nulls only (as pandas or another engine
    may write them) are read as the export's types, not refused."""
    rewritten = _rows([(2, "A", 5), (1, "A", 0)])
    at = rewritten.schema.get_field_index("at_utc")
    rewritten = rewritten.set_column(at, pa.field("at_utc", pa.timestamp("ns", tz="UTC")),
                                     rewritten["at_utc"].cast(pa.timestamp("ns", tz="UTC")))
    outcome = rewritten.schema.get_field_index("outcome")
    rewritten = rewritten.set_column(outcome, pa.field("outcome", pa.null()),
                                     pa.nulls(rewritten.num_rows))
    pq.write_table(rewritten, tmp_path / "a.parquet")
    pq.write_table(_rows([(3, "A", 1)]), tmp_path / "b.parquet")
    table = read_bucket(export_buckets(tmp_path)[0], T0 + dt.timedelta(days=1), None)
    assert table["seq"].to_pylist() == [1, 3, 2]
    assert table.schema.field("at_utc").type == pa.timestamp("us", tz="UTC")
