"""The processes of a pipelined file ingest (its writer and its second folding process), started
ahead of the file's transactions and waiting to be told what to do.

`jiefeng ingest` on Linux forks them once it has imported jiefeng (`launch(forked=True)`):
a forked child has every module its parent imported and starts folding or writing without
importing anything. Started as fresh interpreters instead, each took about half a second of
CPU to import jiefeng, on a machine whose two cores the command's own start already kept
busy; forked, that CPU is not spent at all, and the command reaches its first transaction
about half a second sooner (see bench/README.md). The command forks before it opens the
database or starts a thread (a child inherits neither), and only then: with another thread
running (a library caller's server, a test's) a fork could copy a lock that thread holds, so
it falls back to fresh interpreters (`can_fork`).

Fresh interpreters (`launch()`, elsewhere than Linux, or a caller with threads) run
`python -P -m jiefeng.service.pipeline_child ROLE FD`, started first thing: this module imports
nothing of jiefeng, so starting them costs the command a few milliseconds, and their imports
overlap the command's own. Not multiprocessing's spawn: a spawned child runs the parent's main
module again before it starts (for the `jiefeng` script, the whole command line: typer and
rich, 0.1-0.2 s of CPU in each child), and a resource tracker process starts with the first
child, for semaphores and shared memory this pipeline never uses.

Either way a child talks over one end of a socket pair through multiprocessing's `Connection`
(the same messages as a multiprocessing pipe), is sent its setup once the command knows the
database and the policy (`jiefeng.service.pipeline.start_processes`), and exits through
`os._exit` (a forked child must not flush or tear down what it inherited). A child whose
parent is gone reads the end of the connection and exits.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import IO, Any

log = logging.getLogger(__name__)

WRITER, HELPER = "writer", "helper"
CHILD_MODULE = "jiefeng.service.pipeline_child"


class ChildProcess:
    """A child interpreter running one of the pipeline's loops, and this side's connection to it
    (`is_alive`, `join` and `kill` as a multiprocessing.Process has them)."""

    connection: Connection
    role: str

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

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has been waited for (`is_alive`, `join`)."""
        return self.process.returncode

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


class ForkedChild(ChildProcess):
    """A child forked from this process (see the module's docstring): it runs one of the
    pipeline's loops with the modules this process had imported."""

    def __init__(self, role: str, inherited: Sequence[Connection] = (),
                 work: Callable[[Connection], None] | None = None) -> None:
        """`inherited`: this process's connections to children forked before, which the new
        child closes (holding them open, it would keep those children from seeing this
        process end). `work`: what the child does with its end (default: serve `role`)."""
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the child: it never returns from here
            _run_forked(work or _serving(role), parent_end, child_end, inherited)
        child_end.close()
        self.pid = pid
        self._returncode: int | None = None
        self.role = role
        self.connection = Connection(parent_end.detach())

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def _reaped(self, wait: bool) -> bool:
        if self._returncode is None:
            pid, status = os.waitpid(self.pid, 0 if wait else os.WNOHANG)
            if pid == 0:
                return False
            self._returncode = os.waitstatus_to_exitcode(status)
        return True

    def is_alive(self) -> bool:
        return not self._reaped(wait=False)

    def join(self, timeout: float | None = None) -> None:
        if timeout is None:
            self._reaped(wait=True)
            return
        deadline = time.monotonic() + timeout
        pause = 0.001
        while not self._reaped(wait=False) and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)  # a child told to stop exits within milliseconds

    def kill(self) -> None:
        if self.is_alive():
            os.kill(self.pid, 9)
        self._reaped(wait=True)


def _serving(role: str) -> Callable[[Connection], None]:
    def serve(connection: Connection) -> None:
        from jiefeng.service import pipeline

        pipeline.serve(role, connection)  # exits itself when done

    return serve


