"""``quiver events backfill [ENTITY...]``: existing rows as ``snapshot`` events (``events/backfill.py``)."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from quiver.config import Settings
from quiver.events import backfill as engine


def backfill(
    entities: Annotated[list[str] | None, typer.Argument(metavar="ENTITY",
        help="Captured tables by entity name (schema-qualified outside public); "
        "default every captured table")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Connections writing chunks in parallel")] = 1,
    chunk_pages: Annotated[int, typer.Option(min=1, help="Heap pages (8 KiB) per chunk: one short "
                                             "transaction each")] = engine.DEFAULT_CHUNK_PAGES,
    where: Annotated[str | None, typer.Option(
        help="Your own SQL predicate over the table alias t (e.g. \"t.region = 'eu'\"): only matching rows "
        "are backfilled. Inserted as it is: it runs with your privileges")] = None,
    max_rate: Annotated[float | None, typer.Option(
        min=1, help="At most this many rows per second (default: as fast as it goes). The relay publishes in seq "
        "order, so live events wait behind the backfill's backlog; a rate below the relay's keeps their lag "
        "low")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume/--restart", help="Resume the unfinished run of the same entities and --where (default), "
        "or abandon it and start over")] = True,
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL URL (default QUIVER_DATABASE_URL)")] = None,
) -> None:
    """Emit every existing row of captured tables as a snapshot event, merged with the live stream by seq."""
    settings = Settings(database_url=database_url) if database_url else Settings()
    err = Console(stderr=True)
    out = Console()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("chunks  {task.fields[rows]:,} rows"), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=err, disable=not err.is_terminal, transient=False)
    lock = threading.Lock()
    state = {"task": -1, "rows": 0}

    def on_start(run: engine.Run) -> None:
        if run.resumed:
            out.print(f"resuming run {run.run_id}: {run.chunks_done:,} of {run.chunks:,} chunks already done")
        state["task"] = int(progress.add_task(f"backfill {', '.join(run.entities)}", total=run.chunks,
                                              completed=run.chunks_done, rows=0))

    def on_chunk(rows: int) -> None:
        with lock:
            state["rows"] += rows
            progress.update(state["task"], advance=1, rows=state["rows"])  # type: ignore[arg-type]

    try:
        with progress:
            result = engine.backfill(settings.database_url, entities or (), where=where, workers=workers,
                                     chunk_pages=chunk_pages, resume=resume, max_rate=max_rate, on_start=on_start,
                                     on_chunk=on_chunk)
    except engine.BackfillError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    run = result.run
    out.print(f"run {run.run_id}: {result.rows:,} snapshot events from {result.chunks:,} chunks of "
              f"{', '.join(run.entities)} in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s"
              + (f", {result.retries} chunk(s) retried after a deadlock" if result.retries else "") + ")")
