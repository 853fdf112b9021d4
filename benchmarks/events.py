"""Benchmark: events from a PostgreSQL commit to visible in every sink (ClickHouse and OpenSearch), at rising rates.

The real pipeline runs as processes (``quiver events relay`` and one ``quiver events consume --sink NAME``
per sink, ``clickhouse`` and ``search`` by default, started by ``tests.support.pipeline.Pipeline``) over a
fresh database cloned from a demo template, with a private JetStream namespace, ClickHouse database and
OpenSearch index prefix (all removed at the end), and Redis dedup in front of each sink when
``QUIVER_REDIS_URL`` is set. A paced load generator commits small transactions (each one multi-row
INSERT, UPDATE or DELETE of K rows, so events/s = K x statements/s) from several connections for a
fixed time per rate, while every sink is polled every ~150 ms for newly visible events: an event's
commit→visible lag, per sink, is the poll that first saw it minus its ``occurred_at`` (set by the
capture trigger in the committing transaction). OpenSearch is polled with a plain ``_search`` and never
refreshed by the benchmark, so its lag includes the wait for the index's next refresh (the template
sets ``refresh_interval`` to 1 s; the run reports the value in force). The outbox
backlog, each consumer's JetStream pending count and each process's CPU are sampled too. A rate is
sustained when every sink kept up. Then, on the same events, each sink's ceiling: ClickHouse's own
insert rate for one pre-encoded Native request, OpenSearch's own ``_bulk`` rate for the exact NDJSON
bodies the search sink sends (and the sink's ``write()`` itself, its encoding included), chDB's
``INSERT ... SELECT * FROM Python(table)``, and each pipeline stage's single-thread cost. Last, the
conservation oracle of every sink over every event the run produced.

Run (services up: ``scripts/services start``)::

    eval "$(scripts/services env)" && python benchmarks/events.py [--rates 2000,5000,10000] [--duration 20] \\
        [--sinks clickhouse,search]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import orjson
import psutil
import psycopg
import pyarrow as pa
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
for _folder in (ROOT, ROOT / "benchmarks"):  # ``tests`` is a package at the root; ``benchmarks`` is not a package
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import report  # noqa: E402
from tests.support.oracle import SOURCE_SQL, compare  # noqa: E402
from tests.support.pipeline import Pipeline, clickhouse_url, opensearch_url  # noqa: E402

from quiver.arrow.events import encode_event, events_to_batch  # noqa: E402
from quiver.demo import generate  # noqa: E402
from quiver.events import bus  # noqa: E402
from quiver.events.capture import OUTBOX  # noqa: E402
from quiver.events.consumer import ConsumerSettings  # noqa: E402
from quiver.events.relay import RelayConfig  # noqa: E402
from quiver.events.sinks.clickhouse import COLUMNS, ClickHouseSink, native_body, table_ddl  # noqa: E402
from quiver.events.sinks.search import SearchSink, monthly_index  # noqa: E402

SECTION_TITLE = "## Events: commit to visible in ClickHouse and OpenSearch"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:15433/postgres"
DEFAULT_RATES = (2_000, 5_000, 10_000, 15_000, 20_000, 30_000)
TEMPLATE_DB = "quiver_bench_events_template"
TEMPLATE_ORDERS = 20_000  # updates rotate over the orders, a disjoint id range per connection
STATEMENTS_PER_SECOND = 100  # all connections together; K = rate / this
POLL_INTERVAL = 0.15
PROBE_EVENTS = 200_000
CONSUMER_BATCH = 20_000  # the consumer's largest write: 40 messages of up to 500 events
# "Sustained": the pipeline keeps up with what was committed.
SUSTAINED_P99 = 3.0  # seconds, commit → visible
SUSTAINED_DRAIN = 3.0  # seconds from the end of the load until everything committed is visible
SUSTAINED_TREND = 0.05  # lag growth over the window's second half, seconds per second (delivered ≥ ~95% of committed)
TARGET_RATE = 10_000
TARGET_P99_RATE = 5_000
TARGET_P99 = 2.0
OPS = ("insert", "update", "delete")
SINKS = ("clickhouse", "search")  # the sinks this benchmark can drive, all by default
SINK_NAMES = {"clickhouse": "ClickHouse", "search": "OpenSearch"}
SEARCH_PAGE = 10_000  # hits per visibility poll page (OpenSearch's default index.max_result_window)

INSERT_SQL = (
    "INSERT INTO customers (email, name, phone, profile) "
    "SELECT %s || g || '@bench.example', 'Bench ' || g, CASE WHEN g %% 2 = 0 THEN NULL ELSE '+1-555-' || g END, "
    "jsonb_build_object('worker', %s::int, 'tick', %s::int) FROM generate_series(1, %s) AS g RETURNING id"
)
UPDATE_SQL = "UPDATE orders SET total = total + 0.01, note = %s WHERE id BETWEEN %s AND %s"
DELETE_SQL = "DELETE FROM customers WHERE id = ANY(%s)"
# The relay's read of the outbox (relay._FETCH without the "unpublished" filter): the rows the consumer gets.
EVENTS_SQL = f"""
SELECT seq, event_id::text, entity, entity_id, op,
       CAST(floor(extract(epoch FROM occurred_at) * 1000000) AS bigint), data::text, changed, actor, tenant_id
FROM (SELECT * FROM {OUTBOX} ORDER BY seq DESC LIMIT %s) AS newest ORDER BY seq
"""
T = TypeVar("T")
EVENT_KEYS = ("seq", "event_id", "entity", "entity_id", "op", "occurred_at", "data", "changed", "actor", "tenant_id")


# --- databases -----------------------------------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``admin_url``."""
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def ensure_template(admin_url: str, name: str = TEMPLATE_DB, orders: int = TEMPLATE_ORDERS) -> str:
    """A demo database (``orders`` orders) nobody connects to, cloned per run; reused when already right."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    wanted = f"quiver demo orders={orders} seed=42 events-bench=1"
    with psycopg.connect(database_url(admin_url, name)) as conn:
        marker = conn.execute("SELECT obj_description(to_regclass('public.orders'), 'pg_class')").fetchone()
        if marker is None or marker[0] != wanted:
            generate.install_schema(conn)
            generate.load(conn, orders)
            conn.execute(sql.SQL("COMMENT ON TABLE orders IS {}").format(sql.Literal(wanted)))
            conn.commit()
    return name


def create_database(admin_url: str, name: str, template: str) -> str:
    """A fresh copy of ``template``; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- the pipeline's processes --------------------------------------------------------------------


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


# --- load generator ------------------------------------------------------------------------------


@dataclass
class LoadPlan:
    """``rows`` rows per statement, ``statements_per_second`` over ``workers`` connections."""

    rate: int
    rows: int
    statements_per_second: float
    workers: int

    @property
    def nominal_rate(self) -> float:
        return self.rows * self.statements_per_second


def plan_load(rate: int, statements_per_second: float = STATEMENTS_PER_SECOND, workers: int | None = None,
              orders: int = TEMPLATE_ORDERS) -> LoadPlan:
    """K = rate / statements per second; one connection per 2,000 events/s (2 to 12) unless given."""
    rows = max(1, round(rate / statements_per_second))
    count = workers or min(12, max(2, math.ceil(rate / 2_000)))
    if rows > orders // count:
        raise ValueError(f"{rows} rows per statement exceed the {orders // count} orders each connection updates")
    return LoadPlan(rate, rows, rate / rows, count)


