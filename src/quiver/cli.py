"""The ``quiver`` command: serve, demo."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import psycopg
import typer
import uvicorn
from rich.console import Console

from quiver.config import Settings

if TYPE_CHECKING:
    from quiver.events.runner import BackgroundPipeline

app = typer.Typer(no_args_is_help=True, add_completion=False, help="GraphQL, Arrow and events over PostgreSQL.")
console = Console()
DEFAULT_URL = Settings().database_url


def _server(settings: Settings) -> uvicorn.Server:
    from quiver.http.app import create_app

    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_level="warning",
                            lifespan="on")
    return uvicorn.Server(config)


@app.command()
def serve(
    database_url: Annotated[str, typer.Option(envvar="QUIVER_DATABASE_URL", help="PostgreSQL URL")] = DEFAULT_URL,
    schema: Annotated[list[str], typer.Option(help="PostgreSQL schema to expose (repeatable)")] = ["public"],  # noqa: B006
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    flight_port: Annotated[int | None, typer.Option(help="Arrow Flight port (default: QUIVER_FLIGHT_PORT or 8815)")]
    = None,
    no_flight: Annotated[bool, typer.Option(help="Serve HTTP only")] = False,
) -> None:
    """Serve GraphQL over HTTP (JSON and Arrow) and Arrow Flight for a PostgreSQL database.

    Everything else (tokens, TLS, limits) comes from QUIVER_* environment variables.
    """
    overrides: dict[str, object] = {"database_url": database_url, "schemas": schema, "host": host, "port": port}
    if flight_port is not None:
        overrides["flight_port"] = flight_port
    if no_flight:
        overrides["flight_port"] = None
    settings = Settings(**overrides)  # type: ignore[arg-type]
    console.print(f"Quiver on http://{host}:{port}/graphql (GraphiQL in a browser)")
    if settings.flight_port is not None:
        scheme = "grpc+tls" if settings.tls_cert else "grpc"
        console.print(f"Arrow Flight on {scheme}://{host}:{settings.flight_port}")
    _server(settings).run()


@app.command()
def demo(
    orders: Annotated[int, typer.Option(help="Number of demo orders (1k to 10M)")] = 20_000,
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    flight_port: Annotated[int, typer.Option(help="Arrow Flight port")] = 8815,
    pg_port: Annotated[int, typer.Option(help="Port of the embedded PostgreSQL")] = 15434,
    nats_port: Annotated[int, typer.Option(help="Port of the embedded NATS (JetStream)")] = 14322,
    data_dir: Annotated[Path, typer.Option(help="Where the embedded PostgreSQL keeps its data")] = Path(".quiver-demo"),
    reload: Annotated[bool, typer.Option(help="Regenerate the demo data even if present")] = False,
    exit_after_tour: Annotated[bool, typer.Option(help="Stop after the tour instead of serving")] = False,
) -> None:
    """Embedded PostgreSQL, demo data, the server and a tour of example queries."""
    from quiver.demo import generate
    from quiver.demo.tour import run_tour
    from quiver.embedded.nats import EmbeddedNats
    from quiver.embedded.postgres import EmbeddedPostgres

    root = data_dir.resolve()
    pg = EmbeddedPostgres(root / "postgres", pg_port)
    nats = EmbeddedNats(root / "nats", nats_port, nats_port + 1)
    console.print(f"[bold]1/5[/] starting embedded PostgreSQL on 127.0.0.1:{pg_port} and NATS JetStream on "
                  f"127.0.0.1:{nats_port} (data in {root})")
    pg.start()
    server: uvicorn.Server | None = None
    pipeline: BackgroundPipeline | None = None
    try:
        nats.start()
        pg.create_database("quiver_demo")
        url = pg.url("quiver_demo")
        with psycopg.connect(url) as conn:
            loaded = conn.execute("SELECT to_regclass('public.orders') IS NOT NULL").fetchone()
            count = conn.execute("SELECT count(*) FROM orders").fetchone() if loaded and loaded[0] else None
            if reload or count is None or count[0] < orders:
                console.print(f"[bold]2/5[/] loading {orders:,} demo orders with COPY")
                began = time.perf_counter()
                generate.install_schema(conn)
                counts = generate.load(conn, orders)
                conn.commit()
                console.print(f"      {counts} in {time.perf_counter() - began:.1f} s")
            else:
                console.print(f"[bold]2/5[/] demo data already loaded ({count[0]:,} orders); --reload to redo")
        settings = Settings(database_url=url, port=port, flight_port=flight_port, nats_url=nats.url,
                            chdb_path=str(root / "chdb"))
        pipeline = _start_events(settings)
        server = _server(settings)
        thread = threading.Thread(target=server.run, daemon=True)
        console.print(f"[bold]4/5[/] starting Quiver on http://127.0.0.1:{port}")
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise typer.Exit(code=1)
            time.sleep(0.05)
        console.print("[bold]5/5[/] a tour of example queries")
        run_tour(f"http://127.0.0.1:{port}", console, f"grpc://127.0.0.1:{flight_port}")
        _events_step(settings, pipeline)
        console.rule()
        console.print(f"GraphiQL: [link]http://127.0.0.1:{port}/graphql[/link]  (open it in a browser)")
        if not exit_after_tour:
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            console.print("Serving; press Ctrl-C to stop everything.")
            while not stop.wait(0.5) and thread.is_alive():
                pass
    finally:
        if server is not None:
            server.should_exit = True
            time.sleep(0.3)
        if pipeline is not None:
            pipeline.stop()
        console.print("stopping embedded NATS and PostgreSQL")
        nats.stop()
        pg.stop()


def _start_events(settings: Settings) -> BackgroundPipeline:
    """Capture changes of every demo table and run the relay and the chDB sink beside the server."""
    from quiver.events import capture
    from quiver.events.runner import BackgroundPipeline
    from quiver.events.sinks.chdb import ChdbSink
    from quiver.schema.introspect import introspect

    with psycopg.connect(settings.database_url) as conn:
        tables = [e for e in introspect(conn, settings.schemas).entities.values() if not e.is_view]
        capture.install(conn, tables)
    console.print("[bold]3/5[/] capturing changes: outbox → NATS JetStream → chDB (embedded ClickHouse)")
    pipeline = BackgroundPipeline(settings, [ChdbSink(Path(settings.chdb_path))])
    pipeline.start()
    return pipeline


def _events_step(settings: Settings, pipeline: BackgroundPipeline) -> None:
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
    sink = pipeline.sinks[0]
    deadline = time.monotonic() + 60
    seen = 0
    while time.monotonic() < deadline:
        seen = sink.query_arrow("SELECT count() AS n FROM quiver.events FINAL").column("n")[0].as_py()  # type: ignore[attr-defined]
        if seen >= wanted:
            break
        time.sleep(0.2)
    table = sink.query_arrow(  # type: ignore[attr-defined]
        "SELECT entity, op, count() AS events, max(occurred_at) AS latest FROM quiver.events FINAL "
        "GROUP BY entity, op ORDER BY entity, op")
    console.print(f"{seen:,} of {wanted:,} captured events are in chDB:")
    for record in table.to_pylist():
        console.print(f"  {record['entity']:<12} {record['op']:<7} {record['events']:>6}   latest {record['latest']}")


@app.command()
def query(
    graphql: Annotated[str | None, typer.Argument(help="The GraphQL query; '-' reads it from stdin")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the query from this file")] = None,
    url: Annotated[str, typer.Option(envvar="QUIVER_FLIGHT_URL",
                                     help="Flight URL: grpc://host:port or grpc+tls://host:port")]
    = "grpc://127.0.0.1:8815",
    token: Annotated[str | None, typer.Option(envvar="QUIVER_TOKEN", help="Bearer token")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the result to this file")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="table, csv, parquet or arrow "
                                            "(default: from the output file's extension, else table)")] = None,
    variables: Annotated[str | None, typer.Option("--variables", "-V",
                                                  help="Variables: a JSON object, or @file.json")] = None,
    compression: Annotated[str | None, typer.Option(help="Compress batches on the wire: lz4 or zstd")] = None,
) -> None:
    """Run a GraphQL query over Arrow Flight: print a table, or write csv, parquet or an Arrow file."""
    from quiver.query_command import query_command

    query_command(graphql, file, url, token, output, fmt, variables, compression)


def _events() -> typer.Typer:
    from quiver.events.cli import app as events_app

    return events_app


app.add_typer(_events(), name="events")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
