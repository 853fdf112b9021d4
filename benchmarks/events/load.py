"""The offered load: a paced open-loop generator of small multi-row transactions from several connections,
so the rate offered does not depend on how fast the pipeline drains (a closed loop would slow down with it)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

import psycopg

from benchmarks.events.pipeline import TEMPLATE_ORDERS

STATEMENTS_PER_SECOND = 100  # all connections together; K = rate / this
OPS = ("insert", "update", "delete")
INSERT_SQL = (
    "INSERT INTO customers (email, name, phone, profile) "
    "SELECT %s || g || '@bench.example', 'Bench ' || g, CASE WHEN g %% 2 = 0 THEN NULL ELSE '+1-555-' || g END, "
    "jsonb_build_object('worker', %s::int, 'tick', %s::int) FROM generate_series(1, %s) AS g RETURNING id"
)
UPDATE_SQL = "UPDATE orders SET total = total + 0.01, note = %s WHERE id BETWEEN %s AND %s"
DELETE_SQL = "DELETE FROM customers WHERE id = ANY(%s)"


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
