"""Large rows end to end: N rows of SIZE MiB committed at once, commit → written per sink (MiB/s).

Rows over NATS's max payload travel through the JetStream Object Store (docs/events.md,
"Large rows"). One UPDATE commits every row; each sink's time is read from its consumer's
``quiver_sink_written_total``; the oracle checks the run afterwards.

    eval "$(scripts/services env)" && python -m benchmarks.large_rows [--rows 20] [--size-mib 5]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import psycopg

from quiver.events import bus
from tests.conftest import admin_url, database_url, ensure_demo_database, free_port
from tests.support.pipeline import Pipeline, nats_url, opensearch_url

MIB = 1 << 20


def run(rows: int, size_mib: int, sinks: tuple[str, ...]) -> None:
    """Commit ``rows`` rows of ``size_mib`` MiB in one UPDATE; print commit → written per sink."""
    template = ensure_demo_database("quiver_test_template", 1_000).rsplit("/", 1)[1]
    name = f"quiver_large_bench_{time.monotonic_ns()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = database_url(name)
    namespace = f"lb{time.monotonic_ns() % 10**10}"
    work = Path(tempfile.mkdtemp())
    ports = {f"consume:{s}": free_port() for s in sinks}
    pipeline = Pipeline(url, work, namespace, sinks, opensearch=opensearch_url(), metrics_ports=ports)
    try:
        pipeline.cli("install")
        pipeline.start_all()
        with psycopg.connect(url) as conn:  # warm-up: every consumer up and writing
            conn.execute("UPDATE orders SET note = 'warm' WHERE id <= 5")
            conn.commit()
        pipeline.wait_drained()
        base = {s: pipeline.metric(f"consume:{s}", f'quiver_sink_written_total{{sink="{s}"}}') for s in sinks}
        with psycopg.connect(url) as conn:
            started = time.monotonic()
            conn.execute(f"UPDATE orders SET note = (SELECT string_agg(md5(id::text || i::text), '') "
                         f"FROM generate_series(1, {size_mib * MIB // 32}) AS i) WHERE id <= {rows}")
            conn.commit()
            committed = time.monotonic()
        print(f"{rows} rows x {size_mib} MiB = {rows * size_mib} MiB; update+commit {committed - started:.2f}s")
        done: dict[str, float] = {}
        relay_done = None
        while (len(done) < len(sinks) or relay_done is None) and time.monotonic() - committed < 900:
            if relay_done is None and pipeline.backlog() == 0:
                relay_done = time.monotonic() - committed
            for s in sinks:
                if s not in done:
                    n = pipeline.metric(f"consume:{s}", f'quiver_sink_written_total{{sink="{s}"}}') - base[s]
                    if n >= rows:
                        done[s] = time.monotonic() - committed
            time.sleep(0.1)
        if relay_done is not None:
            rate = rows * size_mib / relay_done
            print(f"relay (commit → published, objects stored): {relay_done:.2f}s = {rate:.1f} MiB/s")
        for s in sinks:
            t = done.get(s)
            if t is None:
                print(f"{s}: not done")
            else:
                print(f"{s:<11} commit → written: {t:.2f}s = {rows * size_mib / t:.1f} MiB/s ({rows / t:.2f} rows/s)")
        pipeline.wait_drained(timeout=600)
        print("oracle:", pipeline.check())
    finally:
        pipeline.cleanup()

        async def drop() -> None:
            nc, js = await bus.connect(nats_url())
            await bus.LargeEvents(js, bus.Topology(namespace)).delete_bucket()
            await nc.close()

        asyncio.run(drop())
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--size-mib", type=int, default=5)
    parser.add_argument("--sinks", default="chdb,clickhouse,search")
    args = parser.parse_args()
    run(args.rows, args.size_mib, tuple(s for s in args.sinks.split(",") if s))


if __name__ == "__main__":
    main()
