"""Run a backtest over the stored history: the selected accounts replayed under a baseline and
a candidate policy, in parallel over partitions of accounts (see jiefeng.batch.backtest for
what is compared, docs/backtest.md for the result).

Both sides fold the same events and the same operator commands (maintenance windows,
migrations, policy sweeps); policy activations in the log are not replayed, so each side runs
its one policy throughout and every difference is the policy's.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from jiefeng.batch import backtest as B
from jiefeng.batch.backtest_collect import Pair, PairCollector, partitions
from jiefeng.batch.policy_reach import policy_watch
from jiefeng.domain.scopes import Scopes
from jiefeng.policy.schema import Policy
from jiefeng.service.chunk_sharing import share_chunks
from jiefeng.service.states import parse_stored_rows
from jiefeng.store.schema import parse_utc_text
from jiefeng.store.sql import SqlStore

if TYPE_CHECKING:
    from jiefeng.policy.criteria import CompiledCriteria

# The workers' fork server imports this module before the first worker can start: what only
# the parent's sample of explanations needs is imported where it is used. The criteria module
# (sqlglot) the fork server imports too (`_worker_context`): a log with a policy sweep folds
# its criteria in every worker.

DIFFERING_SAMPLE_SIZE = 10


class BacktestError(ValueError):
    """A backtest that cannot run as asked; names the option and why."""

    def __init__(self, option: str, reason: str):
        self.option = option
        self.reason = reason
        super().__init__(f"{option}: {reason}")


@dataclass(frozen=True)
class BacktestSpec:
    baseline: Policy
    candidate: Policy
    start: dt.datetime | None = None  # default: the first stored event
    end: dt.datetime | None = None  # default: the last stored event
    criteria: str | None = None  # SQL criteria over the features, as of the window's start
    sample: int | None = None
    workers: int = 1
    # An account whose baseline fold never read a setting the candidate changes reuses its
    # baseline run as its candidate run (see jiefeng.batch.policy_reach); False folds every
    # account under both policies (the same result, for checking and measuring).
    reuse_unreached: bool = True


@dataclass(frozen=True)
class BacktestContext:
    """What every worker needs; sent once per worker process."""

    db: str
    baseline: Policy
    candidate: Policy
    scopes: Scopes
    window: B.Window
    criteria: str | None
    # The accounts asked for are a sample of the stored ones (not all of them): an engine
    # that reads every stored account's events may filter them first.
    accounts_sampled: bool = False
    reuse_unreached: bool = True
    # --sample with --accounts: how many of the selected accounts count (the first in sample
    # order); an engine that summarizes partitions where they run keeps that many per
    # partition (see PairCollector).
    sample_selected: int | None = None


_worker: dict[str, Any] = {}  # the context of this worker process (set by _init_worker)


def _init_worker(context: BacktestContext) -> None:
    _worker["context"] = context
    _worker["store"] = SqlStore(context.db, upgrade=False)
    _worker["criteria"] = None
    if context.criteria:
        from jiefeng.policy.criteria import compile_criteria

        _worker["criteria"] = compile_criteria(context.criteria)


def _accounts_events(account_ids: Sequence[str]) -> dict[str, list[Any]]:
    """These accounts' events up to the window's end, read in one query; bodies only: each
    policy decides purchases anew, the recorded decisions are not read."""
    context: BacktestContext = _worker["context"]
    store: SqlStore = _worker["store"]
    with store.read() as connection:
        rows = store.accounts_event_rows(connection, account_ids, until=context.window.end)
    return {account_id: parse_stored_rows(account_rows)
            for account_id, account_rows in rows.items()}


def _run_chunk(account_ids: Sequence[str]) -> list[Pair | None]:
    """Each account's runs under both policies; None for an account left out by the criteria."""
    with collector_paused():
        # The chunk's events and states are freed as _fold_chunk returns, before the collector
        # runs again: alive, they were walked once more per chunk for nothing.
        return _fold_chunk(account_ids)


def _fold_chunk(account_ids: Sequence[str]) -> list[Pair | None]:
    context: BacktestContext = _worker["context"]
    criteria = _worker["criteria"]
    by_account = _accounts_events(account_ids)
    results: list[Pair | None] = []
    for account_id in account_ids:
        events = by_account.get(account_id)
        if events:  # an account whose first event comes after the window is not compared
            results.append(compare_account(account_id, events, context, criteria))
    return results


