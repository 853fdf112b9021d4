"""One target rate: offer the load for a fixed time while polling every sink, then keep polling until every
committed event is visible (the drain), and summarise; a warm-up runs the same way at a low rate first."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.events.load import LoadGenerator, LoadPlan, plan_load
from benchmarks.events.monitor import CpuSnapshot, Monitor, cores
from benchmarks.events.pipeline import BenchPipeline
from benchmarks.events.visibility import POLL_INTERVAL, SinkStep, Visibility, summarise_sink


@dataclass
class StepResult:
    """One target rate: what was committed, and per sink what became visible and how late."""

    target: int
    duration: float
    rows_per_statement: int
    statements_per_second: float
    workers: int
    committed: int = 0
    window: float = 0.0
    sinks: dict[str, SinkStep] = field(default_factory=dict)
    relay_p50: float = math.nan  # commit → acknowledged by JetStream and marked published (outbox published_at)
    relay_p99: float = math.nan
    outbox_backlog_max: int = 0
    outbox_backlog_end: int = 0
    statement_ms: dict[str, float] = field(default_factory=dict)  # median per op
    cpu_cores: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0  # fraction of all vCPUs
    cpu_pressure: float | None = None  # fraction of the window some task waited for a CPU (PSI "some")
    messages: int = 0  # JetStream messages the relay stored for this step

    @property
    def commit_rate(self) -> float:
        return self.committed / self.window if self.window else 0.0

    @property
    def events_per_message(self) -> float:
        return self.committed / self.messages if self.messages else 0.0

    @property
    def offered(self) -> bool:
        """The generator committed at least 90% of the target rate."""
        return self.commit_rate >= 0.9 * self.target

    @property
    def drained(self) -> bool:
        """Every committed event became visible in every sink."""
        return bool(self.sinks) and all(s.drained for s in self.sinks.values())

    @property
    def kept_up(self) -> bool:
        """Sustained: every sink kept up with what was committed."""
        return bool(self.sinks) and all(s.kept_up for s in self.sinks.values())

    @property
    def worst_p99(self) -> float:
        """The highest lag p99 over the sinks (the pipeline is as late as its slowest sink)."""
        values = [s.lag_p99 for s in self.sinks.values()]
        return max(values) if values and not any(math.isnan(v) for v in values) else math.nan

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "sinks": {name: s.as_json() for name, s in self.sinks.items()},
                "commit_rate": self.commit_rate, "events_per_message": self.events_per_message,
                "offered": self.offered, "drained": self.drained, "kept_up": self.kept_up}


def run_step(pipeline: BenchPipeline, visibilities: list[Visibility], monitor: Monitor, plan: LoadPlan,
             duration: float, poll_interval: float = POLL_INTERVAL, drain_timeout: float | None = None) -> StepResult:
    """Drive ``plan`` for ``duration`` seconds, track every sink's visibility until drained, summarise."""
    result = StepResult(plan.rate, duration, plan.rows, plan.statements_per_second, plan.workers)
    generator = LoadGenerator(pipeline.database_url, plan)
    for visibility in visibilities:
        visibility.begin()
    first_seq = monitor.max_seq() + 1
    messages_before = monitor.stream_messages()
    start_at = time.time() + 0.3
    generator.start(start_at, duration)
    backlog: dict[str, list[tuple[float, float]]] = {v.sink: [] for v in visibilities}
    outbox: list[int] = []
    pending: dict[str, list[int]] = {v.sink: [] for v in visibilities}
    cpu_start: CpuSnapshot | None = None
    cpu_end: CpuSnapshot | None = None
    next_sample = start_at
    while generator.running():
        now = time.time()
        if cpu_start is None and now >= start_at:
            cpu_start = monitor.cpu()
        for visibility in visibilities:
            visibility.poll()
        now = time.time()
        if start_at <= now <= generator.stop_at:
            for visibility in visibilities:
                backlog[visibility.sink].append((now, generator.events - visibility.since_begin))
        if now >= next_sample and now <= generator.stop_at:
            outbox.append(monitor.outbox_backlog())
            for sink, messages in monitor.jetstream_pending().items():
                pending.setdefault(sink, []).append(messages)
            pipeline.check_alive()
            next_sample = now + 1.0
        if cpu_end is None and now >= generator.stop_at:
            cpu_end = monitor.cpu()
        time.sleep(max(0.0, poll_interval - (time.time() - now)))
    if cpu_start is None:
        cpu_start = monitor.cpu()
    if cpu_end is None:  # before join(): the generator's connections (and their CPU) still exist
        cpu_end = monitor.cpu()
    generator.join()
    stopped = time.time()
    result.committed = generator.events
    result.window = generator.stop_at - start_at
    result.outbox_backlog_end = monitor.outbox_backlog()
    pending_end = monitor.jetstream_pending()
    outbox.append(result.outbox_backlog_end)
    # Drain: poll until every committed event of this step has been seen in every sink.
    limit = drain_timeout if drain_timeout is not None else max(120.0, 10 * duration)
    waiting = [v for v in visibilities if v.since_begin < generator.events]
    while waiting and time.time() - stopped < limit:
        sent = time.time()
        for visibility in waiting:
            visibility.poll()
        waiting = [v for v in waiting if v.since_begin < generator.events]
        if not waiting:
            break
        pipeline.check_alive()
        time.sleep(max(0.0, poll_interval - (time.time() - sent)))
    for visibility in visibilities:
        result.sinks[visibility.sink] = summarise_sink(
            visibility, generator.events, start_at, generator.stop_at, backlog[visibility.sink],
            pending.get(visibility.sink, []), pending_end.get(visibility.sink, 0))
        if result.sinks[visibility.sink].drained:
            visibility.skip_to(monitor.max_seq())
    result.relay_p50, result.relay_p99 = monitor.relay_lag(first_seq, monitor.max_seq())
    result.messages = monitor.stream_messages() - messages_before
    if cpu_start.pressure_us is not None and cpu_end.pressure_us is not None:
        result.cpu_pressure = (cpu_end.pressure_us - cpu_start.pressure_us) / 1e6 / max(cpu_end.at - cpu_start.at, 1e-9)
    result.outbox_backlog_max = max(outbox, default=0)
    result.statement_ms = {op: statistics.median(v) * 1000 for op, v in generator.latencies.items() if v}
    result.cpu_cores = cores(cpu_start, cpu_end)
    machine_total = cpu_end.machine_total - cpu_start.machine_total
    result.machine_busy = (cpu_end.machine_busy - cpu_start.machine_busy) / machine_total if machine_total else 0.0
    return result


def warm_up(pipeline: BenchPipeline, visibilities: list[Visibility], monitor: Monitor, seconds: float,
            timeout: float = 90.0) -> int:
    """Low-rate load until the pipeline carries events end to end into every sink (processes up, tables made)."""
    deadline = time.time() + timeout
    committed = 0
    while time.time() < deadline:
        step = run_step(pipeline, visibilities, monitor, plan_load(1_000, workers=1), seconds, drain_timeout=30)
        committed += step.committed
        if step.drained:
            return committed
    logs = " ".join(pipeline.log(name)[-1500:] for name in pipeline.processes)
    raise RuntimeError(f"the pipeline did not deliver within {timeout}s: {logs}")
