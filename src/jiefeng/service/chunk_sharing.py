"""Chunks of work shared between a pool of worker processes and the process that owns it (the
local backtest engine's partitions of accounts: jiefeng.service.backtest)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

_FEEDER_DONE = object()  # a feeder's last word: it takes no more chunks


def share_chunks(pool: Executor, workers: int, chunks: Sequence[Sequence[str]],
                 collect: Callable[[Sequence[str], Any], None],
                 local: Callable[[Sequence[str]], Any],
                 remote: Callable[[Sequence[str]], Any]) -> None:
    """Fold the chunks in the pool's workers, each taking the next chunk as soon as it is
    free: a thread per worker hands it its next chunk the moment it returns one, so no worker
    waits on this process and none has a queue left when the last chunks are taken. A worker
    runs `remote` on its chunk, this process `local`; `collect(chunk, result)` takes either's
    result, in this process's main thread.

    This process folds chunks too, but only until every worker has returned its first: until
    then the workers are still being forked and importing (a few tenths of a second when the
    fork server is new) and its core would idle. Once they all run it only collects: a third
    folding process on two cores was measured slower than two (each switch between them costs
    the caches; 0.81-0.95 of the time, pair by pair, with it left out)."""
    remaining = iter(chunks)
    lock = threading.Lock()
    failed = threading.Event()
    all_running = threading.Event()
    running = [0]  # workers that have returned a chunk
    done: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def take() -> Sequence[str] | None:
        with lock:
            return None if failed.is_set() else next(remaining, None)

    def feed() -> None:
        try:
            first = True
            while (chunk := take()) is not None:
                done.put((chunk, pool.submit(remote, chunk).result()))
                if first:
                    first = False
                    with lock:
                        running[0] += 1
                        if running[0] == workers:
                            all_running.set()
        except BaseException as error:  # raised by this process's thread, below
            failed.set()
            done.put(error)
        finally:
            done.put(_FEEDER_DONE)

    feeders = [threading.Thread(target=feed, name=f"jiefeng-backtest-feed-{n}", daemon=True)
               for n in range(workers)]
    for feeder in feeders:
        feeder.start()
    finished = 0

    def handle(item: Any) -> None:
        nonlocal finished
        if item is _FEEDER_DONE:
            finished += 1
        elif isinstance(item, BaseException):
            raise item
        else:
            collect(*item)

    try:
        while not all_running.is_set() and (chunk := take()) is not None:
            collect(chunk, local(chunk))
            while not done.empty():
                handle(done.get())
        while finished < workers:
            handle(done.get())
    except BaseException:
        failed.set()  # the feeders stop at their current chunk
        raise
    for feeder in feeders:
        feeder.join()