def _summarized_chunk(account_ids: Sequence[str]) -> PairCollector:
    """A worker's chunk, summarized where it was folded: a collector of its own, which the
    parent merges. Sent back, the pairs of runs cost the parent more to read (unpickled, about
    13 us an account) than to tally, on a core the two workers share with it."""
    collector = new_collector(_worker["context"])
    collector.take(_run_chunk(account_ids))
    return collector


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a chunk is decoded and folded: its events, states and
    runs stay alive until the chunk is done and hold few reference cycles, so the collections
    their allocations trigger walk them again and again to free almost nothing (a tenth of a
    one-worker backtest, measured). Pause it around a function that returns only what it
    keeps: once that returns, what it allocated and dropped is freed by reference counting and
    no longer counts toward the next collection (one walk of a whole chunk's events and
    states per chunk, 3 % of a backtest, when they were still alive as it resumed)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:  # another thread's chunk may have paused it first: leave it to that one
            gc.enable()


def compare_account(account_id: str, events: Sequence[Any], context: BacktestContext,
                    criteria: CompiledCriteria | None) -> Pair | None:
    """One account under both policies; None if the criteria leave it out. Every engine
    (local processes, Spark partitions) runs this same function.

    The baseline is folded watched (`policy_watch`): where it never read a setting the
    candidate changes, the candidate's run is the baseline's and is not folded again."""
    if criteria is not None and not B.selected(account_id, events, context.baseline,
                                               context.scopes, criteria, context.window.start):
        return None
    watch = policy_watch(context.baseline, context.candidate)
    watch.read = False
    base_run, _ = B.run_account(account_id, events, watch.policy, context.scopes,
                                context.window)
    base_run.reads_changed_settings = watch.read
    if context.reuse_unreached and not watch.read:
        return base_run, base_run
    cand_run, _ = B.run_account(account_id, events, context.candidate, context.scopes,
                                context.window)
    return base_run, cand_run


def _window(store: SqlStore, spec: BacktestSpec) -> B.Window:
    with store.read() as connection:
        first, last = connection.execute(
            text("SELECT min(at_utc), max(at_utc) FROM events WHERE account_id IS NOT NULL")
        ).one()
    if first is None:
        raise BacktestError("--db", "the database holds no account events to replay")
    start = spec.start or parse_utc_text(first)
    end = spec.end or parse_utc_text(last)
    if end < start:
        raise BacktestError("--to", f"{end.isoformat()} is before --from {start.isoformat()}")
    return B.Window(start, end)


def without_activations(scopes: Scopes) -> Scopes:
    """The log's operator commands, minus its policy activations (each side runs one policy)."""
    return Scopes(dict(scopes.windows), dict(scopes.campaigns), list(scopes.sweeps), [])


def run_backtest(db: str, store: SqlStore, scopes: Scopes, spec: BacktestSpec,
                 progress: Callable[[int], None] | None = None,
                 on_total: Callable[[int], None] | None = None,
                 engine: Callable[..., None] | None = None) -> dict[str, Any]:
    """The backtest's result (the content of backtest.json).

    `engine(context, account_ids, workers, progress, collector)` replays the accounts and
    hands each chunk's results to `collector.take` as it finishes (a pair of runs an account,
    None for one the criteria leave out), or partitions summarized where they ran to
    `collector.merge`, in any order; default: local processes (`local_pairs`)."""
    if spec.workers < 1:
        raise BacktestError("--workers", "must be at least 1")
    if spec.sample is not None and spec.sample < 1:
        raise BacktestError("--sample", "must be at least 1")
    if spec.criteria:
        from jiefeng.policy.criteria import compile_criteria

        compile_criteria(spec.criteria)  # CriteriaError names the problem before any work
    window = _window(store, spec)
    with store.read() as connection:
        counted = store.account_event_counts(connection)
    stored_accounts = len(counted)
    if spec.sample is not None and not spec.criteria:
        counted = sorted(sorted(counted, key=lambda c: B.sample_order(c[0]))[: spec.sample])
    account_ids = [account_id for account_id, _ in counted]
    event_counts = [events for _, events in counted]
    del counted
    if on_total:
        on_total(len(account_ids))
    context = BacktestContext(db, spec.baseline, spec.candidate, without_activations(scopes),
                              window, spec.criteria, len(account_ids) < stored_accounts,
                              spec.reuse_unreached, spec.sample if spec.criteria else None)
    collector = new_collector(context)
    if engine is None:
        local_pairs(context, account_ids, spec.workers, progress, collector, event_counts)
    else:
        engine(context, account_ids, spec.workers, progress, collector)
    collector.finish()
    _init_worker(context)  # the sample's explanations are folded here, in this process
    sample = [_side_by_side(account_id, context)
              for account_id in collector.tally.differing_sample_ids()]
    selection = {
        "stored": stored_accounts,
        "criteria": spec.criteria,
        "criteria_as_of": window.start.isoformat() if spec.criteria else None,
        "left_out_by_criteria": collector.left_out,
        "sample": spec.sample,
    }
    return collector.tally.result(selection, sample)


