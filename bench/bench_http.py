"""Benchmarks for the service: HTTP ingest throughput and authorize latency against a running
`jiefeng serve` on loopback, on SQLite and on PostgreSQL, next to the in-process core fold rate
measured in the same run (the baseline: what the engine does with no HTTP and no storage).

- ingest: POST /v1/events in batches of 500, one client, events in time order. Target >= 10,000
  events/s. Reported as events/s and as a ratio to the in-process fold rate.
- authorize: POST /v1/accounts/{id}/authorize, open loop at a fixed rate (default 500/s) for a
  bounded count; p50 / p99 / max latency. Target: p99 <= 10 ms at 500 requests/s.

Every loop is bounded in requests and time, and only 127.0.0.1 is contacted.

Usage: python bench/bench_http.py [--events 50000] [--rate 500] [--requests 3000]
       [--workers 2] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson

from bench_core import fold_rate  # the same baseline as the core benchmark

PG_ADMIN_URL = os.environ.get("JIEFENG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
JIEFENG = str(Path(sys.executable).with_name("jiefeng"))
BATCH_EVENTS = 500
MAX_SECONDS = 300  # a hard bound on each measured loop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_events(target: int) -> list[dict]:
    from jiefeng.batch.limits import MAX_ACCOUNTS, MIN_ACCOUNTS
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    accounts = min(MAX_ACCOUNTS, max(MIN_ACCOUNTS, target // 170))
    return generate_portfolio(PortfolioSpec(accounts=accounts, months=18, seed=11))[:target]


def create_key(db: str, role: str) -> str:
    done = subprocess.run([JIEFENG, "keys", "create", "--role", role, "--db", db],
                          capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip().splitlines()[-1]


class Server:
    def __init__(self, db: str, workers: int):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [JIEFENG, "serve", "--db", db, "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("jiefeng serve did not become healthy within 60 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def measure_ingest(base: str, key: str, events: list[dict]) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for start in range(0, len(events), BATCH_EVENTS):
            response = client.post("/v1/events",
                                   json={"events": events[start : start + BATCH_EVENTS]})
            if response.status_code != 200:
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
            if time.perf_counter() - started > MAX_SECONDS:
                raise RuntimeError("ingest exceeded the time bound")
    return len(events) / (time.perf_counter() - started)


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams. httpx's own per-request cost
    (about a millisecond of CPU) would compete with the server for the machine's two cores and
    measure the client, not the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes, key: str) -> int:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


async def _authorize_open_loop(port: int, key: str, accounts: list[str], rate: float,
                               count: int, at: str) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = 0
    rng = random.Random(5)
    idle: asyncio.Queue[RawConnection] = asyncio.Queue()
    for _ in range(64):
        idle.put_nowait(await RawConnection.open(port))

    async def one(account_id: str) -> None:
        nonlocal failures
        sent = time.perf_counter()  # from the scheduled send, waiting for a connection counts
        connection = await idle.get()
        try:
            body = orjson.dumps({"amount": "35.00", "merchant_id": "M-BENCH", "at": at})
            status = await connection.post(f"/v1/accounts/{account_id}/authorize", body, key)
        finally:
            idle.put_nowait(connection)
        latencies.append((time.perf_counter() - sent) * 1000)
        if status != 200:
            failures += 1

    # Warm the connections and the server's caches outside the measurement: every account
    # read a few times, so each worker process has loaded it once (steady state).
    for _ in range(3):
        await asyncio.gather(*(one(account) for account in accounts))
    latencies.clear()
    tasks = []
    started = time.perf_counter()
    for n in range(count):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(rng.choice(accounts))))
        if time.perf_counter() - started > MAX_SECONDS:
            break
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return latencies, failures


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def pg_database() -> str | None:
    try:
        import psycopg

        name = f"jiefeng_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=2) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}"
    except Exception as error:  # noqa: BLE001 - report and skip the backend
        print(f"postgresql: skipped ({error})")
        return None


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rpartition("/")[2]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_backend(name: str, db: str, events: list[dict], args: argparse.Namespace,
                core_rate: float) -> None:
    ingest_key = create_key(db, "ingest")
    server = Server(db, args.workers)
    try:
        rate = measure_ingest(server.base, ingest_key, events)
        accounts = sorted({e["account_id"] for e in events if "account_id" in e})
        at = max(e["at"] for e in events)
        latencies, failures = asyncio.run(_authorize_open_loop(
            server.port, ingest_key, accounts, args.rate, args.requests, at))
    finally:
        server.stop()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(f"{name:10} ingest   : {rate:10,.0f} events/s in batches of {BATCH_EVENTS} "
          f"(target >= 10,000)   ratio to in-process fold {rate / core_rate:.3f}")
    print(f"{name:10} authorize: {len(latencies)} requests at {args.rate:.0f}/s open loop: "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies):.2f} ms, "
          f"errors {failures} (target p99 <= 10 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    events = make_events(args.events)
    core_rate = fold_rate(events)
    print(f"events: {len(events)} mixed (synthetic portfolio); server workers {args.workers}; "
          f"cpu count {os.cpu_count()}")
    print(f"baseline  in-process fold: {core_rate:10,.0f} events/s   ratio 1.000")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                run_backend("sqlite", str(Path(tmp) / "bench.db"), events, args, core_rate)
        elif backend == "postgresql":
            url = pg_database()
            if url is not None:
                try:
                    run_backend("postgresql", url, events, args, core_rate)
                finally:
                    drop_pg_database(url)


if __name__ == "__main__":
    main()
