"""Failed credentials per client: past a limit, a client is refused (HTTP 429 with
`Retry-After`) until its window ends. In memory, bounded, per process; time is an input."""

from __future__ import annotations

import datetime as dt
import os
from collections import OrderedDict

AUTH_MAX_FAILURES_ENV = "JIEFENG_AUTH_MAX_FAILURES"
AUTH_WINDOW_SECONDS_ENV = "JIEFENG_AUTH_WINDOW_SECONDS"
DEFAULT_AUTH_MAX_FAILURES = 20
DEFAULT_AUTH_WINDOW_SECONDS = 300
# Clients tracked at once: 10,000 entries of a few hundred bytes each; past it the client
# that failed least recently is forgotten first.
MAX_TRACKED_CLIENTS = 10_000


class FailureLimiter:
    """Failed credentials per client (its IP address): after `max_failures` within
    `window_seconds` of the first, every request from it is refused (429) until the window
    ends, whatever credential it sends, so guessing stays slow even when a guess is right.

    Memory is bounded: an LRU table of at most `max_clients` clients. Per process: with N
    workers a client gets up to N times the limit. Time is an input (`now`)."""

    def __init__(self, max_failures: int = DEFAULT_AUTH_MAX_FAILURES,
                 window_seconds: int = DEFAULT_AUTH_WINDOW_SECONDS,
                 max_clients: int = MAX_TRACKED_CLIENTS):
        assert max_failures >= 1 and window_seconds >= 1 and max_clients >= 1
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.max_clients = max_clients
        # client -> (first failure in the window, failures in it)
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()

    @classmethod
    def from_env(cls) -> FailureLimiter:
        return cls(_positive_env(AUTH_MAX_FAILURES_ENV, DEFAULT_AUTH_MAX_FAILURES, 1_000_000),
                   _positive_env(AUTH_WINDOW_SECONDS_ENV, DEFAULT_AUTH_WINDOW_SECONDS, 86_400))

    def retry_after_seconds(self, client: str, now: dt.datetime) -> int | None:
        """Seconds until `client` may try again, or None if it may now."""
        entry = self._failures.get(client)
        if entry is None:
            return None
        first, count = entry
        remaining = first + self.window_seconds - now.timestamp()
        if remaining <= 0:
            del self._failures[client]
            return None
        if count < self.max_failures:
            return None
        return max(1, int(remaining + 0.999))

    def record_failure(self, client: str, now: dt.datetime) -> None:
        stamp = now.timestamp()
        first, count = self._failures.pop(client, (stamp, 0))
        if stamp - first >= self.window_seconds:
            first, count = stamp, 0
        self._failures[client] = (first, count + 1)  # most recent last
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


def _positive_env(name: str, default: int, maximum: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    if not text.strip().isdigit() or not 1 <= int(text) <= maximum:
        raise ValueError(f"{name}: give a whole number from 1 to {maximum} (default {default})")
    return int(text)
