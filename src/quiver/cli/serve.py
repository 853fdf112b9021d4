"""``quiver serve``: GraphQL over HTTP (JSON and Arrow) and Arrow Flight for one database."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from quiver.config import Settings
from quiver.server import StartupError, preflight
from quiver.server import serve as run_server

DEFAULT_URL = Settings().database_url


def serve(
    database_url: Annotated[str, typer.Option(envvar="QUIVER_DATABASE_URL", help="PostgreSQL URL")] = DEFAULT_URL,
    schema: Annotated[list[str] | None, typer.Option(
        help="PostgreSQL schema to expose (repeatable; default: QUIVER_SCHEMAS or public)")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    flight_port: Annotated[int | None, typer.Option(help="Arrow Flight port (default: QUIVER_FLIGHT_PORT or 8815)")]
    = None,
    no_flight: Annotated[bool, typer.Option(help="Serve HTTP only")] = False,
) -> None:
    """Serve GraphQL over HTTP (JSON and Arrow) and Arrow Flight for a PostgreSQL database.

    Everything else (tokens, TLS, limits) comes from QUIVER_* environment variables.
    """
    overrides: dict[str, object] = {"database_url": database_url, "host": host, "port": port}
    if schema:
        overrides["schemas"] = schema
    if flight_port is not None:
        overrides["flight_port"] = flight_port
    if no_flight:
        overrides["flight_port"] = None
    settings = Settings(**overrides)  # type: ignore[arg-type]
    console = Console()
    try:
        preflight(settings)
    except StartupError as error:
        Console(stderr=True).print(f"[red]error[/]: {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    console.print(f"Quiver on http://{host}:{port}/graphql (GraphiQL in a browser)")
    if settings.flight_port is not None:
        scheme = "grpc+tls" if settings.tls_cert else "grpc"
        console.print(f"Arrow Flight on {scheme}://{host}:{settings.flight_port}")
    run_server(settings)
