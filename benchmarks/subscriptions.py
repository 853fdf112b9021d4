"""GraphQL subscriptions benchmark: N WebSocket subscriptions fed by the outbox relay at a target write rate.

A fresh copy of the demo template (1,000 orders), ``quiver events install`` and a relay of its own, a
``quiver serve`` reading the same JetStream namespace, and the clients in a separate process (so the
server's CPU is its own). Each subscription watches one order
(``subscription($id: BigInt!) { orders(where: {id: {eq: $id}}) { id note status } }``), so each committed
update of a subscribed order must reach exactly one subscription. The writer updates random orders in
small transactions, setting ``note`` to a unique token and recording the time each commit returned; the
clients record when each (id, note) arrived. Lag is receipt minus commit (one clock: same machine).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from benchmarks.common.report import command_line, machine_parts, publish

SECTION_TITLE = "## GraphQL subscriptions (WebSocket)"
DEFAULT_SUBSCRIPTIONS = 1_000
DEFAULT_RATE = 2_000
DEFAULT_DURATION = 30.0
DEFAULT_BATCH = 20
DEFAULT_DRAIN_TIMEOUT = 120.0
QUERY = "subscription($id: BigInt!) { orders(where: {id: {eq: $id}}) { id note status } }"
WARM = "warm-"
ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# -- the client process -----------------------------------------------------------------------------


async def _connection(url: str, ids: list[int], received: list[tuple[int, str, float]], warm: set[int],
                      ready: list[int], stop: asyncio.Event, errors: list[str]) -> None:
    import websockets

    try:
        async with websockets.connect(url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
                                      max_queue=None, open_timeout=60, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            for order_id in ids:
                await ws.send(json.dumps({"type": "subscribe", "id": str(order_id),
                                          "payload": {"query": QUERY, "variables": {"id": order_id}}}))
            ready[0] += 1
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.time()
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                if message.get("type") != "next":
                    errors.append(f"unexpected message: {str(message)[:300]}")
                    continue
                payload = message["payload"]
                if payload.get("errors"):
                    errors.append(f"errors: {str(payload['errors'])[:300]}")
                row = payload["data"]["orders"]
                note = str(row.get("note"))
                if note.startswith(WARM):
                    warm.add(int(row["id"]))
                else:
                    received.append((int(row["id"]), note, now))
    except Exception as error:  # noqa: BLE001 - reported to the parent
        errors.append(f"connection: {type(error).__name__}: {error}")


async def _client_main(url: str, ids: list[int], connections: int, out: Path) -> None:
    received: list[tuple[int, str, float]] = []
    warm: set[int] = set()
    errors: list[str] = []
    ready = [0]
    stop = asyncio.Event()
    groups = [ids[i::connections] for i in range(connections)]
    tasks = []
    for group in groups:  # opened a few at a time: a thousand handshakes at once only time out
        tasks.append(asyncio.create_task(_connection(url, group, received, warm, ready, stop, errors)))
        if len(tasks) % 50 == 0:
            await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def report() -> None:
        while not stop.is_set():
            print(json.dumps({"ready": ready[0], "warm": len(warm), "received": len(received),
                              "errors": len(errors)}), flush=True)
            await asyncio.sleep(0.25)

    reporter = asyncio.create_task(report())
    while (line := await reader.readline()) and line.strip() != b"stop":
        pass
    stop.set()
    await asyncio.gather(*tasks, reporter)
    out.write_text(json.dumps({"received": received, "errors": errors[:50], "error_count": len(errors)}))


def client_main(argv: list[str]) -> None:
    """``python -m benchmarks.subscriptions --client URL SPEC_FILE OUT_FILE``."""
    url, spec_file, out = argv
    spec = json.loads(Path(spec_file).read_text())
    asyncio.run(_client_main(url, spec["ids"], spec["connections"], Path(out)))


class Clients:
    """The client process, its progress lines read by a thread."""

    def __init__(self, ws_url: str, ids: list[int], connections: int, workdir: Path) -> None:
        spec = workdir / "clients.json"
        spec.write_text(json.dumps({"ids": ids, "connections": connections}))
        self.out = workdir / "received.json"
        self.log = open(workdir / "clients.log", "wb")  # noqa: SIM115 - kept open by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.subscriptions", "--client", ws_url, str(spec), str(self.out)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.state: dict[str, int] = {"ready": 0, "warm": 0, "received": 0, "errors": 0}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with suppress(ValueError):
                self.state = json.loads(line)

    def wait(self, key: str, count: int, timeout: float, action: Any = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state.get(key, 0) >= count:
                return True
            if self.process.poll() is not None:
                raise RuntimeError(f"client process exited: {self.process.returncode}")
            if action is not None:
                action()
            time.sleep(0.1)
        return self.state.get(key, 0) >= count

    def finish(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(b"stop\n")
        self.process.stdin.flush()
        self.process.wait(timeout=120)
        self.log.close()
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# -- the writer -------------------------------------------------------------------------------------


UPDATE = ("UPDATE orders AS o SET note = u.note FROM unnest(%s::bigint[], %s::text[]) AS u(id, note) "
          "WHERE o.id = u.id")


def warm_up(url: str, ids: list[int], round_no: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(UPDATE, (ids, [f"{WARM}{round_no}-{i}" for i in ids]))


def write_load(url: str, order_ids: list[int], rate: float, duration: float, batch: int,
               seed: int) -> tuple[dict[tuple[int, str], float], float, int]:
    """Updates at ``rate`` rows/s in transactions of ``batch`` rows; returns commit times, window, tx count."""
    rng = random.Random(seed)
    commits: dict[tuple[int, str], float] = {}
    interval = batch / rate
    tx = 0
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.monotonic()
        while (now := time.monotonic()) - start < duration:
            due = start + tx * interval
            if now < due:
                time.sleep(due - now)
            ids = rng.sample(order_ids, batch)
            notes = [f"t{tx}-{j}" for j in range(batch)]
            conn.execute(UPDATE, (ids, notes))
            committed = time.time()
            for order_id, note in zip(ids, notes, strict=True):
                commits[(order_id, note)] = committed
            tx += 1
        window = time.monotonic() - start
    return commits, window, tx


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class Result:
    subscriptions: int
    connections: int
    target_rate: float
    batch: int
    duration: float
    window: float
    transactions: int
    committed: int
    expected: int
    delivered: int
    lost: int
    duplicated: int
    unexpected: int
    drained: bool
    drain_seconds: float
    lag_p50: float
    lag_p99: float
    lag_max: float
    delivered_rate: float  # delivered messages per second from the first write until the drain ended
    server_cpu: float  # CPU seconds per wall second during load + drain
    relay_cpu: float | None
    server_cpu_idle: float  # with the subscriptions open and no writes
    client_cpu: float  # the client process, cores over load + drain
    machine_busy: float  # every process on the machine, cores busy over load + drain
    rss_before_mb: float
    rss_subscribed_mb: float
    rss_after_mb: float
    subscribe_seconds: float
    client_errors: list[str] = field(default_factory=list)
    machine: str = ""
    command: str = ""
    date: str = ""
    load_average: tuple[float, float] = (0.0, 0.0)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0

    @property
    def cpu_per_subscription_ms(self) -> float:
        return self.server_cpu / self.subscriptions * 1000

    @property
    def rss_per_subscription_kb(self) -> float:
        return (self.rss_subscribed_mb - self.rss_before_mb) * 1024 / self.subscriptions

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean, "cpu_per_subscription_ms": self.cpu_per_subscription_ms,
                "rss_per_subscription_kb": self.rss_per_subscription_kb}


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 1024 / 1024


@contextmanager
def _environment(admin: str, workdir: Path) -> Iterator[tuple[str, Any, Any]]:
    """A cloned demo database, the events install, a relay and a server; all removed afterwards."""
    from tests.conftest import ensure_demo_database
    from tests.support.stack import event_stack

    template = ensure_demo_database("quiver_test_template", 1_000).rsplit("/", 1)[1]
    with event_stack(admin, workdir, template, "bsub") as stack:
        yield stack


def run(admin: str, subscriptions: int = DEFAULT_SUBSCRIPTIONS, rate: float = DEFAULT_RATE,
        duration: float = DEFAULT_DURATION, *, connections: int | None = None, batch: int = DEFAULT_BATCH,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT, machine: str = "", command: str = "", seed: int = 42,
        progress: bool = False) -> Result:
    connections = min(connections or subscriptions, subscriptions)

    def say(text: str) -> None:
        if progress:
            print(text, file=sys.stderr, flush=True)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="quiver-bench-subs-") as tmp, _environment(admin, Path(tmp)) as env:
        url, server, pipeline = env
        with psycopg.connect(url) as conn:
            order_ids = [int(r[0]) for r in conn.execute("SELECT id FROM orders ORDER BY id").fetchall()]
        if subscriptions > len(order_ids):
            raise ValueError(f"at most {len(order_ids):,} subscriptions (one per order)")
        if batch > len(order_ids):
            raise ValueError("batch larger than the orders table")
        watched = random.Random(seed).sample(order_ids, subscriptions)
        proc = psutil.Process(server.pid)
        relay = pipeline.processes.get("relay")
        relay_proc = psutil.Process(relay.pid) if relay is not None else None
        time.sleep(1.0)
        rss_before = _rss_mb(proc)
        ws_url = server.url.replace("http", "ws", 1) + "/graphql"
        clients = Clients(ws_url, watched, connections, Path(tmp))
        try:
            started = time.monotonic()
            say(f"opening {subscriptions:,} subscriptions over {connections:,} connections...")
            if not clients.wait("ready", connections, 300):
                raise RuntimeError(f"only {clients.state['ready']} of {connections} connections opened")
            rounds = [0]

            def warm() -> None:
                if time.monotonic() - last[0] >= 2.0:
                    rounds[0] += 1
                    warm_up(url, watched, rounds[0])
                    last[0] = time.monotonic()

            last = [0.0]
            if not clients.wait("warm", subscriptions, 300, warm):
                raise RuntimeError(f"only {clients.state['warm']} of {subscriptions} subscriptions live")
            subscribe_seconds = time.monotonic() - started
            time.sleep(2.0)  # the last warm-up round's stragglers
            rss_subscribed = _rss_mb(proc)
            idle_cpu, idle_wall = _cpu(proc), time.monotonic()
            time.sleep(2.0)
            server_idle = (_cpu(proc) - idle_cpu) / (time.monotonic() - idle_wall)
            say(f"{subscriptions:,} live after {subscribe_seconds:.1f} s; writing {rate:,.0f} rows/s "
                f"for {duration:g} s...")
            cpu0, wall0 = _cpu(proc), time.monotonic()
            relay0 = _cpu(relay_proc) if relay_proc else 0.0
            client_proc = psutil.Process(clients.process.pid)
            client0, busy0 = _cpu(client_proc), _busy()
            base = clients.state["received"]
            commits, window, transactions = write_load(url, order_ids, rate, duration, batch, seed)
            watched_set = set(watched)
            expected = {k: v for k, v in commits.items() if k[0] in watched_set}
            drain_start = time.monotonic()
            drained = clients.wait("received", base + len(expected), drain_timeout)
            drain_seconds = time.monotonic() - drain_start
            wall = time.monotonic() - wall0
            server_cpu = (_cpu(proc) - cpu0) / wall
            relay_cpu = (_cpu(relay_proc) - relay0) / wall if relay_proc else None
            client_cpu = (_cpu(client_proc) - client0) / wall
            machine_busy = (_busy() - busy0) / wall
            rss_after = _rss_mb(proc)
            time.sleep(1.0)  # duplicates after the drain
            got = clients.finish()
        finally:
            clients.kill()
    counts: dict[tuple[int, str], int] = {}
    lags: list[float] = []
    unexpected = 0
    for order_id, note, at in got["received"]:
        key = (int(order_id), str(note))
        counts[key] = counts.get(key, 0) + 1
        if key in expected:
            if counts[key] == 1:
                lags.append(at - expected[key])
        else:
            unexpected += 1
    delivered = sum(1 for k in expected if k in counts)
    duplicated = sum(c - 1 for k, c in counts.items() if c > 1)
    return Result(
        subscriptions, connections, rate, batch, duration, window, transactions, len(commits), len(expected),
        delivered, len(expected) - delivered, duplicated, unexpected, drained, drain_seconds,
        percentile(lags, 0.5), percentile(lags, 0.99), max(lags) if lags else float("nan"),
        delivered / wall, server_cpu, relay_cpu, server_idle, client_cpu, machine_busy, rss_before, rss_subscribed,
        rss_after, subscribe_seconds, got["errors"], machine, command,
        dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), (load_before, os.getloadavg()[0]))


# -- the report -------------------------------------------------------------------------------------


def render_section(r: Result) -> str:
    relay = f"{r.relay_cpu:.2f}" if r.relay_cpu is not None else "n/a"
    lines = [
        SECTION_TITLE,
        "",
        f"Machine: {r.machine}. Run {r.date}; load average {r.load_average[0]:.2f} before, "
        f"{r.load_average[1]:.2f} after.",
        "",
        f"Reproduce: `{r.command}`",
        "",
        f"Parameters: {r.subscriptions:,} subscriptions over {r.connections:,} WebSocket connections "
        f"(`graphql-transport-ws`), each `orders(where: {{id: {{eq: $id}}}}) {{ id note status }}` on a distinct "
        f"order of 1,000; target {r.target_rate:,.0f} updated rows/s in transactions of {r.batch} rows "
        f"({r.target_rate / r.batch:,.0f} tx/s) on random orders for {r.duration:g} s; clients in a separate "
        "process; lag = receipt time minus the time the commit returned.",
        "",
        "| subs | conns | committed rows/s | expected msgs | delivered | lost | duplicated | delivered msgs/s "
        "| lag p50 s | lag p99 s | lag max s | drain s after writes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r.subscriptions:,} | {r.connections:,} | {r.committed / r.window:,.0f} | {r.expected:,} "
        f"| {r.delivered:,} | {r.lost:,} | {r.duplicated:,} | {r.delivered_rate:,.0f} | {r.lag_p50:.3f} "
        f"| {r.lag_p99:.3f} | {r.lag_max:.3f} | {r.drain_seconds:.1f} |",
        "",
        "| server CPU (cores) under load | per subscription | idle with subs open | relay CPU (cores) "
        "| client process CPU | whole machine busy (cores) | RSS before MB | RSS subscribed MB "
        "| per subscription KB | RSS after load MB | subscribe + warm-up s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r.server_cpu:.2f} | {r.cpu_per_subscription_ms:.3f} ms/s | {r.server_cpu_idle:.2f} | {relay} "
        f"| {r.client_cpu:.2f} | {r.machine_busy:.2f} | {r.rss_before_mb:.0f} | {r.rss_subscribed_mb:.0f} "
        f"| {r.rss_per_subscription_kb:.1f} "
        f"| {r.rss_after_mb:.0f} | {r.subscribe_seconds:.1f} |",
        "",
        f"Outcome: {'**clean** (nothing lost, nothing duplicated)' if r.clean else '**NOT clean**'}; "
        f"{'drained' if r.drained else 'did not drain'} within the timeout; "
        f"{r.unexpected:,} unexpected messages; {len(r.client_errors)} client errors. Delivered msgs/s is every "
        "delivered message over the time from the first write until the last expected message arrived (or the "
        f"drain timed out): {r.window + r.drain_seconds:.1f} s here. CPU is the `quiver serve` "
        "process's user+system seconds per wall second over the load and the drain (psutil); the machine is "
        "shared, so the client process, PostgreSQL, NATS and the relay compete for the same cores.",
        "",
    ]
    if r.client_errors:
        lines += ["Client errors (first): " + "; ".join(r.client_errors[:3]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--client"]:
        client_main(args_in[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks.subscriptions",
                                     description=(__doc__ or "").splitlines()[0])
    from tests.conftest import admin_url

    parser.add_argument("--database-url", default=admin_url(),
                        help="admin URL of the PostgreSQL server (the benchmark creates its own database)")
    parser.add_argument("--subscriptions", type=int, default=DEFAULT_SUBSCRIPTIONS)
    parser.add_argument("--connections", type=int, default=None, help="default: one per subscription")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="updated rows per second")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="rows per transaction")
    parser.add_argument("--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT)
    parser.add_argument("--output", default="", help="markdown file whose section is (re)written; '' to skip")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--machine-note", default="2 cores, shared, noisy",
                        help="free text added to the machine description")
    args = parser.parse_args(args_in)
    if args.subscriptions < 1 or args.rate <= 0 or args.duration <= 0 or args.batch < 1:
        parser.error("--subscriptions, --rate, --duration and --batch must be positive")
    machine = ", ".join([*machine_parts(), *([args.machine_note] if args.machine_note else [])])
    result = run(args.database_url, args.subscriptions, args.rate, args.duration, connections=args.connections,
                 batch=args.batch, drain_timeout=args.drain_timeout, machine=machine,
                 command=command_line("benchmarks.subscriptions", argv), progress=True)
    publish(render_section(result), SECTION_TITLE, args.output, result.as_json() if args.json else None)


if __name__ == "__main__":
    main()
