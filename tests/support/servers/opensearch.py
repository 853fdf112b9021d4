"""OpenSearch 2.x from Maven Central, run on loopback (the search sink's real server).

The distribution is the official ``integ-test-zip`` (``org.opensearch.distribution.integ-test-zip:
opensearch:2.19.6:zip``, 56 MB): the OpenSearch server with its bundled modules (transport-netty4)
and no plugins, so no security plugin and plain HTTP. It bundles no JDK: the server runs on a
Java 11-23 found on the machine (Debian's Java 17 here; 2.19 needs the security manager, which
Java 24 removed). ``install()`` fetches it once with the ordinary Maven client
(``maven-dependency-plugin:copy``; checksums verified) into ``root/dist/`` and unpacks it there.

The server is started as the distribution's ``bin/opensearch`` would start it, minus the
shell steps that cost seconds (``command()``), with a config directory written into
``root/config`` on every start: HTTP on 127.0.0.1:``http_port``, transport on
``transport_port``, single-node discovery, disk watermarks off, a 1 GB heap, data and logs under
``root``. Throw-away servers (the chaos tests) can ask for ``quick_start``: the JIT limited to C1,
about half the start time on two busy cores, but about half the indexing rate too (the search
sink's ``write()`` of 20k events: ~5.0k events/s with C1 and a 512 MB heap, ~9.4k/s with C2 and
1 GB, interleaved rounds on this 2-vCPU machine, ``/tmp``-only probe, 2026-11-27).
The JVM runs as a detached child (its own session, so it outlives the process that started
it); its pid is kept in ``root/opensearch.pid``. Ready means ``GET /_cluster/health`` answers
yellow or green (all primaries assigned, so data written before a crash is searchable again).

OpenSearch refuses to run as root, so as root the server runs as the system user ``quiver-os``
(created on first use) that owns ``root/config``, ``data``, ``logs`` and ``tmp``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import urllib.request
import zipfile
from pathlib import Path

from quiver.embedded.process import DetachedServer, open_path_for, service_user

VERSION = "2.19.6"
ARTIFACT = f"org.opensearch.distribution.integ-test-zip:opensearch:{VERSION}:zip"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
SERVICE_USER = "quiver-os"
HEAP = ("1g", "1g")  # -Xms, -Xmx: the indexing buffer is 10% of the heap
# C1 only: starts in about half the time on 2 busy cores (no C2 compiler threads competing),
# for throw-away servers (chaos tests); indexes about half as fast, so never for the service.
QUICK_START = "-XX:TieredStopAtLevel=1\n"
JAVA_VERSIONS = range(11, 24)  # what OpenSearch 2.19 runs on (it needs the security manager: < 24)
_JAVA_VERSION = re.compile(r'^JAVA_VERSION="(\d+)', re.MULTILINE)


def java_version(home: Path) -> int | None:
    """The major version of the JDK/JRE in ``home`` (from its ``release`` file), None if it is none."""
    try:
        match = _JAVA_VERSION.search((home / "release").read_text())
    except OSError:
        return None
    if match is None or not (home / "bin" / "java").exists():
        return None
    major = int(match.group(1))
    return 8 if major == 1 else major


def find_java_home() -> Path:
    """A Java home OpenSearch 2.19 runs on: $QUIVER_OPENSEARCH_JAVA_HOME, $JAVA_HOME, ``java`` on PATH, /usr/lib/jvm."""
    candidates: list[Path] = []
    for variable in ("QUIVER_OPENSEARCH_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(variable):
            candidates.append(Path(os.environ[variable]))
    java = shutil.which("java")
    if java:
        candidates.append(Path(java).resolve().parent.parent)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates.extend(sorted(path.resolve() for path in jvm.iterdir() if path.is_dir()))
    for home in candidates:
        if java_version(home) in JAVA_VERSIONS:
            return home
    found = {str(home): java_version(home) for home in candidates}
    raise RuntimeError(f"no Java 11-23 for OpenSearch {VERSION} (found {found}); install openjdk-17-jre-headless"
                       " or set QUIVER_OPENSEARCH_JAVA_HOME")


def _unpack(archive: Path, destination: Path) -> None:
    """Unzip ``archive`` into ``destination`` keeping the executable bits, atomically (a temp dir, then rename)."""
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zipped:
        top = f"opensearch-{VERSION}/"
        for info in zipped.infolist():
            if not info.filename.startswith(top) or ".." in Path(info.filename).parts:
                raise RuntimeError(f"unexpected entry {info.filename!r} in {archive}")
            target = partial / info.filename[len(top):]
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(info) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            mode = (info.external_attr >> 16) & 0o777
            target.chmod((mode or 0o644) | 0o444)  # readable by the service user
    for directory in [partial, *(path for path in partial.rglob("*") if path.is_dir())]:
        directory.chmod(0o755)
    partial.rename(destination)


class EmbeddedOpenSearch(DetachedServer):
    """One OpenSearch node in ``root``: HTTP on 127.0.0.1:``http_port``, transport on ``transport_port``.

    ``home`` is the unpacked distribution (default ``root/dist/opensearch-<VERSION>``, made by
    ``install()``); several servers can share one.
    """

    name = "opensearch"

    def __init__(self, root: Path, http_port: int, transport_port: int, *, home: Path | None = None,
                 heap: tuple[str, str] = HEAP, quick_start: bool = False) -> None:
        self.root = root.absolute()
        self.http_port = http_port
        self.transport_port = transport_port
        self.home = (home or self.root / "dist" / f"opensearch-{VERSION}").absolute()
        self.heap = heap
        self.quick_start = quick_start
        self._process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def log_file(self) -> Path:
        """The launcher's and the server's console output (the server also logs to ``logs/``)."""
        return self.root / "opensearch.log"

    @property
    def archive(self) -> Path:
        return self.home.parent / f"opensearch-{VERSION}.zip"

    def installed(self) -> bool:
        return (self.home / "lib" / f"opensearch-{VERSION}.jar").exists() and (self.home / "modules").is_dir()

    def install(self) -> bool:
        """Fetch the distribution from Maven Central (once) and unpack it; True if it had to be fetched or unpacked."""
        if self.installed():
            return False
        self.home.parent.mkdir(parents=True, exist_ok=True)
        if not self.archive.exists():
            mvn = shutil.which("mvn")
            if mvn is None:
                raise RuntimeError("mvn is missing: run scripts/install-system-deps (Debian package maven)")
            command = [mvn, "-B", "-q", "--strict-checksums", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={ARTIFACT}",
                       f"-DoutputDirectory={self.home.parent}"]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0 or not self.archive.exists():
                raise RuntimeError(f"maven could not fetch {ARTIFACT} (rc {result.returncode}):\n"
                                   f"{result.stdout[-4000:]}{result.stderr[-4000:]}")
        _unpack(self.archive, self.home)
        return True

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "jvm.options.d").mkdir(exist_ok=True)
        (self.config_dir / "opensearch.yml").write_text(
            "# written by tests.support.servers.opensearch; rewritten on every start\n"
            "cluster.name: quiver\n"
            "node.name: quiver-0\n"
            "network.host: 127.0.0.1\n"
            f"http.port: {self.http_port}\n"
            f"transport.port: {self.transport_port}\n"
            "discovery.type: single-node\n"
            "# a test server on a shared disk: never turn indices read-only because the disk is full-ish\n"
            "cluster.routing.allocation.disk.threshold_enabled: false\n"
            "bootstrap.memory_lock: false\n"
            f"path.data: {json.dumps(str(self.data_dir))}\n"
            f"path.logs: {json.dumps(str(self.logs_dir))}\n"
        )
        xms, xmx = self.heap
        logs = self.logs_dir
        (self.config_dir / "jvm.options").write_text(
            "# written by tests.support.servers.opensearch; rewritten on every start\n"
            f"-Xms{xms}\n-Xmx{xmx}\n"
            + (QUICK_START if self.quick_start else "") +
            "11-:-XX:+UseG1GC\n"
            "11-:-XX:G1ReservePercent=25\n"
            "11-:-XX:InitiatingHeapOccupancyPercent=30\n"
            "-Djava.io.tmpdir=${OPENSEARCH_TMPDIR}\n"
            "-XX:-HeapDumpOnOutOfMemoryError\n"
            f"-XX:ErrorFile={logs}/hs_err_pid%p.log\n"
            f"9-:-Xlog:gc*,gc+age=trace,safepoint:file={logs}/gc.log:utctime,pid,tags:filecount=4,filesize=16m\n"
            "18-:-Djava.security.manager=allow\n"
            "20-:--add-modules=jdk.incubator.vector\n"
            "-Djava.util.concurrent.ForkJoinPool.common.threadFactory="
            "org.opensearch.secure_sm.SecuredForkJoinWorkerThreadFactory\n"
        )
        shutil.copyfile(self.home / "config" / "log4j2.properties", self.config_dir / "log4j2.properties")

    def _env(self, java_home: Path) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if key not in {"JAVA_TOOL_OPTIONS", "JAVA_OPTS", "OPENSEARCH_JAVA_OPTS", "JAVA_HOME"}}
        env.update(OPENSEARCH_JAVA_HOME=str(java_home), OPENSEARCH_PATH_CONF=str(self.config_dir),
                   OPENSEARCH_TMPDIR=str(self.tmp_dir))
        return env

    def command(self, java_home: Path) -> list[str]:
        """The JVM command line ``bin/opensearch`` would run, without its shell steps.

        The launcher script costs seconds per start (it boots three JVMs before the server,
        one only to ask whether the keystore has a password); its JVM options come from the
        distribution's own ``JvmOptionsParser`` (system options, ``config/jvm.options``,
        ergonomics), run here in the same way.
        """
        java = str(java_home / "bin" / "java")
        classpath = f"{self.home}/lib/*"
        parsed = subprocess.run(
            [java, "-Xshare:auto", "-cp", classpath, "org.opensearch.tools.launchers.JvmOptionsParser",
             str(self.config_dir)],
            env=self._env(java_home), capture_output=True, text=True,
        )
        if parsed.returncode != 0:
            raise RuntimeError(f"OpenSearch's JvmOptionsParser failed (rc {parsed.returncode}):"
                               f" {parsed.stderr[-2000:]}")
        return [java, "-Xshare:auto", *parsed.stdout.split(),
                f"-Dopensearch.path.home={self.home}", f"-Dopensearch.path.conf={self.config_dir}",
                "-Dopensearch.distribution.type=zip", "-Dopensearch.bundled_jdk=false",
                "-cp", classpath, "org.opensearch.bootstrap.OpenSearch"]

    def _marker(self) -> str:
        return f"-Dopensearch.path.conf={self.config_dir}"

    def marker(self) -> bytes:
        return self._marker().encode()

    def _get(self, path: str) -> object:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as response:
            return json.loads(response.read())

    def ready(self) -> bool:
        """True when ``/_cluster/health`` is yellow or green and the node answering keeps its data in ``root``.

        The second check matters while starting: another server already on the port would
        answer before ours fails to bind it.
        """
        try:
            health = self._get("/_cluster/health")
            nodes = self._get("/_nodes/_local/settings?filter_path=nodes.*.settings.path.data")
        except (OSError, ValueError):
            return False
        if not (isinstance(health, dict) and health.get("status") in {"yellow", "green"} and isinstance(nodes, dict)):
            return False
        for node in nodes.get("nodes", {}).values():
            data = node.get("settings", {}).get("path", {}).get("data")
            paths = data if isinstance(data, list) else [data]
            if str(self.data_dir) in paths:
                return True
        return False

    def version(self) -> str:
        """The server's version number (``GET /``)."""
        info = self._get("/")
        assert isinstance(info, dict)
        return str(info["version"]["number"])

    def start(self, timeout: float = 180) -> None:
        """Start the server unless it already runs, and wait until it is ready (yellow or green)."""
        if self.pid() is not None:
            return
        if not self.installed():
            raise RuntimeError(f"OpenSearch {VERSION} is not in {self.home}: run scripts/services start"
                               " (it installs it)")
        java_home = find_java_home()
        run_as = service_user(SERVICE_USER)
        for directory in (self.root, self.data_dir, self.logs_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if run_as is not None:
            open_path_for(self.home)
            open_path_for(self.root)
            for directory in (self.config_dir, self.data_dir, self.logs_dir, self.tmp_dir):
                for path in [directory, *directory.rglob("*")]:
                    shutil.chown(path, run_as, run_as)
        command = self.command(java_home)
        user = pwd.getpwnam(run_as) if run_as is not None else None
        self._spawn(command, self.log_file, timeout, poll=0.1, cwd=self.root, env=self._env(java_home),
                    user=user.pw_uid if user else None, group=user.pw_gid if user else None,
                    extra_groups=[] if user else None)
