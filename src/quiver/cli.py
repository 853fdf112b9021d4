"""The ``quiver`` command: serve, demo."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import psycopg
import typer
import uvicorn
from rich.console import Console

from quiver.config import Settings

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
    data_dir: Annotated[Path, typer.Option(help="Where the embedded PostgreSQL keeps its data")] = Path(".quiver-demo"),
    reload: Annotated[bool, typer.Option(help="Regenerate the demo data even if present")] = False,
    exit_after_tour: Annotated[bool, typer.Option(help="Stop after the tour instead of serving")] = False,
) -> None:
    """Embedded PostgreSQL, demo data, the server and a tour of example queries."""
    from quiver.demo import generate
    from quiver.demo.tour import run_tour
    from quiver.embedded.postgres import EmbeddedPostgres

    pg = EmbeddedPostgres(data_dir.resolve() / "postgres", pg_port)
    console.print(f"[bold]1/4[/] starting embedded PostgreSQL on 127.0.0.1:{pg_port} ({pg.data_dir})")
    pg.start()
    server: uvicorn.Server | None = None
    try:
        pg.create_database("quiver_demo")
        url = pg.url("quiver_demo")
        with psycopg.connect(url) as conn:
            loaded = conn.execute("SELECT to_regclass('public.orders') IS NOT NULL").fetchone()
            count = conn.execute("SELECT count(*) FROM orders").fetchone() if loaded and loaded[0] else None
            if reload or count is None or count[0] < orders:
                console.print(f"[bold]2/4[/] loading {orders:,} demo orders with COPY")
                began = time.perf_counter()
                generate.install_schema(conn)
                counts = generate.load(conn, orders)
                conn.commit()
                console.print(f"      {counts} in {time.perf_counter() - began:.1f} s")
            else:
                console.print(f"[bold]2/4[/] demo data already loaded ({count[0]:,} orders); --reload to redo")
        settings = Settings(database_url=url, port=port, flight_port=flight_port)
        server = _server(settings)
        thread = threading.Thread(target=server.run, daemon=True)
        console.print(f"[bold]3/4[/] starting Quiver on http://127.0.0.1:{port}")
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise typer.Exit(code=1)
            time.sleep(0.05)
        console.print("[bold]4/4[/] a tour of example queries")
        run_tour(f"http://127.0.0.1:{port}", console, f"grpc://127.0.0.1:{flight_port}")
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
        console.print("stopping embedded PostgreSQL")
        pg.stop()


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
