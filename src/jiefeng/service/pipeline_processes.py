"""The processes of a pipelined file ingest (its writer and its second folding process), started
as fresh interpreters that import jiefeng and then wait to be told what to do.

`jiefeng ingest` starts them first thing, before it imports the engine, opens the database and
reads the file: each takes about half a second of CPU to import jiefeng, which then overlaps the
command's own start instead of following it. That is why this module imports nothing of
jiefeng: starting them costs the command a few milliseconds. Once the command knows the
database and the policy, `jiefeng.service.pipeline.start_processes` sends each its setup.

Why not multiprocessing's spawn: a spawned child runs the parent's main module again before it
starts (for the `jiefeng` script, the whole command line: typer and rich, 0.1-0.2 s of CPU in
each child), and a resource tracker process starts with the first child, for semaphores and
shared memory this pipeline never uses. Here the child runs `jiefeng.service.pipeline_child`
only, and talks over one end of a socket pair through multiprocessing's `Connection` (the
same messages as a multiprocessing pipe). A child whose parent is gone reads the end of the
connection and exits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection

WRITER, HELPER = "writer", "helper"
CHILD_MODULE = "jiefeng.service.pipeline_child"


class ChildProcess:
    """A child interpreter running one of the pipeline's loops, and this side's connection to it
    (`is_alive`, `join` and `kill` as a multiprocessing.Process has them)."""

    def __init__(self, role: str) -> None:
        parent_end, child_end = socket.socketpair()
        with child_end:
            # -P: the working directory is not put first on the path (-m would): a folder
            # named jiefeng there is not imported.
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", CHILD_MODULE, role, str(child_end.fileno())],
                pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, env=_child_env())
        self.role = role
        self.connection = Connection(parent_end.detach())

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass  # still running: the caller decides (is_alive, kill)

    def kill(self) -> None:
        if self.is_alive():
            self.process.kill()
        self.process.wait()

    def close(self, timeout: float = 30) -> None:
        """Close the connection (the child reads its end and exits) and wait for the child;
        kill it if it has not exited within `timeout` seconds."""
        self.connection.close()
        self.join(timeout)
        if self.is_alive():
            self.kill()


def _child_env() -> dict[str, str]:
    """This process's environment, with its module search path: a child imports jiefeng from
    where this process did, even when a program embedding jiefeng put it on `sys.path` by hand
    (multiprocessing's spawn hands its children `sys.path` the same way)."""
    path = [entry or os.getcwd() for entry in sys.path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


@dataclass
class Launched:
    """A writer and, on a machine with more than one core, a second folding process, started
    (`launch`) and waiting for their setup (`jiefeng.service.pipeline.start_processes`)."""

    writer: ChildProcess
    helper: ChildProcess | None

    def close(self) -> None:
        """For processes never set up: each reads the end of its connection and exits."""
        self.writer.close()
        if self.helper is not None:
            self.helper.close()


def launch() -> Launched:
    """Start a writer and (given more than one core: see Engine._helper_cache_accounts) a second
    folding process, ahead of a file ingest that will need them."""
    writer = ChildProcess(WRITER)
    helper = ChildProcess(HELPER) if (os.cpu_count() or 1) >= 2 else None
    return Launched(writer, helper)
