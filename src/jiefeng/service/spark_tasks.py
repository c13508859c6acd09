"""How many Spark tasks a backtest runs, and its progress as they finish.

A task's results reach the driver only when it ends, so a job of one task per worker showed
no progress until the very end, and a failed task re-ran half the portfolio. A task costs
0.1-0.2 s on two local cores (a backtest of 100,000 events, every account folded twice,
took 1.1 times as long in six tasks as in two, 1.2 times in sixteen): for a small export,
the job keeps one task per worker (the fewest starts); a large one is cut into whole waves
of `workers` tasks, up to one per bucket, each at least TASK_BYTES of the export. Then the
bar moves as each task ends, a retry re-reads one task's buckets, and a free executor takes
the next task.

Progress comes from Spark's status tracker (the job's completed tasks), polled by a thread
while the job runs; a session without one (Spark Connect), or whose tracker fails while the
job runs (the gateway going down with the job), reports every account at the end.
The tracker counts tasks, the bar counts accounts: each finished task advances it by its
share of the export's bytes (tasks are balanced by bytes), and the last call makes up the
exact count.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

# About 270,000 events of the bench portfolio: tens of seconds of folding a task, against a
# task's own cost of a tenth or two.
TASK_BYTES = 16 * 1024 * 1024
POLL_SECONDS = 0.5


class Sized(Protocol):
    @property
    def size_bytes(self) -> int: ...


def task_count(buckets: Sequence[Sized], workers: int, task_bytes: int | None = None) -> int:
    """One task per worker, or more in whole waves of `workers` for an export of more than
    `task_bytes` (default TASK_BYTES) a worker; never more than one per bucket."""
    task_bytes = task_bytes or TASK_BYTES
    workers = max(1, workers)
    total = sum(bucket.size_bytes for bucket in buckets)
    waves = max(1, total // (workers * task_bytes))
    return max(1, min(len(buckets), workers * waves))


class TaskProgress:
    """Turns the count of finished tasks into accounts for a progress callback: tasks of
    `sizes` bytes (one size a task) together over `accounts` accounts. Never reports past
    `accounts - 1` before `finish`, which reports the rest of the exact count."""

    def __init__(self, sizes: Sequence[int], accounts: int,
                 progress: Callable[[int], None]) -> None:
        self._sizes = sorted(sizes)  # which task ended is unknown: the smallest first
        self._total_bytes = max(1, sum(sizes))
        self._accounts = accounts
        self._progress = progress
        self._lock = threading.Lock()
        self.reported = 0

    def tasks_done(self, done: int) -> None:
        share = sum(self._sizes[: max(0, done)]) / self._total_bytes
        self._report(min(self._accounts - 1, int(self._accounts * share)))

    def finish(self, accounts: int) -> None:
        self._report(accounts)

    def _report(self, upto: int) -> None:
        with self._lock:
            step = upto - self.reported
            if step > 0:
                self.reported = upto
                self._progress(step)


def _completed_tasks(tracker: Any, group: str) -> int:
    done = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job is not None else ():
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                done += stage.numCompletedTasks
    return done


@contextmanager
def polling(read: Callable[[], None], every_seconds: float = POLL_SECONDS) -> Iterator[None]:
    """Call `read` every `every_seconds` from a thread while the block runs. A `read` that
    raises stops the polling, not the block: the bar is a courtesy, the count is made up at
    the end, and no thread's traceback reaches the screen."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every_seconds):
            try:
                read()
            except Exception:  # noqa: BLE001 - see above
                return

    poller = threading.Thread(target=poll, name="jiefeng-spark-progress", daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join()


@contextmanager
def polled(spark: Any, reporter: TaskProgress,
           every_seconds: float = POLL_SECONDS) -> Iterator[None]:
    """Report the tasks of the jobs this thread runs inside the block as they finish."""
    try:
        context = spark.sparkContext
        tracker = context.statusTracker()
    except Exception:  # noqa: BLE001 - Spark Connect has no context: progress at the end only
        yield
        return
    key = "spark.jobGroup.id"
    previous = context.getLocalProperty(key)
    group = f"jiefeng-backtest-{uuid.uuid4().hex}"
    context.setLocalProperty(key, group)  # this thread's jobs: the one the block runs
    try:
        with polling(lambda: reporter.tasks_done(_completed_tasks(tracker, group)),
                     every_seconds):
            yield
    finally:
        context.setLocalProperty(key, previous)