class LoadGenerator:
    """Paced open-loop load: each connection runs its statements on a fixed schedule, catching up if late."""

    def __init__(self, url: str, plan: LoadPlan, orders: int = TEMPLATE_ORDERS) -> None:
        self.url = url
        self.plan = plan
        self.orders = orders
        self.committed = [0] * plan.workers  # events committed, per connection
        self.latencies: dict[str, list[float]] = {op: [] for op in OPS}
        self.errors: list[str] = []
        self.start_at = 0.0
        self.stop_at = 0.0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._finished = 0
        self._release = threading.Event()  # connections stay open (their CPU countable) until join()

    @property
    def events(self) -> int:
        return sum(self.committed)

    @property
    def statements(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def start(self, start_at: float, duration: float) -> None:
        self.start_at, self.stop_at = start_at, start_at + duration
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"load-{i}", daemon=True)
                         for i in range(self.plan.workers)]
        for thread in self._threads:
            thread.start()

    def running(self) -> bool:
        with self._lock:
            return self._finished < len(self._threads) and any(t.is_alive() for t in self._threads)

    def join(self) -> None:
        self._release.set()
        for thread in self._threads:
            thread.join()
        if self.errors:
            raise RuntimeError(f"load generator failed: {self.errors[0]}")

    def _work(self, index: int) -> None:
        try:
            self._statements(index)
        except Exception as error:  # noqa: BLE001 - reported by join()
            self.errors.append(f"{type(error).__name__}: {error}")
            with self._lock:
                self._finished += 1

    def _statements(self, index: int) -> None:
        plan = self.plan
        interval = plan.workers / plan.statements_per_second
        offset = index * interval / plan.workers
        span = self.orders // plan.workers
        low = index * span + 1
        cursor = 0
        pending: deque[list[int]] = deque()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SELECT set_config('quiver.actor', %s, false), set_config('quiver.tenant_id', %s, false)",
                         (f"bench-{index}", f"tenant-{index % 3}"))
            tick = 0
            while True:
                due = self.start_at + offset + tick * interval
                now = time.time()
                if due >= self.stop_at or now >= self.stop_at:
                    break
                if due > now:
                    time.sleep(due - now)
                op = OPS[(tick + index) % 3]
                if op == "delete" and not pending:
                    op = "insert"
                started = time.perf_counter()
                if op == "insert":
                    rows = conn.execute(INSERT_SQL, (f"b{index}-{tick}-", index, tick, plan.rows)).fetchall()
                    pending.append([r[0] for r in rows])
                elif op == "update":
                    first = low + cursor
                    conn.execute(UPDATE_SQL, (f"bench {index}/{tick}", first, first + plan.rows - 1))
                    cursor = (cursor + plan.rows) % (span - plan.rows + 1)
                else:
                    conn.execute(DELETE_SQL, (pending.popleft(),))
                elapsed = time.perf_counter() - started
                with self._lock:
                    self.committed[index] += plan.rows
                    self.latencies[op].append(elapsed)
                tick += 1
            with self._lock:
                self._finished += 1
            self._release.wait(60)


# --- what is visible in each sink ----------------------------------------------------------------

Page = tuple[float, np.ndarray[Any, Any], np.ndarray[Any, Any]]  # (request sent at, seq, occurred_at µs)


class Visibility:
    """One sink's events past the contiguous watermark, each one's first sighting; subclasses ``fetch``.

    The watermark (every ``seq`` up to it seen) keeps each poll to what is new, whatever the sink.
    """

    sink = ""

    def __init__(self) -> None:
        self.seen = np.zeros(1 << 20, dtype=bool)
        self.seen[0] = True  # seq starts at 1
        self.watermark = 0  # every seq up to here has been seen
        self.max_seen = 0
        self.total = 0  # distinct events seen
        self.lags: list[np.ndarray[Any, Any]] = []  # seconds, events first seen since begin()
        self.occurred: list[np.ndarray[Any, Any]] = []  # their occurred_at, seconds since the epoch
        self.sightings: list[tuple[float, int]] = []  # (poll time, events first seen), since begin()
        self.poll_seconds: list[float] = []

    def fetch(self, after: int) -> Iterable[Page]:
        """The sink's events with ``seq > after``, one page per request; nothing if the sink has no table yet."""
        raise NotImplementedError

    def begin(self) -> None:
        self.lags, self.occurred, self.sightings, self.poll_seconds = [], [], [], []

    @property
    def since_begin(self) -> int:
        return sum(n for _, n in self.sightings)

    def poll(self) -> int:
        """One poll (all its pages); returns the number of events seen for the first time."""
        started = time.time()
        fresh, answered = 0, False
        for sent, seqs, micros in self.fetch(self.watermark):
            answered = True
            fresh += self._record(sent, seqs, micros)
        if answered:
            self.poll_seconds.append(time.time() - started)
        return fresh

    def _grow(self, seq: int) -> None:
        if seq + 2 > len(self.seen):
            grown = np.zeros(max(2 * len(self.seen), seq + 2), dtype=bool)
            grown[:len(self.seen)] = self.seen
            self.seen = grown

    def _record(self, sent: float, seqs: np.ndarray[Any, Any], micros: np.ndarray[Any, Any]) -> int:
        if len(seqs) == 0:
            self.sightings.append((sent, 0))
            return 0
        unique, first = np.unique(seqs, return_index=True)  # a repeated delivery is one event
        self._grow(int(unique[-1]))
        fresh = ~self.seen[unique]
        new_seqs = unique[fresh]
        self.seen[new_seqs] = True
        occurred = micros[first[fresh]] / 1e6
        self.occurred.append(occurred)
        self.lags.append(sent - occurred)
        self.sightings.append((sent, len(new_seqs)))
        self.total += len(new_seqs)
        self.max_seen = max(self.max_seen, int(unique[-1]))
        tail = self.seen[self.watermark + 1:self.max_seen + 2]  # ends with a seq not seen yet
        self.watermark += int(np.argmin(tail))  # the first seq not yet seen, minus one
        return len(new_seqs)

    def skip_to(self, seq: int) -> None:
        """Everything up to ``seq`` is accounted for (a drained step): stop asking for it."""
        self.watermark = max(self.watermark, seq)
        self.max_seen = max(self.max_seen, seq)
        self._grow(seq)
        self.seen[:seq + 1] = True

    def close(self) -> None:
        """Release the HTTP client (subclasses)."""


class ClickHouseVisibility(Visibility):
    """``{database}.events`` on the ClickHouse server: ``seq`` and ``occurred_at_us`` as RowBinary, one request."""

    sink = "clickhouse"

    def __init__(self, url: str, database: str) -> None:
        super().__init__()
        self.database = database
        self.client = httpx.Client(base_url=url, timeout=60)

    def fetch(self, after: int) -> Iterator[Page]:
        sent = time.time()
        query = f"SELECT seq, occurred_at_us FROM {self.database}.events WHERE seq > {after} FORMAT RowBinary"
        response = self.client.post("/", params={"query": query})
        if response.status_code != 200:
            if b"Code: 60" in response.content or b"Code: 81" in response.content:
                return  # the consumer has not created its database or table yet
            raise RuntimeError(f"ClickHouse poll failed: {response.text[:500]}")
        rows = np.frombuffer(response.content, dtype=[("seq", "<i8"), ("us", "<i8")])
        yield sent, rows["seq"], rows["us"]

    def close(self) -> None:
        self.client.close()


