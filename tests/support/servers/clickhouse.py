"""ClickHouse server 18.16 from Debian (``clickhouse-server`` package), run on loopback.

``scripts/install-system-deps`` installs the package. The server runs as a detached
child (its own session, so it outlives the process that started it) with a private
config written into ``root``: HTTP and native TCP on 127.0.0.1 only, data, tmp and logs
under ``root``, users from the package's ``users.xml``, timezone UTC. Its pid is kept in
``root/clickhouse.pid``. It runs fine as root.
"""

from __future__ import annotations

import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

from quiver.embedded.process import DetachedServer

USERS_CONFIG = Path("/etc/clickhouse-server/users.xml")


def clickhouse_server_command() -> list[str]:
    """The command that runs the server: ``clickhouse-server`` or the ``clickhouse server`` multi-tool."""
    for candidate in (shutil.which("clickhouse-server"), "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"):
        if candidate and Path(candidate).exists():
            return [candidate]
    for candidate in (shutil.which("clickhouse"), "/usr/bin/clickhouse"):
        if candidate and Path(candidate).exists():
            return [candidate, "server"]
    raise RuntimeError("clickhouse-server is not installed: run scripts/install-system-deps (as root)")


class ClickHouseServer(DetachedServer):
    """One ClickHouse server in ``root``: HTTP on 127.0.0.1:``http_port``, native TCP on ``tcp_port``."""

    name = "clickhouse"

    def __init__(self, root: Path, http_port: int, tcp_port: int) -> None:
        self.root = root.absolute()
        self.http_port = http_port
        self.tcp_port = tcp_port
        self._process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def config_file(self) -> Path:
        return self.root / "config.xml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    def _write_config(self) -> None:
        def path(p: Path) -> str:
            return escape(f"{p}/")

        self.config_file.write_text(
            '<?xml version="1.0"?>\n'
            "<!-- written by tests.support.servers.clickhouse; rewritten on every start -->\n"
            "<yandex>\n"
            "  <logger>\n"
            "    <level>information</level>\n"
            f"    <log>{escape(str(self.log_dir / 'server.log'))}</log>\n"
            f"    <errorlog>{escape(str(self.log_dir / 'server.err.log'))}</errorlog>\n"
            "    <size>100M</size>\n"
            "    <count>2</count>\n"
            "  </logger>\n"
            f"  <http_port>{self.http_port}</http_port>\n"
            f"  <tcp_port>{self.tcp_port}</tcp_port>\n"
            "  <listen_host>127.0.0.1</listen_host>\n"
            "  <max_connections>1024</max_connections>\n"
            "  <keep_alive_timeout>3</keep_alive_timeout>\n"
            "  <max_concurrent_queries>100</max_concurrent_queries>\n"
            "  <uncompressed_cache_size>268435456</uncompressed_cache_size>\n"
            "  <mark_cache_size>268435456</mark_cache_size>\n"
            f"  <path>{path(self.data_dir)}</path>\n"
            f"  <tmp_path>{path(self.root / 'tmp')}</tmp_path>\n"
            f"  <user_files_path>{path(self.data_dir / 'user_files')}</user_files_path>\n"
            f"  <format_schema_path>{path(self.data_dir / 'format_schemas')}</format_schema_path>\n"
            f"  <users_config>{escape(str(USERS_CONFIG))}</users_config>\n"
            "  <default_profile>default</default_profile>\n"
            "  <default_database>default</default_database>\n"
            "  <timezone>UTC</timezone>\n"
            "  <mlock_executable>false</mlock_executable>\n"
            "  <max_session_timeout>3600</max_session_timeout>\n"
            "  <default_session_timeout>60</default_session_timeout>\n"
            "</yandex>\n"
        )

    def marker(self) -> bytes:
        return f"--config-file={self.config_file}".encode()

    def ready(self) -> bool:
        """True when ``/ping`` answers ``Ok.`` and the server is this one (its data is in ``root``).

        The second check matters while starting: another server already on the port would
        answer the ping before ours fails to bind it.
        """
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as response:
                if response.read().strip() != b"Ok.":
                    return False
            query = urllib.parse.quote("SELECT data_path FROM system.databases WHERE name = 'system'")
            with urllib.request.urlopen(f"{self.url}/?query={query}", timeout=5) as response:
                data_path: str = response.read().decode().strip()
        except (OSError, UnicodeDecodeError):
            return False
        return data_path.startswith(f"{self.data_dir}/")

    def start(self, timeout: float = 60) -> None:
        """Start the server unless it already runs, and wait until it is ready."""
        if self.pid() is not None:
            return
        command = clickhouse_server_command()
        if not USERS_CONFIG.exists():
            raise RuntimeError(f"{USERS_CONFIG} is missing: run scripts/install-system-deps (as root)")
        for directory in (self.root, self.data_dir, self.log_dir, self.root / "tmp"):
            directory.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._spawn([*command, f"--config-file={self.config_file}"], self.log_dir / "stdout.log", timeout)
