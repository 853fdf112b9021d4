"""``quiver demo``: the whole loop on one machine (the steps are in ``quiver.demo.run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from quiver.demo.run import DemoError, DemoOptions, run_demo


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
    console = Console()
    options = DemoOptions(orders=orders, port=port, flight_port=flight_port, pg_port=pg_port, nats_port=nats_port,
                          data_dir=data_dir, reload=reload, exit_after_tour=exit_after_tour)
    try:
        run_demo(options, console)
    except DemoError as error:
        console.print(f"[red]quiver demo: {error}[/]")
        raise typer.Exit(code=1) from None