class SearchVisibility(Visibility):
    """The search sink's alias ``<prefix>``: what a reader's ``_search`` sees now, never forcing a refresh.

    Doc values only (no ``_source``), sorted by ``seq``, paged with ``search_after``. A document is
    searchable after the index's next refresh, so this lag includes that wait, as a reader's would.
    """

    sink = "search"

    def __init__(self, url: str, prefix: str, page_size: int = SEARCH_PAGE) -> None:
        super().__init__()
        self.prefix = prefix
        self.page_size = page_size
        self.client = httpx.Client(base_url=url, timeout=60)

    def fetch(self, after: int) -> Iterator[Page]:
        search_after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": self.page_size, "query": {"range": {"seq": {"gt": after}}}, "_source": False,
                "docvalue_fields": ["seq", "occurred_at_us"], "sort": [{"seq": "asc"}], "track_total_hits": False}
            if search_after is not None:
                body["search_after"] = search_after
            sent = time.time()
            response = self.client.post(f"/{self.prefix}/_search", content=orjson.dumps(body),
                                        headers={"Content-Type": "application/json"},
                                        params={"filter_path": "_shards.failed,hits.hits.fields,hits.hits.sort"})
            if response.status_code == 404 or (response.status_code == 503 and search_after is None):
                # No index yet, or its shard not started yet (the sink creates indices without waiting for
                # it): nothing is visible to a reader at this moment.
                return
            if response.status_code != 200:
                raise RuntimeError(f"OpenSearch poll failed: {response.status_code} {response.text[:500]}")
            answer = orjson.loads(response.content)
            if answer["_shards"].get("failed"):
                raise RuntimeError(f"OpenSearch poll failed on some shards: {response.text[:500]}")
            hits = answer.get("hits", {}).get("hits", [])
            seqs = np.fromiter((h["fields"]["seq"][0] for h in hits), dtype=np.int64, count=len(hits))
            micros = np.fromiter((h["fields"]["occurred_at_us"][0] for h in hits), dtype=np.int64, count=len(hits))
            yield sent, seqs, micros
            if len(hits) < self.page_size:
                return
            search_after = hits[-1]["sort"]

    def close(self) -> None:
        self.client.close()


def visibility_for(pipeline: BenchPipeline, sink: str) -> Visibility:
    """The poller of ``sink`` as the pipeline configured it."""
    if sink == "clickhouse":
        return ClickHouseVisibility(pipeline.clickhouse, pipeline.namespace)
    if sink == "search":
        assert pipeline.opensearch is not None
        return SearchVisibility(pipeline.opensearch, pipeline.search_prefix)
    raise ValueError(f"no visibility poller for sink {sink!r}")


# --- samples of backlog and CPU ------------------------------------------------------------------


def pid_listening(port: int) -> int | None:
    """The process listening on TCP ``port`` (our service among several on this machine)."""
    with suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    return None


@dataclass
class CpuSnapshot:
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


# --- one rate ------------------------------------------------------------------------------------


@dataclass
class SinkStep:
    """One sink at one rate: what became visible, how late, and whether it kept up."""

    sink: str
    window: float = 0.0  # the load window, seconds (as in StepResult)
    visible: int = 0
    delivered_in_window: int = 0
    lag_p50: float = math.nan
    lag_p99: float = math.nan
    lag_max: float = math.nan
    drain_seconds: float = math.nan
    drained: bool = False
    backlog_end: int = 0  # committed − visible at the end of the window
    backlog_growth: float = 0.0  # events/s, slope of committed − visible over the second half of the window
    lag_trend: float = 0.0  # seconds of lag per second: slope of lag against commit time, second half
    jetstream_pending_max: int = 0  # messages its consumer had not acknowledged
    jetstream_pending_end: int = 0
    poll_ms: float = 0.0

    @property
    def delivered_rate(self) -> float:
        return self.delivered_in_window / self.window if self.window else 0.0

    @property
    def catch_up_rate(self) -> float:
        """Events/s delivered after the load stopped (the backlog at the end over the drain time)."""
        return self.backlog_end / self.drain_seconds if self.drain_seconds > 0.5 and self.drained else math.nan

    @property
    def kept_up(self) -> bool:
        """This sink got what was committed: bounded backlog, p99 and catch-up time small."""
        return (self.drained and self.lag_p99 <= SUSTAINED_P99 and self.drain_seconds <= SUSTAINED_DRAIN
                and self.lag_trend <= SUSTAINED_TREND)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "delivered_rate": self.delivered_rate, "catch_up_rate": self.catch_up_rate,
                "kept_up": self.kept_up}


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


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    if np.ptp(xs) == 0:
        return 0.0
    return float(np.polyfit(xs - xs[0], ys, 1)[0])


def summarise_sink(visibility: Visibility, committed: int, start_at: float, stop_at: float,
                   backlog: list[tuple[float, float]], pending: list[int], pending_end: int) -> SinkStep:
    """One sink's lag, delivery and drain over a step, from its poller's sightings."""
    window = stop_at - start_at
    result = SinkStep(visibility.sink, window, jetstream_pending_end=pending_end,
                      jetstream_pending_max=max([*pending, pending_end]))
    result.drained = visibility.since_begin >= committed
    last_seen = max((t for t, n in visibility.sightings if n), default=stop_at)
    result.drain_seconds = max(0.0, last_seen - stop_at)
    result.visible = visibility.since_begin
    result.delivered_in_window = sum(n for t, n in visibility.sightings if start_at <= t <= stop_at)
    result.backlog_end = committed - sum(n for t, n in visibility.sightings if t <= stop_at)
    lags = np.concatenate(visibility.lags) if visibility.lags else np.zeros(0)
    occurred = np.concatenate(visibility.occurred) if visibility.occurred else np.zeros(0)
    half = start_at + window / 2
    if len(lags):
        result.lag_p50, result.lag_p99 = (float(x) for x in np.quantile(lags, [0.5, 0.99]))
        result.lag_max = float(lags.max())
        late = occurred >= half
        if late.sum() > 2 and np.ptp(occurred[late]) > 0:
            result.lag_trend = float(np.polyfit(occurred[late] - half, lags[late], 1)[0])
    result.backlog_growth = _slope([p for p in backlog if p[0] >= half])
    result.poll_ms = statistics.median(visibility.poll_seconds) * 1000 if visibility.poll_seconds else 0.0
    return result


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


# --- each sink's ceiling: its requests pre-encoded, and the stages on one thread ---------------


@dataclass
class Throughput:
    """A timed operation over ``events`` events (median over rounds)."""

    name: str
    events: int
    seconds: list[float]
    megabytes: float = 0.0
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def events_per_second(self) -> float:
        return self.events / self.median if self.median else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "median": self.median, "events_per_second": self.events_per_second}