def _run_forked(work: Callable[[Connection], None], parent_end: socket.socket,
                child_end: socket.socket, inherited: Sequence[Connection]) -> None:
    """A forked child's whole life: its work, then `os._exit` whatever happens (it must not
    return into its parent's code, nor flush the parent's buffers at exit)."""
    code = 1
    try:
        parent_end.close()
        for connection in inherited:
            connection.close()
        work(Connection(child_end.detach()))
        code = 0
    except BaseException:  # noqa: BLE001 - said on stderr; the parent sees the child gone
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


# What the early scan indexes while the command imports jiefeng and opens the database (about
# half a second; the scan reads some 35 MB a second): the head start it is given over the two
# processes that index the rest once the command is ready.
EARLY_SCAN_HEAD_BYTES = 16 * 1024 * 1024
SCANNING = "scan"  # the early scan's role


class EarlyScan(ForkedChild):
    """A child forked before the command imports the rest of jiefeng, indexing the file's first
    lines (`jiefeng.service.event_file.FirstPart`) on the core the command's imports leave
    idle; it sends the index and exits. `end`: the byte it stops before, None for the whole
    file (the index of a small file is all done before the command is ready)."""

    def __init__(self, path: str, identity: tuple[int, int], end: int | None,
                 keep_types: Collection[str]) -> None:
        self.end = end
        keep = frozenset(keep_types)

        def index(connection: Connection) -> None:
            from jiefeng.service.event_file import scan_file_part

            connection.send(scan_file_part(path, identity, 0, end, keep))

        super().__init__(SCANNING, work=index)

    def collect(self) -> tuple[Any, int] | None:
        """The index and its count of lines, or None (logged as a warning) if the child could
        not make it: the caller indexes those lines itself."""
        try:
            scanned = self.connection.recv()
        except (EOFError, OSError):
            scanned = "the early scan ended without its index"
        self.close(timeout=5)  # it exits once it has sent the index
        if isinstance(scanned, str):
            log.warning("the early scan did not index the file's first lines (%s); this "
                        "process does", scanned)
            return None
        return scanned

    def close(self, timeout: float = 0) -> None:
        """Stop it: it only reads the file, so one not done by `timeout` is killed."""
        super().close(timeout)

    @staticmethod
    def start(source: IO[bytes], keep_types: Collection[str]) -> EarlyScan | None:
        """Fork one for `source` (a file with a path), sized so that it and the processes that
        index the rest are done about together; None where that is not possible."""
        from jiefeng.service.event_file import line_start_after, named_file

        named = named_file(source)
        if named is None or not can_fork():
            return None  # stdin (spooled to an unnamed file), or not Linux
        try:
            # It starts about EARLY_SCAN_HEAD_BYTES ahead of the two others: the first part
            # is that much more than the half of the file.
            wanted = (EARLY_SCAN_HEAD_BYTES + named.size) // 2
            end = None if wanted >= named.size else line_start_after(source, wanted)
            source.seek(0)
        except OSError:
            return None
        return EarlyScan(named.path, named.identity, end, keep_types)


def can_fork() -> bool:
    """Whether `launch(forked=True)` may fork: on Linux, from a process running one thread."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


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


def launch(*, forked: bool = False, inherited: Sequence[Connection] = ()) -> Launched:
    """Start a writer and (given more than one core: see Engine._helper_cache_accounts) a second
    folding process, ahead of a file ingest that will need them: fresh interpreters, or
    `forked` from this process (only where `can_fork`), with the pipeline's modules imported
    first so that the children have them; a forked child closes the `inherited` connections
    (this process's to other children, such as an early scan)."""
    helper_wanted = (os.cpu_count() or 1) >= 2
    if not forked:
        return Launched(ChildProcess(WRITER), ChildProcess(HELPER) if helper_wanted else None)
    if not can_fork():
        raise RuntimeError("a pipelined ingest's processes are forked only on Linux, from a "
                           "process running one thread")
    import jiefeng.service.pipeline  # noqa: F401 - imported once, here, for both children

    gc.freeze()  # what is loaded now stays put: the children share its pages, not copy them
    writer = ForkedChild(WRITER, inherited)
    helper = ForkedChild(HELPER, [*inherited, writer.connection]) if helper_wanted else None
    return Launched(writer, helper)
