"""What every server we run shares: a detached child tracked by a pid file, stopped by pid.

A server runs in its own session (so it outlives the command that started it), writes to
a log file, and is found again through ``pid_file``; a pid only counts as ours while the
process lives and its command line carries the server's marker (pids get recycled).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def service_user(name: str) -> str | None:
    """The system user ``name`` a server that refuses root runs as, created on first use; None unless root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
    return name


def open_path_for(path: Path) -> None:
    """Let a non-root server user traverse every parent of ``path``."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)


def process_alive(pid: int) -> bool:
    """True while any thread of process ``pid`` is live; a zombie counts as gone.

    Every thread counts, not only the first: after SIGKILL a multi-threaded server's main
    thread shows as a zombie while its other threads are still exiting and still hold its
    listening sockets (seen with nats-server and clickhouse-server).
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for task in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except OSError:  # that thread just finished
            continue
        if stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}:
            return True
    return False


def terminate_process(pid: int, timeout: float, reap: Callable[[], None] = lambda: None) -> None:
    """SIGTERM ``pid`` and wait until it is gone (a zombie counts as gone); SIGKILL after ``timeout`` seconds.

    ``reap`` is called while waiting, so a caller that is the parent can collect the exit status.
    """
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 30.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reap()
            if not process_alive(pid):
                return
            time.sleep(0.02)
    raise RuntimeError(f"process {pid} survived SIGKILL")


class DetachedServer(ABC):
    """Base of the embedded servers: subclasses say how to start one and how to tell it is ready."""

    name = "server"
    root: Path
    _process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.root / f"{self.name}.pid"

    @abstractmethod
    def marker(self) -> bytes:
        """Bytes that appear in this server's command line and no other's."""

    @abstractmethod
    def ready(self) -> bool:
        """The server answers (each says how it is asked)."""

    def pid(self) -> int | None:
        """The server's pid while it runs (a zombie, or a stranger with a recycled pid, counts as stopped)."""
        self._reap()
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not process_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if self.marker() in cmdline else None

    def _spawn(self, command: Sequence[str], log_file: Path, timeout: float, poll: float = 0.02,
               **popen: Any) -> None:
        """Start ``command`` detached, record its pid, and wait until ``ready()``."""
        with log_file.open("ab") as log:
            process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, **popen)
        self._process = process
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + timeout
        while not self.ready():
            if process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {process.returncode}; see {log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not become ready in {timeout}s; see {log_file}")
            time.sleep(poll)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, wait until the process is gone, SIGKILL after ``timeout`` seconds."""
        pid = self.pid()
        if pid is not None:
            terminate_process(pid, timeout, self._reap)
        self._reap()
        self.pid_file.unlink(missing_ok=True)

    def _reap(self) -> None:
        """Collect our own child's exit status so that it does not linger as a zombie."""
        if self._process is not None and self._process.poll() is not None:
            self._process = None