def newest_events(url: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` outbox events, as the consumer decodes them from JetStream."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(EVENTS_SQL, (limit,)).fetchall()
    return [dict(zip(EVENT_KEYS, row, strict=True)) for row in rows]


def _time(work: Callable[[], object], rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return seconds


def stage_costs(events: list[dict[str, Any]], rounds: int = 3, sinks: Iterable[str] = SINKS) -> list[Throughput]:
    """Each CPU stage between the outbox row and each sink's request, on one thread."""
    n = len(events)
    messages = [b"[" + b",".join(encode_event(e) for e in events[i:i + 500]) + b"]" for i in range(0, n, 500)]
    decoded = [e for m in messages for e in orjson.loads(m)]
    batch = events_to_batch(decoded)

    def decode() -> None:
        delivered: dict[str, dict[str, Any]] = {}
        for message in messages:
            for event in orjson.loads(message):
                delivered.setdefault(event["event_id"], event)

    out = [
        Throughput("relay: event → JSON message (orjson)", n, _time(
            lambda: [b"[" + b",".join(encode_event(e) for e in events[i:i + 500]) + b"]" for i in range(0, n, 500)],
            rounds)),
        Throughput("consumer: JSON messages → deduplicated dicts", n, _time(decode, rounds)),
        Throughput("consumer: dicts → Arrow batch (events_to_batch)", n, _time(lambda: events_to_batch(decoded),
                                                                                 rounds)),
    ]
    if "clickhouse" in sinks:
        out.append(Throughput("ClickHouse sink: Arrow → Native body (native_body)", n,
                              _time(lambda: native_body(batch), rounds)))
    if "search" in sinks:
        encoder = SearchSink("http://127.0.0.1:9", "bench-encode")  # encoding only: no request is sent
        out.append(Throughput("search sink: Arrow → NDJSON bulk bodies (bulk_bodies)", n,
                              _time(lambda: encoder.bulk_bodies(batch), rounds)))
    return out


def redis_dedup_cost(url: str, events: list[dict[str, Any]], rounds: int = 3) -> Throughput:
    """The consumer's Redis dedup per batch (``seen`` then ``mark``, as the consumer calls them), in 20k batches."""
    from quiver.events.dedup import RedisDedup

    pairs = [(str(e["event_id"]), int(e["seq"])) for e in events]
    sink = f"bench-probe-{os.getpid()}-{time.time_ns() % 10**9}"  # keys of its own, removed afterwards

    async def timed() -> list[float]:
        seconds = []
        for round_index in range(rounds):
            dedup = RedisDedup(url, f"{sink}-{round_index}", ttl_seconds=600)
            try:
                started = time.perf_counter()
                for i in range(0, len(pairs), CONSUMER_BATCH):
                    chunk = pairs[i:i + CONSUMER_BATCH]
                    await dedup.seen(chunk)
                    await dedup.mark(chunk)
                seconds.append(time.perf_counter() - started)
                if dedup.down_since is not None:
                    raise RuntimeError(f"Redis at {url} did not answer")
            finally:
                async for key in dedup.redis.scan_iter(match=f"quiver:dedup:{sink}-{round_index}:*", count=1000):
                    await dedup.redis.delete(key)
                await dedup.close()
        return seconds

    return Throughput("consumer: Redis dedup (`seen` + `mark` per batch)", len(pairs), asyncio.run(timed()),
                      note=f"{CONSUMER_BATCH // 1000}k events per batch")


def forget_dedup_entries(url: str, database_url: str, sink: str = "clickhouse") -> int:
    """Remove this run's event ids from the consumer's Redis dedup sets (shared per sink; they would expire)."""
    from redis import Redis

    with psycopg.connect(database_url) as conn:
        ids = [r[0] for r in conn.execute(f"SELECT event_id::text FROM {OUTBOX}").fetchall()]
    client = Redis.from_url(url, socket_timeout=30)
    removed = 0
    try:
        for key in client.scan_iter(match=f"quiver:dedup:{sink}:*", count=10_000, _type="set"):
            for i in range(0, len(ids), 10_000):
                removed += int(client.srem(key, *ids[i:i + 10_000]))
    finally:
        client.close()
    return removed


def clickhouse_insert(url: str, database: str, events: list[dict[str, Any]], rounds: int = 3) -> list[Throughput]:
    """POST the events, encoded once, into a fresh table (same DDL) per round: one request, then 20k-event requests."""
    batch = events_to_batch(events)
    sink = ClickHouseSink(url, database)

    async def setup() -> None:
        try:
            await sink.setup()
        finally:
            await sink.close()

    asyncio.run(setup())
    info = sink.info
    assert info is not None
    body = native_body(batch, datetime64=info.datetime64)
    chunks = [native_body(batch.slice(i, CONSUMER_BATCH), datetime64=info.datetime64)
              for i in range(0, batch.num_rows, CONSUMER_BATCH)]
    insert = f"INSERT INTO {database}.events ({', '.join(COLUMNS)}) FORMAT Native"
    out = []
    with httpx.Client(base_url=url, timeout=600) as client:

        def run_sql(statement: str) -> str:
            response = client.post("/", content=statement.encode())
            if response.status_code != 200:
                raise RuntimeError(f"ClickHouse: {response.text[:500]}")
            return response.text

        def fresh_table() -> None:
            run_sql(f"DROP TABLE IF EXISTS {database}.events")
            run_sql(table_ddl(database, info))

        try:
            for label, bodies in ((f"ClickHouse {info.version}: one Native request", [body]),
                                  (f"ClickHouse {info.version}: {CONSUMER_BATCH // 1000}k-event Native requests",
                                   chunks)):
                seconds = []
                for _ in range(rounds):
                    fresh_table()
                    started = time.perf_counter()
                    for part in bodies:
                        response = client.post("/", params={"query": insert}, content=part)
                        if response.status_code != 200:
                            raise RuntimeError(f"ClickHouse insert: {response.text[:500]}")
                    seconds.append(time.perf_counter() - started)
                    stored = int(run_sql(f"SELECT count() FROM {database}.events FORMAT TSV").strip())
                    if stored != len(events):
                        raise AssertionError(f"{label}: {stored} rows stored, {len(events)} sent")
                out.append(Throughput(label, len(events), seconds, sum(map(len, bodies)) / 1e6,
                                      f"{len(bodies)} request(s)"))
        finally:
            run_sql(f"DROP DATABASE IF EXISTS {database}")
    return out


def search_bulk(url: str, prefix: str, events: list[dict[str, Any]], rounds: int = 3,
                write_rounds: int = 1) -> list[Throughput]:
    """OpenSearch's own ``_bulk`` rate for the search sink's exact requests, then the sink's ``write()`` itself.

    The events go in consumer-sized batches; each batch's NDJSON bodies come from the sink's own
    ``bulk_bodies`` (cut at its ``max_bulk_bytes``), encoded once, and only the POSTs are timed, into
    freshly created indices of the sink's template each round. ``write()`` adds the sink's encoding and
    its reading of every item's result; it takes as long as the requests, hence fewer rounds by default.
    Everything under ``prefix`` is deleted afterwards.
    """
    sink = SearchSink(url, prefix)
    batches = [events_to_batch(events[i:i + CONSUMER_BATCH]) for i in range(0, len(events), CONSUMER_BATCH)]
    bodies: list[bytes] = []
    for batch in batches:
        encoded, refused = sink.bulk_bodies(batch)
        if refused:
            raise AssertionError(f"the search sink refuses {len(refused)} probe events: {list(refused.items())[:3]}")
        bodies += encoded
    indices = sorted({monthly_index(prefix, int(e["occurred_at"])) for e in events})
    out = []
    with httpx.Client(base_url=url, timeout=600) as client:

        def call(method: str, path: str, **kwargs: Any) -> Any:
            response = client.request(method, path, **kwargs)
            if response.status_code >= 300:
                raise RuntimeError(f"OpenSearch {method} {path}: {response.status_code} {response.text[:500]}")
            return orjson.loads(response.content)

        def fresh_indices() -> None:
            """Empty indices from the sink's template (``PUT`` waits for the primary shard)."""
            for index in indices:
                if client.delete(f"/{index}").status_code not in (200, 404):
                    raise RuntimeError(f"OpenSearch: cannot delete {index}")
                call("PUT", f"/{index}")

        def check_stored(label: str) -> None:
            call("POST", f"/{prefix}/_refresh")
            stored = int(call("GET", f"/{prefix}/_count")["count"])
            if stored != len(events):
                raise AssertionError(f"{label}: {stored} documents stored, {len(events)} sent")

        async def sink_writes() -> float:
            writer = SearchSink(url, prefix)
            try:
                await writer.setup()
                started = time.perf_counter()
                for batch in batches:
                    await writer.write(batch)
                return time.perf_counter() - started
            finally:
                await writer.close()

        try:
            asyncio.run(_setup_search(sink))  # installs the template the indices are created from
            server = call("GET", "/")["version"]
            version = f"{'OpenSearch' if server.get('distribution') == 'opensearch' else 'Elasticsearch'} " \
                      f"{server['number']}"
            label = f"{version}: the search sink's `_bulk` requests"
            seconds = []
            for _ in range(rounds):
                fresh_indices()
                started = time.perf_counter()
                for body in bodies:
                    answer = call("POST", "/_bulk", params=sink.bulk_params(), content=body,
                                  headers={"Content-Type": "application/x-ndjson"})
                    if answer.get("errors"):
                        raise RuntimeError(f"{label}: some items failed: {str(answer)[:500]}")
                seconds.append(time.perf_counter() - started)
                check_stored(label)
            out.append(Throughput(label, len(events), seconds, sum(map(len, bodies)) / 1e6,
                                  f"{len(bodies)} request(s) ≤ {sink.max_bulk_bytes / 2**20:g} MiB from "
                                  f"{len(batches)} batch(es) of ≤ {CONSUMER_BATCH // 1000}k events"))
            label = f"{version}: the search sink's `write()`"
            seconds = []
            for _ in range(write_rounds):
                fresh_indices()
                seconds.append(asyncio.run(sink_writes()))
                check_stored(label)
            out.append(Throughput(label, len(events), seconds, sum(map(len, bodies)) / 1e6,
                                  f"{len(batches)} write(s), encoding and result checks included; "
                                  f"{write_rounds} round(s)"))
        finally:
            with suppress(httpx.HTTPError):
                client.delete(f"/{prefix}-*")
                client.delete(f"/_index_template/{prefix}")
    return out


async def _setup_search(sink: SearchSink) -> None:
    try:
        await sink.setup()
    finally:
        await sink.close()


def chdb_insert(events: list[dict[str, Any]], workdir: Path, rounds: int = 3) -> Throughput:
    """``INSERT INTO quiver.events SELECT * FROM Python(table)`` in a child process (chDB: one path per process)."""
    batch = events_to_batch(events)
    arrow_path = workdir / "probe.arrow"
    with pa.OSFile(str(arrow_path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--chdb-probe", str(arrow_path),
                             "--chdb-path", str(workdir / "chdb-probe"), "--rounds", str(rounds)],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    if result.returncode:
        raise RuntimeError(f"chDB probe failed: {result.stderr[-2000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return Throughput(f"chDB {answer['version']}: INSERT ... SELECT * FROM Python(table)", len(events),
                      answer["seconds"], batch.nbytes / 1e6, "Arrow in memory")


def _chdb_probe(arrow_path: Path, path: Path, rounds: int) -> None:
    """The child side of ``chdb_insert``: prints {"version", "seconds"} as JSON."""
    from quiver.events.sinks.chdb import ChdbSink

    with pa.memory_map(str(arrow_path)) as source:
        batch = pa.ipc.open_file(source).get_batch(0)
    sink = ChdbSink(path)
    seconds = []
    for _ in range(rounds):
        sink.query_arrow("DROP TABLE IF EXISTS quiver.events")
        asyncio.run(sink.setup())
        started = time.perf_counter()
        asyncio.run(sink.write(batch))
        seconds.append(time.perf_counter() - started)
        stored = sink.query_arrow("SELECT count() AS n FROM quiver.events").column("n")[0].as_py()
        if stored != batch.num_rows:
            raise AssertionError(f"chDB stored {stored} of {batch.num_rows}")
    version = sink.query_arrow("SELECT version() AS v").column("v")[0].as_py()
    print(json.dumps({"version": version, "seconds": seconds}))


# --- conservation ---------------------------------------------------------------------------------


@dataclass
class OracleResult:
    events: int
    visible: dict[str, int]  # per sink, events its documented read returns
    problems: list[str]
    seconds: float

    @property
    def clean(self) -> bool:
        return not self.problems


def conservation(pipeline: BenchPipeline, chunk: int = 250_000) -> OracleResult:
    """``oracle.compare`` of the outbox and every sink's documented read, as ``Pipeline.check`` does.

    One ``seq`` range of the outbox at a time (a long run's events need not fit in memory twice),
    compared with ClickHouse's FINAL view of that range and with the slice of the search sink's
    ``visible_events()`` (read once: it has no range query), so each source range is read once.
    """
    started = time.monotonic()
    search = pipeline.search_rows() if "search" in pipeline.sinks else None  # refreshed first, sorted by seq
    search_seqs = [int(r[1]) for r in search or ()]
    clickhouse = ClickHouseSink(pipeline.clickhouse, pipeline.namespace) if "clickhouse" in pipeline.sinks else None
    source_sql = f"SELECT * FROM ({SOURCE_SQL}) AS s WHERE seq BETWEEN %s AND %s ORDER BY seq"
    problems: list[str] = []
    visible: dict[str, int] = {}

    async def clickhouse_rows(sink: ClickHouseSink, low: int, high: int) -> list[tuple[Any, ...]]:
        text = await sink.query(f"{sink.visible_events_sql()} WHERE seq BETWEEN {low} AND {high} FORMAT JSONCompact")
        return [(e, int(s), en, ei, op, int(us), d, ch, a, t) for e, s, en, ei, op, us, d, ch, a, t
                in orjson.loads(text)["data"]]

    async def clickhouse_count(sink: ClickHouseSink, where: str) -> int:
        text = await sink.query(f"SELECT count() FROM {pipeline.namespace}.events FINAL {where} FORMAT TSV")
        return int(text.strip())

    async def check() -> int:
        try:
            with psycopg.connect(pipeline.database_url) as conn:
                row = conn.execute(f"SELECT coalesce(min(seq), 1), coalesce(max(seq), 0), count(*) FROM {OUTBOX}"
                                   ).fetchone()
                assert row is not None
                low, high, total = (int(x) for x in row)
                for first in range(low, high + 1, chunk):
                    last = min(high, first + chunk - 1)
                    source = [tuple(r) for r in conn.execute(source_sql, (first, last)).fetchall()]
                    found = []
                    if clickhouse is not None:
                        found += compare(source, await clickhouse_rows(clickhouse, first, last), "clickhouse")
                    if search is not None:
                        part = search[bisect.bisect_left(search_seqs, first):bisect.bisect_right(search_seqs, last)]
                        found += compare(source, part, "search")
                    problems.extend(f"seq {first}..{last}: {p}" for p in found)
            outside: dict[str, int] = {}
            if clickhouse is not None:
                outside["clickhouse"] = await clickhouse_count(clickhouse, f"WHERE seq < {low} OR seq > {high}")
                visible["clickhouse"] = await clickhouse_count(clickhouse, "")
            if search is not None:
                outside["search"] = (bisect.bisect_left(search_seqs, low)
                                     + len(search_seqs) - bisect.bisect_right(search_seqs, high))
                visible["search"] = len(search)
            problems.extend(f"{sink}: {n} events outside the outbox's seq range {low}..{high}"
                            for sink, n in outside.items() if n)
            return total
        finally:
            if clickhouse is not None:
                await clickhouse.close()

    total = asyncio.run(check())
    return OracleResult(total, {sink: visible[sink] for sink in pipeline.sinks if sink in visible}, problems,
                        time.monotonic() - started)


# --- the whole run --------------------------------------------------------------------------------


@dataclass
class BenchResult:
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
        progress: bool = False) -> BenchResult:
    """Every rate in turn, the oracle of every sink, then (``probes``) the sinks' ceilings and the stage costs.

    Everything it created is removed, the Redis dedup entries of its events included.
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
                step = run_step(pipeline, visibilities, monitor, plan, duration, poll_interval)
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
                                       lambda s=sink: forget_dedup_entries(redis_url, pipeline.database_url, s),
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
        f"{SINK_NAMES.get(s.sink, s.sink)}: delivered {s.delivered_rate:,.0f}/s, lag p50 {s.lag_p50:.2f}s "
        f"p99 {s.lag_p99:.2f}s max {s.lag_max:.2f}s, trend {s.lag_trend:+.3f}, drain {s.drain_seconds:.1f}s "
        f"(catch-up {s.catch_up_rate:,.0f}/s), {'kept up' if s.kept_up else 'fell behind'}"
        for s in step.sinks.values())
    return (f"{step.target:>6,}/s: committed {step.commit_rate:,.0f}/s (relay p50 {step.relay_p50:.2f}s "
            f"p99 {step.relay_p99:.2f}s, {step.events_per_message:.0f} ev/msg); {per_sink}; "
            f"{'sustained' if step.kept_up else 'not sustained'}; "
            f"cpu pressure {step.cpu_pressure if step.cpu_pressure is not None else math.nan:.0%}, cpu "
            + ", ".join(f"{k} {v:.2f}" for k, v in step.cpu_cores.items()))


# --- report ---------------------------------------------------------------------------------------


def describe_machine(database_url: str, nats_monitor: str | None, clickhouse: str | None, opensearch: str | None,
                     note: str = "") -> str:
    """CPUs, memory, OS and the services' versions and durability settings (detected)."""
    memory = psutil.virtual_memory().total / 2**30
    os_name = platform.platform()
    release = Path("/etc/os-release")
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    settings = {}
    with psycopg.connect(database_url) as conn:
        for name in ("server_version", "fsync", "synchronous_commit"):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            settings[name] = str(row[0]) if row else "?"
    parts = [f"{os.cpu_count()} vCPUs (shared)", f"{memory:.0f} GB RAM", os_name,
             f"PostgreSQL {settings['server_version'].split()[0]} (fsync={settings['fsync']}, "
             f"synchronous_commit={settings['synchronous_commit']})"]
    if nats_monitor:
        with suppress(httpx.HTTPError, KeyError, ValueError):
            varz = httpx.get(f"{nats_monitor}/varz", timeout=5).json()
            config = varz.get("jetstream", {}).get("config", {})
            parts.append(f"NATS {varz['version']} (JetStream file storage, "
                         f"{'sync_interval always' if config.get('sync_always') else 'periodic fsync'})")
    if clickhouse:
        with suppress(httpx.HTTPError):
            version = httpx.post(clickhouse, content=b"SELECT version()", timeout=5).text.strip()
            parts.append(f"ClickHouse {version} (HTTP, Native format)")
    if opensearch:
        with suppress(httpx.HTTPError, KeyError, ValueError, StopIteration):
            server = httpx.get(opensearch, timeout=5).json()["version"]
            nodes = httpx.get(f"{opensearch}/_nodes/jvm", timeout=5).json()["nodes"]
            heap = sum(n["jvm"]["mem"]["heap_max_in_bytes"] for n in nodes.values()) / 2**30
            # A JVM limited to the C1 compiler starts sooner but indexes several times slower: say so.
            c1_only = any("-XX:TieredStopAtLevel=1" in n["jvm"].get("input_arguments", []) for n in nodes.values())
            name = "OpenSearch" if server.get("distribution") == "opensearch" else "Elasticsearch"
            parts.append(f"{name} {server['number']} ({len(nodes)} node(s), {heap:.1f} GB JVM heap"
                         f"{', C1 JIT only (-XX:TieredStopAtLevel=1)' if c1_only else ''}, translog fsync per "
                         "request)")
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts) + (f"; {note}" if note else "")


def _s(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def _sink_name(sink: str) -> str:
    return SINK_NAMES.get(sink, sink)


def render_section(result: BenchResult) -> str:
    """The markdown section (``## ...`` to the end of this benchmark's text)."""
    relay, consumer = RelayConfig("", ""), ConsumerSettings()
    plans = "; ".join(f"{s.target:,}/s: K = {s.rows_per_statement} over {s.workers} connections"
                      for s in result.steps)
    names = " and ".join(_sink_name(s) for s in result.sinks)
    consumers = ", ".join(f"`quiver events consume --sink {s}`" for s in result.sinks)
    polls = []
    if "clickhouse" in result.sinks:
        polls.append("ClickHouse with `SELECT seq, occurred_at_us FROM <db>.events WHERE seq > <watermark>`")
    if "search" in result.sinks:
        polls.append(
            "OpenSearch with a `_search` of the sink's alias (range `seq > <watermark>`, doc values only, sorted "
            "by `seq`, paged with `search_after`), never refreshed by the benchmark: a document is searchable after "
            "the index's next refresh (`refresh_interval` "
            + (f"{result.search_refresh}" if result.search_refresh else "not read in this run")
            + "), so its lag includes that wait, as any reader's would")
    lines = [
        SECTION_TITLE,
        "",
        "End-to-end capacity of the event pipeline with everything on one machine: PostgreSQL capture triggers → "
        f"outbox → `quiver events relay` → NATS JetStream → {consumers} → {names}, the relay and each consumer as "
        "separate processes (`benchmarks/events.py`).",
        "",
        f"- **Date:** {result.date}",
        f"- **Machine:** {result.machine}. Load generator, relay, consumers and all the servers share these vCPUs.",
        f"- **Reproduce:** `scripts/services start`, then `eval \"$(scripts/services env)\"` and "
        f"`{result.command}`.",
        f"- **Load:** 1-minute load average {result.load_average[0]:.2f} at the start and "
        f"{result.load_average[1]:.2f} at the end (the benchmark's own processes included; other work on the "
        "machine too).",
        f"- **Pipeline settings:** as shipped (relay: {relay.batch:,} outbox rows per fetch, up to "
        f"{relay.events_per_message} events per message, {relay.publish_window} publishes in flight; each consumer: "
        f"fetches of up to {consumer.batch_max} messages or {consumer.batch_wait:g} s), Redis dedup in front of each "
        + (f"sink **on** (`QUIVER_REDIS_URL` = {result.dedup}"
           + (", this run's events found recorded afterwards: "
              + ", ".join(f"{_sink_name(k)} {v:,}" for k, v in result.dedup_recorded.items())
              if result.dedup_recorded else "") + ")"
           if result.dedup else "sink **off**") + ".",
        "- **Method:** a fresh database cloned from a demo template (20,000 orders) with capture installed, its own "
        "JetStream namespace" + ("" if "clickhouse" not in result.sinks else ", ClickHouse database")
        + ("" if "search" not in result.sinks else ", OpenSearch index prefix") + ". Per target rate, a paced "
        f"open-loop generator commits {result.duration:g} s of small transactions: each one multi-row statement of "
        "K rows, cycling INSERT of K customers, UPDATE of K orders (two columns), DELETE of K customers inserted "
        f"earlier, so every statement makes K events (K = rate / statements per second, {plans}). "
        f"Every sink is polled every {result.poll_interval * 1000:.0f} ms for events past the last contiguous "
        f"`seq` it showed: {'; '.join(polls)}. An event's *lag* in a sink is the time of the poll that first saw "
        "it there minus its `occurred_at` (the trigger's `clock_timestamp()` in the committing transaction), so it "
        "includes up to one poll interval. "
        "*Delivered* counts events first seen during the load window. *Drain* is the time from the end of the "
        "load until every committed event was visible in that sink; *catch-up* is the sink's backlog at the end of "
        "the load over its drain time (when the drain took over 0.5 s): its rate with the writers gone. "
        "A sink **kept up** when "
        f"lag p99 ≤ {SUSTAINED_P99:g} s, drain ≤ {SUSTAINED_DRAIN:g} s, and the lag did not keep growing: its "
        f"*trend* (least-squares slope of lag against commit time over the window's second half) ≤ "
        f"{SUSTAINED_TREND:g} s per s, i.e. delivery kept within ~{SUSTAINED_TREND:.0%} of the commit rate; a rate "
        "is **sustained** when every sink kept up. "
        "*Relay* lag is commit → acknowledged by JetStream and marked in the outbox (`published_at`), from the "
        "outbox itself; the rest of a sink's lag is its consumer, the sink and the poll. The target rates run "
        f"in increasing order after a warm-up ({result.warmup_events:,} events); each step drains before the next.",
        "",
        "| target ev/s | K × stmts/s (conns) | committed ev/s | relay p50 / p99 s | outbox unpublished max/end "
        "| events per JetStream message | sustained |",
        "|---:|---|---:|---|---|---:|---|",
    ]
    for s in result.steps:
        verdict = "**yes**" if s.kept_up else "no"
        if not s.offered:
            verdict += " (load short of target)"
        lines.append(
            f"| {s.target:,} | {s.rows_per_statement} × {s.statements_per_second:.0f} ({s.workers}) | "
            f"{s.commit_rate:,.0f} | {_s(s.relay_p50)} / {_s(s.relay_p99)} | "
            f"{s.outbox_backlog_max:,} / {s.outbox_backlog_end:,} | {s.events_per_message:.1f} | {verdict} |")
    lines += [
        "",
        "Per sink at each rate (*JetStream pending*: messages its consumer had not acknowledged, sampled each "
        "second):",
        "",
        "| target ev/s | sink | delivered ev/s | lag p50 s | p99 s | max s | trend s/s | drain s "
        "| backlog at end (ev) | catch-up ev/s | JetStream pending msgs max/end | kept up |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in result.steps:
        for k in s.sinks.values():
            lines.append(
                f"| {s.target:,} | {_sink_name(k.sink)} | {k.delivered_rate:,.0f} | {_s(k.lag_p50)} | "
                f"{_s(k.lag_p99)} | {_s(k.lag_max)} | {k.lag_trend:+.3f} | "
                f"{k.drain_seconds:.1f}{'' if k.drained else ' (not drained)'} | {k.backlog_end:,} | "
                f"{'–' if math.isnan(k.catch_up_rate) else f'{k.catch_up_rate:,.0f}'} | "
                f"{k.jetstream_pending_max:,} / {k.jetstream_pending_end:,} | {'**yes**' if k.kept_up else 'no'} |")
    groups = [("relay", "relay"), *((f"consumer-{k}", f"consumer {_sink_name(k)}") for k in result.sinks),
              ("postgres", "PostgreSQL"), ("nats", "NATS"),
              *((server, name) for sink, server, name in (("clickhouse", "clickhouse", "ClickHouse"),
                                                          ("search", "opensearch", "OpenSearch"))
                if sink in result.sinks),
              ("benchmark", "benchmark process")]
    lines += [
        "",
        "Where the CPU went during each load window, in cores (1.00 = one vCPU fully busy; PostgreSQL = this "
        "database's backends, the generator's included, plus the server's background processes; the servers are "
        "found by their listening port); *machine busy* counts every process on the machine, *CPU pressure* is the "
        "share of the window during which some runnable task waited for a vCPU (Linux PSI `some`); and the median "
        "statement time per operation:",
        "",
        "| target ev/s | " + " | ".join(name for _, name in groups) + " | machine busy | CPU pressure "
        "| INSERT / UPDATE / DELETE ms |",
        "|---:|" + "---:|" * len(groups) + "---:|---:|---|",
    ]
    for s in result.steps:
        c = s.cpu_cores
        ms = " / ".join(f"{s.statement_ms[op]:.1f}" if op in s.statement_ms else "–" for op in OPS)
        lines.append(f"| {s.target:,} | " + " | ".join(f"{c.get(key, 0):.2f}" for key, _ in groups)
                     + f" | {s.machine_busy:.0%} | {'–' if s.cpu_pressure is None else f'{s.cpu_pressure:.0%}'} | "
                     f"{ms} |")
    events = result.inserts[0].events if result.inserts else (result.stages[0].events if result.stages else 0)
    described = []
    if "clickhouse" in result.sinks:
        described.append("ClickHouse: the events encoded once with the sink's Native encoder, then only the HTTP "
                         "POSTs timed, into a freshly created table of the sink's DDL each round")
    if "search" in result.sinks:
        described.append(
            f"OpenSearch: the events in consumer-sized batches ({CONSUMER_BATCH // 1000}k), each encoded once into "
            "the exact NDJSON `_bulk` bodies the search sink sends (its own `bulk_bodies`, cut at its "
            "`max_bulk_bytes`), then only the `_bulk` POSTs timed (with the sink's query parameters), into freshly "
            "created indices of the sink's template each round: the server's own rate for the sink's documents, "
            "the sink's limit; then the sink's `write()` itself on the same batches (its encoding and per-item "
            "result checks included), fresh indices again, for the rounds in its note")
    described.append("chDB: the sink's own write (`INSERT ... SELECT * FROM Python(table)`) in a separate process, "
                     "fresh table each round")
    lines += [
        "",
        f"**Each sink's ceiling and each stage alone**, over the newest {events:,} events of the run (median of "
        f"{len(result.inserts[0].seconds) if result.inserts else 0} rounds). " + ". ".join(described) + ". "
        "Stages: single-threaded CPU work the relay and consumers do per event.",
        "",
        "| operation | events | MB | median s | events/s | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for t in [*result.inserts, *result.stages]:
        lines.append(f"| {t.name} | {t.events:,} | {f'{t.megabytes:.1f}' if t.megabytes else '–'} | {t.median:.3f} | "
                     f"{t.events_per_second:,.0f} | {t.note} |")
    behind = next((s for s in result.steps if not s.kept_up), None)
    if behind is not None:
        waits = "; ".join(
            f"about {round(k.jetstream_pending_end * behind.events_per_message):,} "
            f"({k.jetstream_pending_end:,} messages) in JetStream for the {_sink_name(k.sink)} consumer, whose median "
            f"lag was {_s(k.lag_p50)} s" + ("" if math.isnan(k.catch_up_rate) else
                                            f" and which caught up at {k.catch_up_rate:,.0f} events/s once the "
                                            "writers stopped")
            for k in behind.sinks.values() if not k.kept_up)
        lines += ["", (
            f"Where events waited: at the end of the {behind.target:,}/s load (the first rate not sustained), "
            f"{behind.outbox_backlog_end:,} events were still unpublished in the outbox (waiting for the relay); "
            f"{waits}. Of that lag, {_s(behind.relay_p50)} s (median) passed before JetStream had acknowledged the "
            "event to the relay.")]
    if result.probe_errors:
        lines += ["", "Measurements that failed: " + "; ".join(result.probe_errors) + "."]
    oracle = result.oracle
    reads = {"clickhouse": "ClickHouse `FINAL`", "search": "OpenSearch `visible_events()` after a refresh"}
    lines += [
        "",
        "**Conservation oracle** (`tests.support.oracle.compare`, the outbox vs each sink's documented read: "
        + ", ".join(reads.get(k, k) for k in oracle.visible) + ", by `seq` range) over "
        f"all {oracle.events:,} events the run produced (visible: "
        + ", ".join(f"{_sink_name(k)} {v:,}" for k, v in oracle.visible.items()) + "): "
        + ("**clean** in every sink: none missing, none twice, none altered, every history in `seq` order."
           if oracle.clean else "**FAILED**: " + "; ".join(oracle.problems[:5])),
        "",
    ]
    best = result.sustained
    at_p99 = next((s for s in result.steps if s.target == TARGET_P99_RATE), None)
    verdict_rate = ("not measured" if not result.steps else
                    "met" if best and best.commit_rate >= TARGET_RATE and oracle.clean else "not met")
    lines.append(
        f"Targets: ≥ 10,000 events/s sustained end to end into {names} with zero loss — highest sustained rate "
        "measured: "
        + (f"**{best.commit_rate:,.0f} events/s** (the {best.target:,}/s step)" if best else "**none**")
        + f", loss {'zero' if oracle.clean else 'NOT zero'}: target **{verdict_rate}**. "
        + "p99 commit→visible lag < 2 s at 5,000 events/s in every sink: "
        + ("measured **" + ", ".join(f"{_sink_name(k.sink)} {_s(k.lag_p99)} s" for k in at_p99.sinks.values())
           + f"**: target **{'met' if at_p99.worst_p99 < TARGET_P99 else 'not met'}**."
           if at_p99 else "not measured in this run.")
    )
    lines += ["", "One run on shared vCPUs: a window with high CPU pressure is slowed by every process on the machine "
              "(the benchmark's own, other work too), so rerun to see the spread before comparing two runs."]
    if result.profiled:
        lines += ["", "This run had the relay and consumers under cProfile: slower than normal, for finding hot "
                  "spots."]
    lines.append("")
    return "\n".join(lines)


def result_from_json(data: dict[str, Any]) -> BenchResult:
    """A ``BenchResult`` back from ``--json`` output (to render the section again without measuring).

    Output of the ClickHouse-only version (one sink, its fields on the step) reads as a ``clickhouse`` sink.
    """

    def build(cls: Any, values: dict[str, Any]) -> Any:
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def step(values: dict[str, Any]) -> StepResult:
        built: StepResult = build(StepResult, {k: v for k, v in values.items() if k != "sinks"})
        sinks = values.get("sinks") or {"clickhouse": {**values, "sink": "clickhouse"}}
        built.sinks = {name: build(SinkStep, {**s, "window": values.get("window", 0.0)}) for name, s in sinks.items()}
        return built

    oracle = data["oracle"]
    visible = oracle["visible"] if isinstance(oracle["visible"], dict) else {"clickhouse": oracle["visible"]}
    return BenchResult(
        steps=[step(s) for s in data["steps"]], stages=[build(Throughput, t) for t in data["stages"]],
        inserts=[build(Throughput, t) for t in data["inserts"]],
        oracle=build(OracleResult, {**oracle, "visible": visible}),
        machine=data["machine"], date=data["date"], command=data["command"], duration=data["duration"],
        poll_interval=data["poll_interval"], load_average=tuple(data["load_average"]),
        warmup_events=data.get("warmup_events", 0), profiled=data.get("profiled", False), dedup=data.get("dedup"),
        probe_errors=data.get("probe_errors", []), sinks=tuple(data.get("sinks", ("clickhouse",))),
        dedup_recorded=data.get("dedup_recorded", {}), search_refresh=data.get("search_refresh"))


def write_section(path: Path, section: str, title: str = SECTION_TITLE) -> None:
    """Replace this benchmark's section of ``path`` (or append it), keeping every other byte."""
    report.write_section(path, section, title)


def print_profiles(directory: Path, top: int = 25) -> None:
    """The hottest functions of each profiled process (by own time), to stderr."""
    import pstats

    for profile in sorted(directory.glob("*.prof")):
        print(f"\n=== {profile.name} ===", file=sys.stderr)
        pstats.Stats(str(profile), stream=sys.stderr).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("QUIVER_TEST_ADMIN_URL", DEFAULT_ADMIN_URL),
                        help="admin URL of the PostgreSQL server (the benchmark creates and drops its own database)")
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)), help="target events/s, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per rate")
    parser.add_argument("--sinks", default=",".join(SINKS),
                        help=f"sinks to run a consumer for and measure, comma-separated (of {', '.join(SINKS)})")
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL, help="seconds between polls of a sink")
    parser.add_argument("--statements-per-second", type=float, default=STATEMENTS_PER_SECOND,
                        help="statements per second over all connections (K = rate / this)")
    parser.add_argument("--workers", type=int, default=None, help="load connections (default: 1 per 2k events/s, 2-12)")
    parser.add_argument("--probe-events", type=int, default=PROBE_EVENTS, help="events for the insert ceilings")
    parser.add_argument("--no-chdb", action="store_true", help="skip the chDB insert measurement")
    parser.add_argument("--no-redis-dedup", action="store_true",
                        help="run the consumers without Redis dedup even if QUIVER_REDIS_URL is set")
    parser.add_argument("--profile", default="", help="run relay and consumers under cProfile, .prof files here")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="markdown file whose section is rewritten; ''")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--machine-note", default="", help="free text added to the detected machine description")
    parser.add_argument("--from-json", default="", help="render the section from a saved --json output, no run")
    parser.add_argument("--chdb-probe", default="", help=argparse.SUPPRESS)
    parser.add_argument("--chdb-path", default="", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the insert ceilings and stage timings")
    args = parser.parse_args(argv)
    if args.chdb_probe:
        _chdb_probe(Path(args.chdb_probe), Path(args.chdb_path), args.rounds)
        return
    if args.from_json:
        section = render_section(result_from_json(json.loads(Path(args.from_json).read_text())))
        if args.output:
            write_section(Path(args.output), section)
            print(f"wrote {args.output}", file=sys.stderr)
        print(section)
        return
    rates = [int(r.replace("_", "")) for r in args.rates.split(",") if r.strip()]
    if not rates or any(r <= 0 for r in rates) or args.duration <= 0:
        parser.error("--rates must be positive numbers and --duration > 0")
    sinks = tuple(dict.fromkeys(name.strip() for name in args.sinks.split(",") if name.strip()))
    if not sinks or set(sinks) - set(SINKS):
        parser.error(f"--sinks must be some of {', '.join(SINKS)}")
    profile_dir = Path(args.profile).resolve() if args.profile else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "benchmarks/events.py", *(argv if argv is not None else sys.argv[1:])])
    machine = describe_machine(args.database_url, os.environ.get("QUIVER_NATS_MONITOR_URL"),
                               clickhouse_url() if "clickhouse" in sinks else None,
                               opensearch_url() if "search" in sinks else None, args.machine_note)
    result = run(args.database_url, rates, args.duration, machine=machine, command=command, sinks=sinks,
                 poll_interval=args.poll_interval, statements_per_second=args.statements_per_second,
                 workers=args.workers, probe_events=args.probe_events, probe_rounds=args.rounds,
                 chdb=not args.no_chdb, profile_dir=profile_dir, redis_dedup=not args.no_redis_dedup, progress=True)
    if profile_dir:
        print_profiles(profile_dir)
    if args.json:
        print(json.dumps(result.as_json(), indent=2, default=float))
    section = render_section(result)
    if args.output:
        write_section(Path(args.output), section)
        print(f"wrote {args.output}", file=sys.stderr)
    if not args.json:
        print(section)


if __name__ == "__main__":
    main()
