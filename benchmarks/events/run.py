"""The whole run: a pipeline of its own, a warm-up, every target rate in turn, the conservation oracle with
the pipeline stopped, then the ceilings and stage costs; a failed measurement after the rates is noted, not
raised, so that an hour of load is never lost over one probe."""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from benchmarks.events.ceilings import (
    PROBE_EVENTS,
    Throughput,
    chdb_insert,
    clickhouse_insert,
    newest_events,
    redis_dedup_cost,
    search_bulk,
    stage_costs,
)
from benchmarks.events.conservation import OracleResult, conservation, forget_dedup_entries
from benchmarks.events.load import STATEMENTS_PER_SECOND, plan_load
from benchmarks.events.monitor import Monitor
from benchmarks.events.pipeline import SINKS, running_pipeline, sink_name
from benchmarks.events.step import StepResult, run_step, warm_up
from benchmarks.events.visibility import POLL_INTERVAL, visibility_for

T = TypeVar("T")


@dataclass
class BenchResult:
    """A whole run: the steps, the probes and the oracle, with what the report needs to say how it ran."""

    steps: list[StepResult]
    stages: list[Throughput]
    inserts: list[Throughput]
    oracle: OracleResult
    machine: str
    date: str
    command: str
    duration: float
    poll_interval: float
    load_average: tuple[float, float]
    warmup_events: int = 0
    profiled: bool = False
    dedup: str | None = None  # the consumers' Redis dedup URL, None when off
    probe_errors: list[str] = field(default_factory=list)  # measurements after the steps that failed
    sinks: tuple[str, ...] = ("clickhouse",)
    dedup_recorded: dict[str, int] = field(default_factory=dict)  # per sink, this run's event ids found in Redis
    search_refresh: str | None = None  # the search index's refresh_interval in force, and where it came from

    @property
    def sustained(self) -> StepResult | None:
        """The step with the highest commit rate every sink kept up with."""
        kept = [s for s in self.steps if s.kept_up]
        return max(kept, key=lambda s: s.commit_rate) if kept else None

    def as_json(self) -> dict[str, Any]:
        best = self.sustained
        return {
            "steps": [s.as_json() for s in self.steps], "stages": [s.as_json() for s in self.stages],
            "inserts": [s.as_json() for s in self.inserts], "oracle": asdict(self.oracle),
            "sustained_rate": best.commit_rate if best else None, "machine": self.machine, "date": self.date,
            "command": self.command, "duration": self.duration, "poll_interval": self.poll_interval,
            "load_average": list(self.load_average), "warmup_events": self.warmup_events, "profiled": self.profiled,
            "dedup": self.dedup, "probe_errors": self.probe_errors, "sinks": list(self.sinks),
            "dedup_recorded": self.dedup_recorded, "search_refresh": self.search_refresh,
        }


def optional(what: str, work: Callable[[], T], errors: list[str]) -> T | None:
    """A measurement not worth losing the whole run over: a failure is noted (and printed), not raised."""
    try:
        return work()
    except Exception as error:  # noqa: BLE001 - reported with the results
        errors.append(f"{what}: {type(error).__name__}: {error}")
        print(f"warning: {errors[-1]}", file=sys.stderr, flush=True)
        return None


def search_refresh_setting(url: str, prefix: str) -> str:
    """The ``refresh_interval`` of the search sink's indices, and whether the template or the server set it."""
    response = httpx.get(f"{url}/{prefix}/_settings", params={"include_defaults": "true", "flat_settings": "true"},
                         timeout=30)
    response.raise_for_status()
    found = set()
    for index in orjson.loads(response.content).values():
        for origin, where in (("settings", "set on the index"), ("defaults", "server default")):
            value = index.get(origin, {}).get("index.refresh_interval")
            if value is not None:
                found.add(f"{value} ({where})")
                break
    return ", ".join(sorted(found)) or "unknown"


