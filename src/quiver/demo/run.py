"""``quiver demo`` end to end: embedded PostgreSQL and NATS, demo data, the server, a tour, live events.

Everything runs on loopback in one process tree and stops in reverse order of start, on
Ctrl-C or after the tour; no step waits a fixed time for another.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import uvicorn
from rich.console import Console

from quiver.config import Settings
from quiver.demo import generate
from quiver.demo.tour import run_tour
from quiver.embedded.nats import EmbeddedNats
from quiver.embedded.postgres import EmbeddedPostgres
from quiver.events import capture
from quiver.events.runner import BackgroundPipeline
from quiver.events.sinks.chdb import ChdbSink
from quiver.schema.introspect import introspect
from quiver.server import uvicorn_server

STARTUP_SECONDS = 60
SHUTDOWN_SECONDS = 10


class DemoError(Exception):
    """A step of the demo that could not be done (said in one line, no traceback)."""


@dataclass(frozen=True)
class DemoOptions:
    orders: int = 20_000
    port: int = 8000
    flight_port: int = 8815
    pg_port: int = 15434
    nats_port: int = 14322
    data_dir: Path = Path(".quiver-demo")
    reload: bool = False
    exit_after_tour: bool = False


def run_demo(options: DemoOptions, console: Console) -> None:
    """Start everything, show the tour, serve until interrupted (or stop after the tour)."""
    root = options.data_dir.resolve()
    pg = EmbeddedPostgres(root / "postgres", options.pg_port)
    nats = EmbeddedNats(root / "nats", options.nats_port, options.nats_port + 1)
    console.print(f"[bold]1/5[/] starting embedded PostgreSQL on 127.0.0.1:{options.pg_port} and NATS JetStream "
                  f"on 127.0.0.1:{options.nats_port} (data in {root})")
    pg.start()
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    pipeline: BackgroundPipeline | None = None
    try:
        nats.start()
        pg.create_database("quiver_demo")
        url = pg.url("quiver_demo")
        _load_data(url, options, console)
        settings = Settings(database_url=url, port=options.port, flight_port=options.flight_port, nats_url=nats.url,
                            chdb_path=str(root / "chdb"))
        chdb = ChdbSink(Path(settings.chdb_path))
        pipeline = _start_events(settings, chdb, console)
        server = uvicorn_server(settings)
        thread = threading.Thread(target=server.run, name="quiver-demo-server", daemon=True)
        console.print(f"[bold]4/5[/] starting Quiver on http://127.0.0.1:{options.port}")
        thread.start()
        _wait_started(server, thread)
        console.print("[bold]5/5[/] a tour of example queries")
        run_tour(f"http://127.0.0.1:{options.port}", console, f"grpc://127.0.0.1:{options.flight_port}")
        _events_step(settings, chdb, console)
        console.rule()
        console.print(f"GraphiQL: [link]http://127.0.0.1:{options.port}/graphql[/link]  (open it in a browser)")
        if not options.exit_after_tour:
            _serve_until_interrupted(thread, console)
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=SHUTDOWN_SECONDS)
        if pipeline is not None:
            pipeline.stop()
        console.print("stopping embedded NATS and PostgreSQL")
        nats.stop()
        pg.stop()


def _load_data(url: str, options: DemoOptions, console: Console) -> None:
    with psycopg.connect(url) as conn:
        loaded = conn.execute("SELECT to_regclass('public.orders') IS NOT NULL").fetchone()
        count = conn.execute("SELECT count(*) FROM orders").fetchone() if loaded and loaded[0] else None
        if options.reload or count is None or count[0] < options.orders:
            console.print(f"[bold]2/5[/] loading {options.orders:,} demo orders with COPY")
            began = time.perf_counter()
            generate.install_schema(conn)
            counts = generate.load(conn, options.orders)
            conn.commit()
            console.print(f"      {counts} in {time.perf_counter() - began:.1f} s")
        else:
            console.print(f"[bold]2/5[/] demo data already loaded ({count[0]:,} orders); --reload to redo")


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Until uvicorn has bound its socket (it offers no event for that), or fail if it died."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive():
            raise DemoError("the server stopped while starting (is the port in use?)")
        if time.monotonic() > deadline:
            raise DemoError(f"the server did not start within {STARTUP_SECONDS} s")
        thread.join(timeout=0.05)


def _serve_until_interrupted(thread: threading.Thread, console: Console) -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    console.print("Serving; press Ctrl-C to stop everything.")
    while not stop.wait(0.5) and thread.is_alive():
        pass


def _start_events(settings: Settings, chdb: ChdbSink, console: Console) -> BackgroundPipeline:
    """Capture changes of every demo table and run the relay and the chDB sink beside the server."""
    with psycopg.connect(settings.database_url) as conn:
        tables = [e for e in introspect(conn, settings.schemas).entities.values() if not e.is_view]
        capture.install(conn, tables)
    console.print("[bold]3/5[/] capturing changes: outbox → NATS JetStream → chDB (embedded ClickHouse)")
    pipeline = BackgroundPipeline(settings, [chdb])
    pipeline.start()
    return pipeline


def _events_step(settings: Settings, chdb: ChdbSink, console: Console) -> None:
    """Change some rows and show their events arriving in chDB."""
    console.rule("Every change is an event: outbox → JetStream → chDB")
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("UPDATE orders SET status = 'shipped', shipped_on = current_date WHERE status = 'paid' "
                     "AND id <= 300")
        conn.execute("INSERT INTO customers (email, name) SELECT 'demo' || g || '@example.com', 'Demo ' || g "
                     "FROM generate_series(1, 50) AS g")
        conn.commit()
        row = conn.execute("SELECT count(*) FROM quiver.outbox").fetchone()
    wanted = int(row[0]) if row else 0
    deadline = time.monotonic() + 60
    seen = 0
    while time.monotonic() < deadline:
        seen = chdb.query_arrow("SELECT count() AS n FROM quiver.events FINAL").column("n")[0].as_py()
        if seen >= wanted:
            break
        time.sleep(0.2)
    table = chdb.query_arrow(
        "SELECT entity, op, count() AS events, max(occurred_at) AS latest FROM quiver.events FINAL "
        "GROUP BY entity, op ORDER BY entity, op")
    console.print(f"{seen:,} of {wanted:,} captured events are in chDB:")
    for record in table.to_pylist():
        console.print(f"  {record['entity']:<12} {record['op']:<7} {record['events']:>6}   latest {record['latest']}")
