"""The real thing: `serve` in a uvicorn subprocess (two workers) on 127.0.0.1 and a free port,
keys and tokens made with the CLI commands, requests over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from test_api_support import MINUTE, T0, event, opened

# The CLI commands as `jiefeng` will register them (src/jiefeng/cli.py calls register(app)).
RUN_CLI = ("import typer; from jiefeng.api.cli import register; "
           "app = typer.Typer(); register(app); app()")
STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cli(*args: str, db: Path) -> str:
    env = {**os.environ, "JIEFENG_DB": str(db)}
    env.pop("JIEFENG_TOKEN_SECRET", None)
    done = subprocess.run([sys.executable, "-c", RUN_CLI, *args], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.strip()


@contextmanager
def running_server(db: str, log_path: Path) -> Iterator[str]:
    """`serve --workers 2` on a free loopback port; yields its base URL, stops it after."""
    port = _free_port()
    env = {**os.environ}
    env.pop("JIEFENG_TOKEN_SECRET", None)
    log = log_path.open("wb")  # a file, not a pipe: a full pipe would block
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "serve", "--db", db, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                output = log_path.read_text(errors="replace")
                pytest.fail(f"server exited with {process.returncode}: {output[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not answer /healthz in time")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()  # SIGTERM to the uvicorn supervisor; it stops its own workers
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "served.db"
    with running_server(str(db), tmp_path / "server.log") as base:
        yield base, db


def test_served_over_tcp(server: tuple[str, Path]) -> None:
    base, db = server
    admin_key = _cli("keys", "create", "--role", "admin", "--name", "root", db=db)
    ingest_key = _cli("keys", "create", "--role", "ingest", db=db)
    assert admin_key.startswith("jf_") and ingest_key.startswith("jf_")

    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/v1/accounts/U1").status_code == 401
        events = [opened("U1")] + [event("password_attempt", "U1", f"U1-pw{i}",
                                         T0 + i * MINUTE, ok=False) for i in range(5)]
        ingest = {"Authorization": f"Bearer {ingest_key}"}
        first = client.post("/v1/events", json={"events": events}, headers=ingest)
        assert first.status_code == 200, first.text
        assert first.json()["accepted"] == 6
        retry = client.post("/v1/events", json={"events": events}, headers=ingest)
        assert retry.json()["duplicate"] == 6

        # A customer token is for an account the database holds (hardening item 18).
        token = _cli("token", "create", "--account", "U1", "--ttl-hours", "2", db=db)
        customer = {"Authorization": f"Bearer {token}"}
        at = (T0 + 10 * MINUTE).isoformat()
        frozen = client.get("/v1/accounts/U1/explanation", params={"at": at}, headers=customer)
        assert frozen.status_code == 200, frozen.text
        assert frozen.json()["status"] == "frozen"
        assert client.get("/v1/accounts/U1", headers=customer).json()["status"] == "active"
        assert client.get("/v1/audit", headers=customer).status_code == 403
        audit = client.get("/v1/audit", headers={"Authorization": f"Bearer {admin_key}"})
        assert audit.status_code == 200
        assert any(e["action"] == "keys.create" for e in audit.json()["entries"])
        assert client.get("/openapi.json").json()["info"]["title"] == "jiefeng"
        assert "jiefeng_http_requests_total" in client.get("/metrics").text
        response = client.get("/healthz", headers={"X-Request-ID": "tcp-1"})
        assert response.headers["x-request-id"] == "tcp-1"