def new_collector(context: BacktestContext) -> PairCollector:
    """An empty collector for this backtest (an engine makes one per partition to summarize
    partitions where they run)."""
    return PairCollector(B.new_tally(context.window, context.baseline, context.candidate,
                                     DIFFERING_SAMPLE_SIZE), context.sample_selected)


def local_pairs(context: BacktestContext, account_ids: Sequence[str], workers: int,
                progress: Callable[[int], None] | None, collector: PairCollector,
                event_counts: Sequence[int] | None = None) -> None:
    """Replay on this machine: in this process, or in `workers` spawned processes, each
    folding partitions of accounts (`partitions`: by `event_counts`, each account's events,
    when given) it reads from the store itself; each partition's results go to `collector`
    as they come back."""
    chunks = partitions(account_ids, event_counts)

    def collect(chunk: Sequence[str], results: list[Pair | None] | PairCollector) -> None:
        if isinstance(results, PairCollector):  # a worker's chunk, summarized where it ran
            collector.merge(results)
        else:
            collector.take(results)
        if progress:
            progress(len(chunk))

    if workers == 1 or len(chunks) <= 1:
        _init_worker(context)
        for chunk in chunks:
            collect(chunk, _run_chunk(chunk))
    else:
        with ProcessPoolExecutor(workers, mp_context=_worker_context(),
                                 initializer=_init_worker, initargs=(context,)) as pool:
            _init_worker(context)
            share_chunks(pool, workers, chunks, collect, local=_run_chunk,
                         remote=_summarized_chunk)


def start_worker_server() -> None:
    """Start the workers' fork server now, without waiting for it: a command about to run a
    backtest on several workers calls this first, so that the server imports this module
    while the command reads its policies and its store."""
    context = _worker_context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _worker_context() -> Any:
    """How worker processes start. Never a plain fork: this process has database connections
    and threads (a progress bar, a server's). Where available, a fork server: started once per
    process with this module imported, it forks each worker ready to fold (a spawned
    interpreter takes about a second to import jiefeng, every time); else spawn.

    The fork server imports the criteria module (sqlglot) as well: once, while this process
    folds the first chunks, where each worker would import it in its first chunk of a log
    with a policy sweep (about 0.06 s of CPU a worker, against about 0.06 s more for the
    server to start)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "jiefeng.policy.criteria"])
    return context


def _side_by_side(account_id: str, context: BacktestContext) -> dict[str, Any]:
    """One differing account: each policy's outcome and the customer's explanation under it."""
    from jiefeng.explain.render import render_text
    from jiefeng.explain.structured import build_explanation

    events = _accounts_events([account_id]).get(account_id, [])
    view: dict[str, Any] = {"account_id": account_id}
    for side, policy in (("baseline", context.baseline), ("candidate", context.candidate)):
        run, state = B.run_account(account_id, events, policy, context.scopes, context.window)
        at = context.window.end
        entry: dict[str, Any] = {
            "status": run.status_end,
            "codes_at_end": list(run.codes_end),
            "codes_in_window": sorted(run.codes_in_window(context.window)),
            "bureau_reports": run.bureau_reports,
        }
        if state.opened:
            explanation = build_explanation(state, at, policy, context.scopes)
            entry["explanation"] = {lang: render_text(explanation, lang, policy.timezone)
                                    for lang in ("zh-CN", "en")}
        view[side] = entry
    return view

