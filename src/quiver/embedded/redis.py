"""Redis (Debian's ``redis-server``) on loopback, for the dedup cache of the event sinks.

Persistence is off on purpose: the cache is an optimisation, losing it only costs
duplicate writes that the idempotent sinks absorb anyway.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from quiver.embedded.nats import process_alive, terminate_process


class EmbeddedRedis:
    """One ``redis-server`` in ``root`` on 127.0.0.1:``port``."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root.absolute()
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "redis.log"

    def pid(self) -> int | None:
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
        return pid if b"redis-server" in cmdline and str(self.port).encode() in cmdline else None

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 30) -> None:
        if self.pid() is not None:
            return
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RuntimeError("redis-server is missing: run scripts/install-system-deps")
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root), "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._process = process
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + timeout
        while not self.ready():
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not become ready in {timeout}s")
            time.sleep(0.02)

    def stop(self, timeout: float = 30) -> None:
        pid = self.pid()
        if pid is not None:
            terminate_process(pid, timeout, self._reap)
        self._reap()
        self.pid_file.unlink(missing_ok=True)

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None