def run(admin_url: str, rates: list[int], duration: float, *, machine: str, command: str,
        sinks: tuple[str, ...] = SINKS, poll_interval: float = POLL_INTERVAL,
        statements_per_second: float = STATEMENTS_PER_SECOND, workers: int | None = None,
        probe_events: int = PROBE_EVENTS, probe_rounds: int = 3, probes: bool = True, chdb: bool = True,
        warmup_seconds: float = 3.0, profile_dir: Path | None = None, redis_dedup: bool = True,
        drain_timeout: float | None = None, progress: bool = False) -> BenchResult:
    """Every rate in turn, the oracle of every sink, then (``probes``) the sinks' ceilings and the stage costs.

    Each rate's drain waits up to ``drain_timeout`` seconds (default: ``run_step``'s). Everything it created
    is removed, the Redis dedup entries of its events included.
    """
    unknown = set(sinks) - set(SINKS)
    if not sinks or unknown:
        raise ValueError(f"sinks must be some of {', '.join(SINKS)}, not {', '.join(sorted(unknown)) or 'none'}")
    plans = [plan_load(rate, statements_per_second, workers) for rate in rates]
    load_before = os.getloadavg()[0]
    steps: list[StepResult] = []
    problems: list[str] = []
    stages: list[Throughput] = []
    inserts: list[Throughput] = []
    recorded: dict[str, int] = {}
    refresh: str | None = None
    with tempfile.TemporaryDirectory(prefix="quiver-bench-events-") as tmp, \
            running_pipeline(admin_url, Path(tmp), sinks, profile_dir, redis_dedup) as pipeline:
        dedup = pipeline.dedup_url
        visibilities = [visibility_for(pipeline, sink) for sink in sinks]
        monitor = Monitor(pipeline)
        try:
            warmup = warm_up(pipeline, visibilities, monitor, warmup_seconds)
            for plan in plans:
                step = run_step(pipeline, visibilities, monitor, plan, duration, poll_interval, drain_timeout)
                steps.append(step)
                if progress:
                    print(summary_line(step), file=sys.stderr, flush=True)
            if "search" in sinks and pipeline.opensearch:
                search_url = pipeline.opensearch
                refresh = optional("search refresh interval",
                                   lambda: search_refresh_setting(search_url, pipeline.search_prefix), problems)
            pipeline.wait_drained()
            pipeline.stop_all()  # the oracle and the probes run alone
            if progress:
                print("conservation oracle...", file=sys.stderr, flush=True)
            oracle = conservation(pipeline)
            if dedup is not None:
                redis_url = dedup
                for sink in sinks:
                    removed = optional(f"forgetting the {sink} Redis dedup entries",
                                       partial(forget_dedup_entries, redis_url, pipeline.database_url, sink),
                                       problems)
                    if removed is not None:
                        recorded[sink] = removed
            if probes:
                events = newest_events(pipeline.database_url, probe_events)
                if progress:
                    print(f"sink ceilings over {len(events):,} events...", file=sys.stderr, flush=True)
                stages = optional("stage costs", lambda: stage_costs(events, probe_rounds, sinks), problems) or []
                if dedup is not None:
                    redis_url = dedup
                    cost = optional("Redis dedup cost", lambda: redis_dedup_cost(redis_url, events, probe_rounds),
                                    problems)
                    stages += [cost] if cost else []
                if "clickhouse" in sinks:
                    inserts += optional("ClickHouse insert", lambda: clickhouse_insert(
                        pipeline.clickhouse, f"{pipeline.namespace}_probe", events, probe_rounds), problems) or []
                if "search" in sinks and pipeline.opensearch:
                    search_url = pipeline.opensearch
                    inserts += optional("OpenSearch bulk", lambda: search_bulk(
                        search_url, f"{pipeline.namespace}-probe", events, probe_rounds), problems) or []
                if chdb:
                    chdb_time = optional("chDB insert", lambda: chdb_insert(events, Path(tmp), probe_rounds),
                                         problems)
                    inserts += [chdb_time] if chdb_time else []
        finally:
            for visibility in visibilities:
                visibility.close()
            monitor.close()
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return BenchResult(steps, stages, inserts, oracle, machine, today, command, duration, poll_interval,
                       (load_before, os.getloadavg()[0]), warmup, profile_dir is not None, dedup, problems,
                       tuple(sinks), recorded, refresh)


def summary_line(step: StepResult) -> str:
    """One line per step on stderr while the benchmark runs."""
    per_sink = "; ".join(
        f"{sink_name(s.sink)}: delivered {s.delivered_rate:,.0f}/s, lag p50 {s.lag_p50:.2f}s "
        f"p99 {s.lag_p99:.2f}s max {s.lag_max:.2f}s, trend {s.lag_trend:+.3f}, drain {s.drain_seconds:.1f}s "
        f"(catch-up {s.catch_up_rate:,.0f}/s), {'kept up' if s.kept_up else 'fell behind'}"
        for s in step.sinks.values())
    return (f"{step.target:>6,}/s: committed {step.commit_rate:,.0f}/s (relay p50 {step.relay_p50:.2f}s "
            f"p99 {step.relay_p99:.2f}s, {step.events_per_message:.0f} ev/msg); {per_sink}; "
            f"{'sustained' if step.kept_up else 'not sustained'}; "
            f"cpu pressure {step.cpu_pressure if step.cpu_pressure is not None else math.nan:.0%}, cpu "
            + ", ".join(f"{k} {v:.2f}" for k, v in step.cpu_cores.items()))
