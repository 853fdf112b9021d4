"""Running the event pipeline as real processes, and reading what each sink holds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from quiver.config import Settings
from quiver.events import bus
from quiver.events.sinks.base import VisibleEvent, visible_rows
from quiver.events.sinks.registry import make_sink
from tests.support.oracle import compare, sink_events, source_events

ROOT = Path(__file__).resolve().parents[2]


def nats_url() -> str:
    return os.environ.get("QUIVER_NATS_URL", "nats://127.0.0.1:14222")


def opensearch_url() -> str:
    return os.environ.get("QUIVER_OPENSEARCH_URL", "http://127.0.0.1:19200")


def clickhouse_url() -> str:
    return os.environ.get("QUIVER_CLICKHOUSE_URL", "http://127.0.0.1:18123")


@dataclass
class Pipeline:
    """One isolated pipeline: its own database, JetStream namespace, chDB path and ClickHouse database."""

    database_url: str
    workdir: Path
    namespace: str
    sinks: tuple[str, ...] = ("chdb",)
    clickhouse: str = field(default_factory=clickhouse_url)
    nats: str = field(default_factory=nats_url)
    redis: str | None = None
    opensearch: str | None = None
    metrics_ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def chdb_path(self) -> Path:
        return self.workdir / "chdb"

    def env(self) -> dict[str, str]:
        extra = {"QUIVER_REDIS_URL": self.redis} if self.redis else {}
        if self.opensearch:
            extra["QUIVER_SEARCH_URL"] = self.opensearch
            extra["QUIVER_SEARCH_INDEX_PREFIX"] = f"{self.namespace}-events"
        return {**os.environ, **extra, "QUIVER_DATABASE_URL": self.database_url, "QUIVER_NATS_URL": self.nats,
                "QUIVER_EVENTS_NAMESPACE": self.namespace, "QUIVER_CHDB_PATH": str(self.chdb_path),
                "QUIVER_CLICKHOUSE_URL": self.clickhouse, "QUIVER_CLICKHOUSE_DATABASE": self.namespace,
                "QUIVER_OUTBOX_RETENTION_SECONDS": "86400", "QUIVER_SINKS": json.dumps(list(self.sinks))}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "quiver.cli", "events", *args], env=self.env(), cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=True)

    def start(self, name: str) -> None:
        """Start ``relay`` or ``consume:<sink>`` as its own process."""
        args = ["relay"] if name == "relay" else ["consume", "--sink", name.split(":", 1)[1]]
        env = self.env()
        if name in self.metrics_ports:
            env["QUIVER_EVENTS_METRICS_PORT"] = str(self.metrics_ports[name])
        log = open(self.workdir / f"{name.replace(':', '-')}.log", "ab")  # noqa: SIM115 - kept open by the child
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "quiver.cli", "events", *args],
                                                env=env, cwd=ROOT, stdout=log, stderr=log)

    def start_all(self) -> None:
        self.start("relay")
        for sink in self.sinks:
            self.start(f"consume:{sink}")

    def kill(self, name: str) -> None:
        """SIGKILL, and wait until the process is really gone."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name.replace(':', '-')}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- progress ------------------------------------------------------------------------
    async def _consumer_state(self) -> dict[str, tuple[int, int]]:
        topology = bus.Topology(self.namespace)
        nc, js = await bus.connect(self.nats, name="quiver-test")
        try:
            state = {}
            for sink in self.sinks:
                try:
                    info = await js.consumer_info(topology.stream, f"quiver-sink-{sink}")
                    state[sink] = (info.num_pending, info.num_ack_pending)
                except Exception:  # noqa: BLE001 - not created yet
                    state[sink] = (-1, -1)
            return state
        finally:
            await nc.close()

    def consumer_state(self) -> dict[str, tuple[int, int]]:
        """Per sink: (messages not yet delivered, delivered but not acknowledged)."""
        return asyncio.run(self._consumer_state())

    def backlog(self) -> int:
        import psycopg

        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM quiver.outbox WHERE published_at IS NULL").fetchone()
        return int(row[0]) if row else 0

    def wait_drained(self, timeout: float = 180.0) -> float:
        """Until the outbox is published and every sink's consumer has nothing pending; returns seconds."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited: {self.log(name)[-3000:]}")
            if self.backlog() == 0:
                state = asyncio.run(self._consumer_state())
                if all(pending == 0 and unacked == 0 for pending, unacked in state.values()):
                    return time.monotonic() - started
            time.sleep(0.25)
        logs = {name: self.log(name)[-2000:] for name in self.processes}
        raise AssertionError(f"pipeline did not drain in {timeout}s: {asyncio.run(self._consumer_state())} {logs}")

    # -- what the sinks hold -------------------------------------------------------------------
    def settings(self) -> Settings:
        """The settings the pipeline's processes run with (``env()``), for building its sinks here."""
        settings = Settings(chdb_path=str(self.chdb_path), clickhouse_url=self.clickhouse,
                            clickhouse_database=self.namespace, events_namespace=self.namespace,
                            search_index_prefix=f"{self.namespace}-events")
        return settings.model_copy(update={"search_url": self.opensearch}) if self.opensearch else settings

    def chdb_rows(self) -> list[VisibleEvent]:
        """Read chDB in a child process: chDB allows one open path per process, so its consumer pauses meanwhile."""
        was_running = "consume:chdb" in self.processes
        if was_running:
            self.stop("consume:chdb")
        try:
            return self.read_with_cli("chdb")
        finally:
            if was_running:
                self.start("consume:chdb")

    def read_with_cli(self, sink: str) -> list[VisibleEvent]:
        """``quiver events read --sink <sink> --format arrow`` in a child process: the sink's documented read."""
        result = subprocess.run([sys.executable, "-m", "quiver.cli", "events", "read", "--sink", sink,
                                 "--format", "arrow"], env=self.env(), cwd=ROOT, capture_output=True, timeout=120)
        if result.returncode:
            raise AssertionError(f"reading {sink} failed: {result.stderr.decode(errors='replace')[-2000:]}")
        return visible_rows(pa.ipc.open_stream(result.stdout).read_all())

    def clickhouse_rows(self) -> list[VisibleEvent]:
        return self.sink_rows("clickhouse")

    def search_rows(self) -> list[VisibleEvent]:
        assert self.opensearch is not None
        return self.sink_rows("search")

    def sink_rows(self, sink: str) -> list[VisibleEvent]:
        """Every event ``sink`` holds, through its documented read (``Sink.visible_events``), by seq."""
        if sink == "chdb":
            return self.chdb_rows()
        return asyncio.run(sink_events(make_sink(sink, self.settings())))

    def metric(self, name: str, metric: str) -> float:
        """One sample from a process's Prometheus endpoint (``metrics_ports``)."""
        import httpx

        deadline = time.monotonic() + 30
        while True:  # the process may still be starting, its consumer not yet created
            try:
                text = httpx.get(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics", timeout=5).text
            except httpx.ConnectError:
                text = ""
            for line in text.splitlines():
                if line.startswith(metric + " ") or line.startswith(metric + "{"):
                    return float(line.rsplit(" ", 1)[1])
            if time.monotonic() > deadline:
                raise KeyError(metric)
            time.sleep(0.2)

    def check(self) -> dict[str, int]:
        """The conservation oracle for every sink; returns the event count."""
        source = source_events(self.database_url)
        problems = []
        for sink in self.sinks:
            problems += compare(source, self.sink_rows(sink), sink)
        assert not problems, "\n".join(problems)
        return {"events": len(source)}

    async def _cleanup(self) -> None:
        topology = bus.Topology(self.namespace)
        nc, js = await bus.connect(self.nats, name="quiver-test")
        try:
            for stream in (topology.stream, topology.dlq_stream):
                with contextlib.suppress(Exception):  # never created
                    await js.delete_stream(stream)
            with contextlib.suppress(Exception):  # created by the first large event only
                await js.delete_object_store(topology.large_bucket)
        finally:
            await nc.close()

    def cleanup(self) -> None:
        self.stop_all()
        asyncio.run(self._cleanup())
        if "search" in self.sinks and self.opensearch:
            import httpx

            with contextlib.suppress(httpx.HTTPError):
                prefix = f"{self.namespace}-events"
                httpx.delete(f"{self.opensearch}/{prefix}-*", timeout=30)
                httpx.delete(f"{self.opensearch}/_index_template/{prefix}", timeout=30)
        if "clickhouse" in self.sinks:
            import httpx

            with contextlib.suppress(httpx.HTTPError):  # a private server may already be stopped
                httpx.post(self.clickhouse, params={"query": f"DROP DATABASE IF EXISTS {self.namespace}"}, timeout=30)
