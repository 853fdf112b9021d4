"""What the load did to the pipeline's parts, sampled while it runs: the outbox backlog, each consumer's
JetStream pending count, the relay's lag from the outbox itself, and every process's CPU (the machine is
shared, so each result says where the cores went)."""

from __future__ import annotations

import asyncio
import math
import os
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg

from benchmarks.events.pipeline import BenchPipeline
from quiver.events import bus
from quiver.events.capture import OUTBOX


def pid_listening(port: int) -> int | None:
    """The process listening on TCP ``port`` (our service among several on this machine)."""
    with suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    return None


@dataclass
class CpuSnapshot:
    """CPU seconds so far per process and for the machine, at one moment: two of them give the cores used."""

    at: float
    seconds: dict[str, dict[int, float]]  # group → pid → CPU seconds so far
    machine_busy: float
    machine_total: float
    pressure_us: float | None  # /proc/pressure/cpu "some" total: µs during which a task waited for a CPU


def cpu_pressure_us() -> float | None:
    """Linux PSI: cumulative µs some runnable task waited for a CPU (None without PSI)."""
    with suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some "):
                return float(line.rsplit("total=", 1)[1])
    return None


class Monitor:
    """Outbox backlog, JetStream pending and per-process CPU of the pipeline's parts."""

    def __init__(self, pipeline: BenchPipeline) -> None:
        self.pipeline = pipeline
        self.conn = psycopg.connect(pipeline.database_url, autocommit=True)
        # The servers are found by their listening port: several of each may run on this machine.
        self.service_pids = {
            "nats": pid_listening(httpx.URL(pipeline.env()["QUIVER_NATS_URL"].replace("nats://", "http://")).port
                                  or 4222),
        }
        if "clickhouse" in pipeline.sinks:
            self.service_pids["clickhouse"] = pid_listening(httpx.URL(pipeline.clickhouse).port or 8123)
        if "search" in pipeline.sinks and pipeline.opensearch:
            self.service_pids["opensearch"] = pid_listening(httpx.URL(pipeline.opensearch).port or 9200)

    def outbox_backlog(self) -> int:
        row = self.conn.execute(f"SELECT count(*) FROM {OUTBOX} WHERE published_at IS NULL").fetchone()
        return int(row[0]) if row else 0

    def jetstream_pending(self) -> dict[str, int]:
        """Per sink, the messages its consumer has not acknowledged (not delivered + in flight)."""
        return {sink: max(0, pending) + max(0, unacked)
                for sink, (pending, unacked) in self.pipeline.consumer_state().items()}

    def stream_messages(self) -> int:
        """Messages ever stored in the events stream (its last sequence)."""

        async def last() -> int:
            nc, js = await bus.connect(self.pipeline.env()["QUIVER_NATS_URL"], name="quiver-bench")
            try:
                return int((await js.stream_info(bus.Topology(self.pipeline.namespace).stream)).state.last_seq)
            except Exception:  # noqa: BLE001 - not created yet
                return 0
            finally:
                await nc.close()

        return asyncio.run(last())

    def max_seq(self) -> int:
        row = self.conn.execute(f"SELECT coalesce(max(seq), 0) FROM {OUTBOX}").fetchone()
        return int(row[0]) if row else 0

    def relay_lag(self, first: int, last: int) -> tuple[float, float]:
        """p50 and p99 of commit → marked published (after JetStream's ack) for outbox ``seq`` first..last."""
        row = self.conn.execute(
            f"SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP "
            f"(ORDER BY extract(epoch FROM published_at - occurred_at)) FROM {OUTBOX} WHERE seq BETWEEN %s AND %s",
            (first, last)).fetchone()
        if not row or row[0] is None:
            return math.nan, math.nan
        return float(row[0][0]), float(row[0][1])

    def _postgres_pids(self) -> list[int]:
        rows = self.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                 "OR backend_type <> 'client backend'").fetchall()
        return [int(r[0]) for r in rows]

    def cpu(self) -> CpuSnapshot:
        pids: dict[str, list[int]] = {
            "relay": [self.pipeline.processes["relay"].pid],
            **{f"consumer-{sink}": [self.pipeline.processes[f"consume:{sink}"].pid] for sink in self.pipeline.sinks},
            "postgres": self._postgres_pids(),
            **{service: [pid] if pid else [] for service, pid in self.service_pids.items()},
            "benchmark": [os.getpid()],
        }
        seconds: dict[str, dict[int, float]] = {}
        for group, members in pids.items():
            seconds[group] = {}
            for pid in members:
                with suppress(psutil.Error):
                    times = psutil.Process(pid).cpu_times()
                    seconds[group][pid] = times.user + times.system
        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        busy = machine.user + machine.nice + machine.system + sum(
            getattr(machine, name, 0.0) for name in ("irq", "softirq", "steal"))
        return CpuSnapshot(time.time(), seconds, busy, busy + idle, cpu_pressure_us())

    def close(self) -> None:
        self.conn.close()


def cores(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU used per group between two snapshots, in cores (1.0 = one vCPU busy)."""
    wall = max(after.at - before.at, 1e-9)
    out = {}
    for group, pids in after.seconds.items():
        earlier = before.seconds.get(group, {})
        out[group] = sum(max(0.0, total - earlier.get(pid, 0.0)) for pid, total in pids.items()) / wall
    return out
