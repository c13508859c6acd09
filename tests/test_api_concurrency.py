"""Two server processes (`serve --workers 2`) take concurrent posts for one account: no update
is lost and nothing is applied twice, also when the same events race in from two clients.
On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.service.engine import Engine
from jiefeng.store.sql import SqlStore
from test_api_support import MINUTE, T0, event, opened
from test_api_uvicorn import RUN_CLI, running_server

CLIENTS = 4
POSTS_PER_CLIENT = 15


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with running_server(db_url, tmp_path / "server.log") as base:
        yield base, db_url


def _key(db: str) -> str:
    env = {**os.environ, "JIEFENG_DB": db}
    done = subprocess.run([sys.executable, "-c", RUN_CLI, "keys", "create", "--role", "ingest"],
                          env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_concurrent_posts_for_one_account_lose_nothing(served: tuple[str, str]) -> None:
    base, db = served
    headers = {"Authorization": f"Bearer {_key(db)}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        assert client.post("/v1/events", json={"events": [opened("C1")]}).status_code == 200

    totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
    lock = threading.Lock()
    failures: list[str] = []

    def client_loop(client_no: int) -> None:
        # New connections per request spread the posts over both worker processes.
        for n in range(POSTS_PER_CLIENT):
            own = event("purchase", "C1", f"c{client_no}-{n}",
                        T0 + (client_no * 100 + n + 1) * MINUTE, amount="1.00",
                        merchant_id="M-1")
            # Every client also sends the shared events: the same ids race from all of them.
            shared = event("purchase", "C1", f"shared-{n}", T0 + (10_000 + n) * MINUTE,
                           amount="2.00", merchant_id="M-2")
            try:
                response = httpx.post(f"{base}/v1/events", json={"events": [own, shared]},
                                      headers=headers, timeout=30)
            except httpx.HTTPError as error:
                failures.append(repr(error))
                continue
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text[:200]}")
                continue
            body = response.json()
            with lock:
                for status in totals:
                    totals[status] += body[status]

    threads = [threading.Thread(target=client_loop, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert totals["rejected"] == 0
    # Each own event once; each shared event accepted by exactly one client.
    assert totals["accepted"] == CLIENTS * POSTS_PER_CLIENT + POSTS_PER_CLIENT
    assert totals["duplicate"] == (CLIENTS - 1) * POSTS_PER_CLIENT

    engine = Engine(SqlStore(db))
    state, _, _ = engine.state_at("C1", T0 + 20_000 * MINUTE)
    assert state.events_applied == 1 + CLIENTS * POSTS_PER_CLIENT + POSTS_PER_CLIENT
    assert state.unbilled_fen == (CLIENTS * POSTS_PER_CLIENT * 100 + POSTS_PER_CLIENT * 200)
    assert engine.replay(write=False).mismatched == []
    engine.store.close()
