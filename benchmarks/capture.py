"""What capture costs a writer: the same statements on a captured table and on an uncaptured twin.

Interleaved rounds (the starting variant alternates); medians and min–max per statement kind;
the ratio is captured / uncaptured. Kinds: one single-row UPDATE by key (the fixed cost per
statement: the key read from the catalog and one dynamic INSERT ... SELECT), a 10,000-row
INSERT and a 10,000-row UPDATE (the cost per row).

    eval "$(scripts/services env)" && python -m benchmarks.capture [--rounds 7] [--rows 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg

from benchmarks.common import DEFAULT_ADMIN_URL
from quiver.events import capture
from quiver.schema.introspect import introspect

DATABASE = "quiver_bench_capture"
TABLE_DDL = ("CREATE TABLE {name} (id bigint PRIMARY KEY, a text, b int, c numeric, d timestamptz, e boolean, "
             "f text, g int)")


def _timed(conn: psycopg.Connection[object], statement: str) -> float:
    started = time.perf_counter()
    conn.execute(statement.encode())
    return time.perf_counter() - started


def run(admin_url: str, rounds: int, rows: int, singles: int) -> dict[str, dict[str, list[float]]]:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    url = admin_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    times: dict[str, dict[str, list[float]]] = {v: {"update 1 row (ms)": [], f"insert {rows:,} rows (s)": [],
                                                    f"update {rows:,} rows (s)": []} for v in ("captured", "plain")}
    with psycopg.connect(url, autocommit=True) as conn:
        for variant in times:
            conn.execute(TABLE_DDL.format(name=variant))
        model = introspect(conn, ["public"])
        capture.install(conn, [e for e in model.entities.values() if e.name == "captured"])
        for round_ in range(rounds):
            for variant in (("captured", "plain") if round_ % 2 else ("plain", "captured")):
                conn.execute(f"TRUNCATE {variant}")
                conn.execute("TRUNCATE quiver.outbox")
                kinds = list(times[variant])
                insert = (f"INSERT INTO {variant} SELECT g, 'x' || g, g, g * 1.5, now(), true, 'y', g "
                          f"FROM generate_series(1, {rows}) AS g")
                times[variant][kinds[1]].append(_timed(conn, insert))
                times[variant][kinds[2]].append(_timed(conn, f"UPDATE {variant} SET b = b + 1"))
                total = sum(_timed(conn, f"UPDATE {variant} SET b = b + 1 WHERE id = {i + 1}") for i in range(singles))
                times[variant][kinds[0]].append(total / singles * 1000)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--singles", type=int, default=300)
    args = parser.parse_args()
    admin_url = os.environ.get("QUIVER_TEST_ADMIN_URL", DEFAULT_ADMIN_URL)
    times = run(admin_url, args.rounds, args.rows, args.singles)
    load = os.getloadavg()[0]
    print(f"capture cost, {args.rounds} interleaved rounds, load {load:.2f}, {os.cpu_count()} cores")
    print(f"{'statement':<24} {'plain median (min-max)':>26} {'captured median (min-max)':>28} {'ratio':>6}")
    for kind in times["plain"]:
        plain, captured = times["plain"][kind], times["captured"][kind]
        ratio = statistics.median(c / p for c, p in zip(captured, plain, strict=True))
        print(f"{kind:<24} {statistics.median(plain):>10.3f} ({min(plain):.3f}-{max(plain):.3f}) "
              f"{statistics.median(captured):>12.3f} ({min(captured):.3f}-{max(captured):.3f}) {ratio:>6.2f}x")


if __name__ == "__main__":
    main()
