"""Live datasets benchmark: how long a committed change takes to be visible in a live dataset, at a write rate.

A fresh copy of the demo template (1,000 orders), ``quiver events install``, a relay of its own and a
``quiver serve`` keeping ``orders`` live (``QUIVER_LIVE_ENTITIES='["orders"]'``). The writer updates
random orders at the target rate in small transactions and records, per transaction, its highest outbox
``seq`` (``currval`` of the outbox identity) and the time its commit returned. An observer thread reads
the live dataset over Flight as fast as it can (``{ orders(limit: 1) { id } }``: the answer's
``quiver:watermark`` is the highest seq applied) and records when each watermark was first seen.
Lag = the first time an answer's watermark reached a transaction's seq, minus the time that commit
returned (one clock: same machine); the observer's polling interval bounds the error (reported). At the
end a ``fresh`` read of every order's ``note`` must equal PostgreSQL's, and every transaction must have
been seen.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pyarrow.flight as flight

from benchmarks.common.report import command_line, machine_parts, publish
from benchmarks.subscriptions import UPDATE, percentile

SECTION_TITLE = "## Live datasets: lag from commit to visible"
DEFAULT_RATE = 5_000
DEFAULT_DURATION = 30.0
DEFAULT_BATCH = 50
SMALL_ORDERS = 1_000
PROBE = "{ orders(limit: 1) { id } }"
CHECK = "{ orders(orderBy: [{id: ASC}]) { id note } }"
SEQ = "SELECT currval(pg_get_serial_sequence('quiver.outbox', 'seq'))"


def ticket(query: str, fresh: bool = False) -> flight.Ticket:
    body: dict[str, Any] = {"kind": "graphql", "query": query}
    if fresh:
        body["consistency"] = "fresh"
    return flight.Ticket(json.dumps(body).encode())


def watermark_of(table: Any) -> int | None:
    metadata = table.schema.metadata or {}
    return int(metadata[b"quiver:watermark"]) if metadata.get(b"quiver:source") == b"live" else None


class Observer(threading.Thread):
    """Reads the live dataset in a loop; keeps (time, watermark) whenever the watermark moved."""

    def __init__(self, flight_url: str) -> None:
        super().__init__(daemon=True)
        self.client = flight.connect(flight_url)
        self.seen: list[tuple[float, int]] = []
        self.intervals: list[float] = []
        self.not_live = 0
        self.halt = threading.Event()

    def run(self) -> None:
        last_time, last_mark = time.time(), -1
        while not self.halt.is_set():
            table = self.client.do_get(ticket(PROBE)).read_all()
            now = time.time()
            self.intervals.append(now - last_time)
            last_time = now
            mark = watermark_of(table)
            if mark is None:
                self.not_live += 1
            elif mark > last_mark:
                self.seen.append((now, mark))
                last_mark = mark
            time.sleep(0.002)

    def visible_at(self, seq: int) -> float | None:
        """The first time a watermark >= ``seq`` was seen."""
        marks = [m for _, m in self.seen]
        i = bisect.bisect_left(marks, seq)
        return self.seen[i][0] if i < len(self.seen) else None


def write_load(url: str, order_ids: list[int], rate: float, duration: float, batch: int,
               seed: int) -> tuple[list[tuple[int, float]], float]:
    """Updates at ``rate`` rows/s in transactions of ``batch`` rows; (highest seq, commit time) per tx."""
    rng = random.Random(seed)
    commits: list[tuple[int, float]] = []
    interval = batch / rate
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.monotonic()
        while (now := time.monotonic()) - start < duration:
            due = start + len(commits) * interval
            if now < due:
                time.sleep(due - now)
            ids = rng.sample(order_ids, batch)
            conn.execute(UPDATE, (ids, [f"t{len(commits)}-{j}" for j in range(batch)]))
            committed = time.time()
            found = conn.execute(SEQ).fetchone()
            assert found is not None
            commits.append((int(found[0]), committed))
        window = time.monotonic() - start
    return commits, window


@dataclass
class Result:
    target_rate: float
    orders: int
    batch: int
    duration: float
    window: float
    transactions: int
    rows_written: int
    seen: int
    lag_p50: float
    lag_p99: float
    lag_max: float
    poll_p50: float
    poll_p99: float
    equal_at_end: bool
    server_cpu: float
    rss_mb: float
    machine: str
    command: str
    date: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def clean(self) -> bool:
        return self.equal_at_end and self.seen == self.transactions


@contextmanager
def _environment(admin: str, workdir: Path, orders: int) -> Iterator[tuple[str, Any]]:
    """A cloned database, the events install, a relay and a server keeping ``orders`` live; removed after."""
    from benchmarks.common.database import ensure_bench_database
    from benchmarks.query_planes import bench_database
    from tests.conftest import ensure_demo_database
    from tests.integration.live.conftest import wait_live
    from tests.support.stack import event_stack

    if orders == SMALL_ORDERS:
        template = ensure_demo_database("quiver_test_template", SMALL_ORDERS).rsplit("/", 1)[1]
    else:
        template = ensure_bench_database(admin, bench_database(orders), orders).rsplit("/", 1)[1]
    with event_stack(admin, workdir, template, "blive", QUIVER_LIVE_ENTITIES='["orders"]') as (url, server, _):
        wait_live(server, ["orders"], timeout=900)
        yield url, server


def run(admin: str, rate: float = DEFAULT_RATE, duration: float = DEFAULT_DURATION, *, batch: int = DEFAULT_BATCH,
        orders: int = SMALL_ORDERS, machine: str = "", command: str = "", seed: int = 42) -> Result:
    with tempfile.TemporaryDirectory(prefix="quiver-bench-live-") as tmp, \
            _environment(admin, Path(tmp), orders) as env:
        url, server = env
        with psycopg.connect(url) as conn:
            order_ids = [int(r[0]) for r in conn.execute("SELECT id FROM orders ORDER BY id").fetchall()]
        process = psutil.Process(server.pid)
        observer = Observer(server.flight_url)
        observer.start()
        time.sleep(0.5)
        cpu0, wall0 = sum(process.cpu_times()[:2]), time.monotonic()
        commits, window = write_load(url, order_ids, rate, duration, batch, seed)
        deadline = time.monotonic() + 60
        while observer.visible_at(commits[-1][0]) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        server_cpu = (sum(process.cpu_times()[:2]) - cpu0) / (time.monotonic() - wall0)
        observer.halt.set()
        observer.join(30)
        client = flight.connect(server.flight_url)
        live = client.do_get(ticket(CHECK, fresh=True)).read_all()
        with psycopg.connect(url) as conn:
            table = [{"id": int(i), "note": n} for i, n in conn.execute("SELECT id, note FROM orders ORDER BY id")]
        equal = watermark_of(live) is not None and live.to_pylist() == table
        rss = process.memory_info().rss / 2**20
    lags = [at - committed for seq, committed in commits if (at := observer.visible_at(seq)) is not None]
    polls = observer.intervals[1:] or [float("nan")]
    return Result(rate, len(order_ids), batch, duration, window, len(commits), len(commits) * batch, len(lags),
                  percentile(lags, 0.5), percentile(lags, 0.99), max(lags) if lags else float("nan"),
                  statistics.median(polls), percentile(polls, 0.99), equal, server_cpu, rss, machine, command,
                  dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


def section_title(orders: int) -> str:
    """One section per table size, so a run at 1,000 rows and one at 1M rows both stay in the docs."""
    return f"{SECTION_TITLE} ({orders:,} rows)"


def render_section(r: Result) -> str:
    return "\n".join([
        section_title(r.orders),
        "",
        f"Machine: {r.machine}. Run {r.date}.",
        "",
        f"Reproduce: `{r.command}`",
        "",
        f"Parameters: a `quiver serve` keeping `orders` ({r.orders:,} rows) live; target {r.target_rate:,.0f} updated "
        f"rows/s in transactions of {r.batch} rows ({r.target_rate / r.batch:,.0f} tx/s) for {r.duration:g} s, "
        "each row image one event; lag = the first time a Flight answer's `quiver:watermark` reached the "
        "transaction's highest outbox seq, minus the time its commit returned; the observer polls "
        f"continuously (interval p50 {r.poll_p50 * 1000:.1f} ms, p99 {r.poll_p99 * 1000:.1f} ms: the lag's "
        "resolution).",
        "",
        "| rows held | committed rows/s | transactions | seen | lag p50 s | lag p99 s | lag max s "
        "| fresh read equals the table | server CPU (cores) | server RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        f"| {r.orders:,} | {r.rows_written / r.window:,.0f} | {r.transactions:,} | {r.seen:,} | {r.lag_p50:.3f} "
        f"| {r.lag_p99:.3f} | {r.lag_max:.3f} | {'yes' if r.equal_at_end else '**no**'} | {r.server_cpu:.2f} "
        f"| {r.rss_mb:.0f} |",
        "",
        f"Target: lag p99 < 1 s at 5,000 events/s: {'met' if r.lag_p99 < 1 else '**not met**'} "
        f"({r.lag_p99:.3f} s at {r.rows_written / r.window:,.0f} events/s). The relay, PostgreSQL, NATS, the "
        "writer and the observer share the same 2 vCPUs with the server.",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live_lag", description=(__doc__ or "").splitlines()[0])
    from tests.conftest import admin_url

    parser.add_argument("--database-url", default=admin_url(), help="admin URL (the benchmark makes its database)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="updated rows (events) per second")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="rows per transaction")
    parser.add_argument("--orders", type=int, default=SMALL_ORDERS,
                        help="rows in the live table: 1,000 (the demo template) or a bench database's size")
    parser.add_argument("--output", default="", help="markdown file whose section is (re)written; '' to skip")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--machine-note", default="2 cores, shared, noisy")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.batch < 1:
        parser.error("--rate, --duration and --batch must be positive")
    machine = ", ".join([*machine_parts(), *([args.machine_note] if args.machine_note else [])])
    result = run(args.database_url, args.rate, args.duration, batch=args.batch, orders=args.orders,
                 machine=machine,
                 command=command_line("benchmarks.live_lag", argv))
    publish(render_section(result), section_title(result.orders), args.output,
            result.as_json() if args.json else None)


if __name__ == "__main__":
    main()
