"""How many tasks a Spark backtest runs, and how its progress bar follows them (no Spark
needed: the status tracker and the session are stood in for)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jiefeng.service import spark_tasks as T


@dataclass(frozen=True)
class Bucket:
    size_bytes: int


MB = 1024 * 1024


def test_a_small_export_runs_one_task_per_worker():
    buckets = [Bucket(400_000)] * 16  # about the bench's 100,000 events
    assert T.task_count(buckets, 2) == 2
    assert T.task_count(buckets, 1) == 1
    assert T.task_count(buckets, 8) == 8


def test_a_large_export_runs_whole_waves_of_tasks_up_to_one_a_bucket():
    buckets = [Bucket(10 * MB)] * 16  # 160 MB: five waves of two tasks of 16 MB or more
    assert T.task_count(buckets, 2, task_bytes=16 * MB) == 10
    assert T.task_count(buckets, 2, task_bytes=1) == 16  # never more than the buckets
    assert T.task_count(buckets, 3, task_bytes=16 * MB) == 9  # three waves of three


def test_fewer_buckets_than_workers_gives_a_task_a_bucket():
    assert T.task_count([Bucket(5)] * 3, 8) == 3
    assert T.task_count([], 4) == 1  # the engine refuses an empty export before this


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=40), st.integers(1, 16),
       st.integers(1, 10**9))
def test_tasks_come_in_whole_waves_or_one_a_bucket(sizes, workers, task_bytes):
    buckets = [Bucket(size) for size in sizes]
    tasks = T.task_count(buckets, workers, task_bytes)
    assert 1 <= tasks <= max(1, len(buckets))
    assert tasks == len(buckets) or tasks % workers == 0
    if sum(sizes) < 2 * workers * task_bytes:
        assert tasks == min(workers, len(buckets))


def test_progress_follows_finished_tasks_and_ends_at_the_exact_count():
    steps: list[int] = []
    reporter = T.TaskProgress([10, 30, 20, 40], 100, steps.append)
    reporter.tasks_done(0)
    assert steps == []
    reporter.tasks_done(1)  # the smallest task's share: 10 of 100 bytes
    assert sum(steps) == 10
    reporter.tasks_done(1)  # polled again, nothing new
    assert sum(steps) == 10
    reporter.tasks_done(3)
    assert sum(steps) == 60
    reporter.tasks_done(4)  # every task done, the exact count not known yet
    assert sum(steps) == 99
    reporter.finish(97)  # fewer accounts had rows than were asked for: never goes back
    assert sum(steps) == 99
    reporter.finish(100)
    assert sum(steps) == 100 and all(step > 0 for step in steps)


def test_progress_of_an_empty_backtest_reports_nothing():
    steps: list[int] = []
    reporter = T.TaskProgress([0, 0], 0, steps.append)
    reporter.tasks_done(2)
    reporter.finish(0)
    assert steps == []


class Tracker:
    """Spark's status tracker, as far as progress reads it: one job of one stage."""

    def __init__(self, group_of: dict[str, list[int]]):
        self.group_of = group_of
        self.done = 0

    def getJobIdsForGroup(self, group: str) -> list[int]:  # noqa: N802 - Spark's name
        return self.group_of.get(group, [])

    def getJobInfo(self, job_id: int) -> Any:  # noqa: N802
        return type("Job", (), {"stageIds": [job_id * 10]})

    def getStageInfo(self, stage_id: int) -> Any:  # noqa: N802
        return type("Stage", (), {"numCompletedTasks": self.done})


class Context:
    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.properties: dict[str, str | None] = {"spark.jobGroup.id": "someone-else"}

    def statusTracker(self) -> Tracker:  # noqa: N802
        return self.tracker

    def getLocalProperty(self, key: str) -> str | None:  # noqa: N802
        return self.properties.get(key)

    def setLocalProperty(self, key: str, value: str | None) -> None:  # noqa: N802
        self.properties[key] = value


def test_the_job_s_finished_tasks_move_the_bar_while_it_runs():
    tracker = Tracker({})
    context = Context(tracker)
    session = type("Session", (), {"sparkContext": context})()
    steps: list[int] = []
    moved = threading.Event()
    reporter = T.TaskProgress([1, 1, 1, 1], 40, lambda n: (steps.append(n), moved.set()))
    with T.polled(session, reporter, every_seconds=0.01):
        group = context.properties["spark.jobGroup.id"]
        assert group != "someone-else" and group.startswith("jiefeng-backtest-")
        tracker.group_of[group] = [1]  # the job the block runs, in the group
        tracker.done = 2
        assert moved.wait(5)
    assert sum(steps) == 20  # two of four equal tasks
    assert context.properties["spark.jobGroup.id"] == "someone-else"  # restored


def test_a_session_without_a_tracker_reports_at_the_end_only():
    class Connect:  # Spark Connect: no SparkContext
        @property
        def sparkContext(self) -> Any:  # noqa: N802
            raise RuntimeError("not supported in Spark Connect")

    steps: list[int] = []
    reporter = T.TaskProgress([1, 1], 10, steps.append)
    before = threading.active_count()
    with T.polled(Connect(), reporter, every_seconds=0.01):
        assert threading.active_count() == before  # no poller
        time.sleep(0.03)
    reporter.finish(10)
    assert steps == [10]


def test_an_error_in_the_job_stops_the_poller_and_restores_the_group():
    tracker = Tracker({})
    context = Context(tracker)
    session = type("Session", (), {"sparkContext": context})()
    reporter = T.TaskProgress([1], 1, lambda n: None)
    with pytest.raises(ValueError), T.polled(session, reporter, every_seconds=0.01):
        raise ValueError("a task failed")
    assert context.properties["spark.jobGroup.id"] == "someone-else"
    assert not any(t.name == "jiefeng-spark-progress" for t in threading.enumerate())


def test_a_tracker_that_fails_mid_job_stops_the_bar_but_not_the_job():
    class FailingTracker(Tracker):
        calls = 0

        def getStageInfo(self, stage_id: int) -> Any:  # noqa: N802
            self.calls += 1
            if self.calls > 1:
                raise ConnectionError("the gateway went away")
            return super().getStageInfo(stage_id)

    tracker = FailingTracker({})
    context = Context(tracker)
    session = type("Session", (), {"sparkContext": context})()
    steps: list[int] = []
    uncaught: list[Any] = []
    previous_hook = threading.excepthook
    threading.excepthook = uncaught.append
    try:
        reporter = T.TaskProgress([1, 1], 10, steps.append)
        with T.polled(session, reporter, every_seconds=0.01):
            tracker.done = 1  # before the job is in the group: the first read sees it
            tracker.group_of[context.properties["spark.jobGroup.id"]] = [1]
            deadline = time.monotonic() + 5
            while tracker.calls < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert tracker.calls >= 2  # it failed while the block ran
            poller = [t for t in threading.enumerate() if t.name == "jiefeng-spark-progress"]
            for thread in poller:
                thread.join(5)
            assert not any(thread.is_alive() for thread in poller)  # it stopped polling
        reporter.finish(10)
    finally:
        threading.excepthook = previous_hook
    assert uncaught == []
    assert sum(steps) == 10 and steps[0] == 5  # one of two tasks, then the rest at the end
    assert context.properties["spark.jobGroup.id"] == "someone-else"
