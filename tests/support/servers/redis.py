"""Redis (Debian's ``redis-server``) on loopback, for the dedup cache of the event sinks.

Persistence is off on purpose: the cache is an optimisation, losing it only costs
duplicate writes that the idempotent sinks absorb anyway.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from quiver.embedded.process import DetachedServer


class EmbeddedRedis(DetachedServer):
    """One ``redis-server`` in ``root`` on 127.0.0.1:``port``."""

    name = "redis"

    def __init__(self, root: Path, port: int) -> None:
        self.root = root.absolute()
        self.port = port
        self._process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.root / "redis.log"

    def marker(self) -> bytes:
        return f"127.0.0.1:{self.port}".encode()  # redis-server sets its title to "redis-server <addr>:<port>"

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
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root), "--save", "",
                   "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"]
        self._spawn(command, self.log_file, timeout)
