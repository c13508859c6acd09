"""Prometheus metrics, one registry per app (tests build many apps in one process).

Counters and the latency histogram are per process: with `--workers N` each worker answers
/metrics with its own counts (scrape each, or run one worker per container). Holds and
accounts are read from the database at scrape time (cached for a few seconds), so every
worker reports the same portfolio-wide numbers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jiefeng.domain.holds import HOLD_CODES
from jiefeng.store.sql import SqlStore

PORTFOLIO_CACHE_SECONDS = 15.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PortfolioCollector(Collector):
    """Active holds by code and accounts by status, from the `accounts` table (each account as
    of its last stored state)."""

    def __init__(self, store: SqlStore):
        self.store = store
        self._lock = threading.Lock()
        self._cached_at = 0.0
        self._holds: Tally[str] = Tally()
        self._statuses: dict[str, int] = {}

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._cached_at < PORTFOLIO_CACHE_SECONDS:
                return
            holds: Tally[str] = Tally()
            with self.store.read() as connection:
                for codes in self.store.hold_code_rows(connection):
                    holds.update(code for code in codes.split(",") if code)
                statuses = self.store.status_counts(connection)
            self._holds, self._statuses = holds, statuses
            self._cached_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        self._refresh()
        holds = GaugeMetricFamily("jiefeng_holds_active", "Accounts with an active hold, by code",
                                  labels=["code"])
        for code in sorted(set(HOLD_CODES) | set(self._holds)):
            holds.add_metric([code], self._holds.get(code, 0))
        yield holds
        accounts = GaugeMetricFamily("jiefeng_accounts", "Accounts by derived status",
                                     labels=["status"])
        for status in sorted({"active", "frozen", "closed"} | set(self._statuses)):
            accounts.add_metric([status], self._statuses.get(status, 0))
        yield accounts


class Metrics:
    def __init__(self, store: SqlStore):
        disable_created_metrics()  # no `_created` series: they double the output for nothing
        self.registry = CollectorRegistry()
        self.events = Counter("jiefeng_events_ingested", "Events received through the API, by "
                              "result", ["status"], registry=self.registry)
        self.decisions = Counter("jiefeng_decisions", "Authorization decisions, by outcome",
                                 ["outcome"], registry=self.registry)
        self.requests = Counter("jiefeng_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("jiefeng_http_request_duration_seconds",
                                 "Request latency by route", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(PortfolioCollector(store))
        for status in ("accepted", "duplicate", "rejected"):
            self.events.labels(status)
        for outcome in ("approved", "declined"):
            self.decisions.labels(outcome)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
