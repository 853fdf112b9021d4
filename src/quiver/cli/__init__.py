"""The ``quiver`` command: one module per sub-command (serve, demo, query, events)."""

from __future__ import annotations

import typer

from quiver.cli import demo, events, query, serve

app = typer.Typer(no_args_is_help=True, add_completion=False, help="GraphQL, Arrow and events over PostgreSQL.")
app.command()(serve.serve)
app.command()(demo.demo)
app.command()(query.query)
app.add_typer(events.app, name="events")


def main() -> None:
    app()
