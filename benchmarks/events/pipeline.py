"""The pipeline under test: a fresh database cloned from a demo template, a private namespace, and the real
relay and consumers as processes; a run starts and removes its own, so runs never see each other's events."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from benchmarks.common import ROOT
from benchmarks.common.database import create_database, drop_database, ensure_database, load_demo
from tests.support.pipeline import Pipeline, opensearch_url

SINKS = ("clickhouse", "search")  # the sinks this benchmark can drive, all by default
SINK_NAMES = {"clickhouse": "ClickHouse", "search": "OpenSearch"}
TEMPLATE_DB = "quiver_bench_events_template"
TEMPLATE_ORDERS = 20_000  # updates rotate over the orders, a disjoint id range per connection


def sink_name(sink: str) -> str:
    """How a sink is named in the report."""
    return SINK_NAMES.get(sink, sink)


def ensure_template(admin_url: str, name: str = TEMPLATE_DB, orders: int = TEMPLATE_ORDERS) -> str:
    """A demo database (``orders`` orders) nobody connects to, cloned per run; reused when already right."""
    with psycopg.connect(ensure_database(admin_url, name), autocommit=True) as conn:
        load_demo(conn, orders, f"quiver demo orders={orders} seed=42 events-bench=1")
    return name


@dataclass
class BenchPipeline(Pipeline):
    """``Pipeline`` whose processes can run under cProfile, with Redis dedup as configured or switched off."""

    profile_dir: Path | None = None
    redis_dedup: bool = True  # False: no QUIVER_REDIS_URL for the processes, whatever the environment says

    def env(self) -> dict[str, str]:
        env = super().env()
        if not self.redis_dedup:
            env.pop("QUIVER_REDIS_URL", None)
        return env

    @property
    def search_prefix(self) -> str:
        """The search sink's index prefix (and alias), as ``Pipeline.env`` sets it."""
        return f"{self.namespace}-events"

    @property
    def dedup_url(self) -> str | None:
        """The Redis the consumer deduplicates through (None: dedup off)."""
        return self.env().get("QUIVER_REDIS_URL") or None

    def start(self, name: str) -> None:
        args = ["relay"] if name == "relay" else ["consume", "--sink", name.split(":", 1)[1]]
        label = name.replace(":", "-")
        prefix = [sys.executable]
        if self.profile_dir is not None:
            prefix += ["-m", "cProfile", "-o", str(self.profile_dir / f"{label}.prof")]
        log = open(self.workdir / f"{label}.log", "ab")  # noqa: SIM115 - kept open by the child
        self.processes[name] = subprocess.Popen([*prefix, "-m", "quiver.cli", "events", *args], env=self.env(),
                                                cwd=ROOT, stdout=log, stderr=log)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}): {self.log(name)[-3000:]}")


@contextmanager
def running_pipeline(admin_url: str, workdir: Path, sinks: tuple[str, ...] = SINKS, profile_dir: Path | None = None,
                     redis_dedup: bool = True) -> Iterator[BenchPipeline]:
    """A fresh database (capture installed), a private namespace, the relay and one consumer per sink."""
    template = ensure_template(admin_url)
    tag = f"{os.getpid()}_{time.time_ns() % 10**9}"
    name = f"quiver_bench_events_{tag}"
    url = create_database(admin_url, name, template)
    pipeline = BenchPipeline(url, workdir, f"bev_{tag}", sinks,
                             opensearch=opensearch_url() if "search" in sinks else None,
                             profile_dir=profile_dir, redis_dedup=redis_dedup)
    try:
        pipeline.cli("install")
        pipeline.start_all()
        yield pipeline
    finally:
        pipeline.cleanup()
        drop_database(admin_url, name)
