"""``quiver events install | uninstall | relay | consume | run | status | read | dlq``."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from quiver.config import Settings
from quiver.events import bus, capture
from quiver.events.metrics import EventMetrics
from quiver.schema.introspect import introspect
from quiver.schema.model import Entity

if TYPE_CHECKING:
    from quiver.events.sinks.base import Sink

app = typer.Typer(no_args_is_help=True, help="Change events: outbox, relay to JetStream, sinks.")
console = Console()

DatabaseUrl = Annotated[str | None, typer.Option(help="PostgreSQL URL (default QUIVER_DATABASE_URL)")]
SinkNames = Annotated[list[str] | None, typer.Option("--sink", help="Sink to feed (repeatable; default QUIVER_SINKS)")]


def _settings(database_url: str | None = None, **extra: Any) -> Settings:
    overrides = {k: v for k, v in {"database_url": database_url, **extra}.items() if v is not None}
    return Settings(**overrides)


def _sinks(names: list[str], settings: Settings) -> list[Sink]:
    """The named sinks; an unknown name is a usage error that lists the choices."""
    from quiver.events.sinks.registry import UnknownSink, check_names, make_sink

    try:
        return [make_sink(name, settings) for name in check_names(names)]
    except UnknownSink as error:
        raise typer.BadParameter(str(error), param_hint="--sink") from None


def _entities(settings: Settings) -> list[Entity]:
    with psycopg.connect(settings.database_url) as conn:
        model = introspect(conn, settings.schemas, settings.exclude_tables)
    tables = [e for e in model.entities.values() if not e.is_view]
    if settings.capture_tables:
        tables = [e for e in tables if e.name in settings.capture_tables]
    return tables


@app.command()
def install(database_url: DatabaseUrl = None) -> None:
    """Create the outbox and capture triggers on the configured tables (idempotent)."""
    settings = _settings(database_url)
    entities = _entities(settings)
    # New tables are followed only when capture covers whole schemas (no table list, no exclusions).
    follow = [] if settings.capture_tables or settings.exclude_tables else settings.schemas
    with psycopg.connect(settings.database_url) as conn:
        installed = capture.install(conn, entities, schemas=follow)
    console.print(f"capturing {', '.join(e.name for e in entities) or 'no table yet'} into {capture.OUTBOX}")
    unkeyed = [e.name for e in entities if not e.primary_key]
    if unkeyed:
        console.print(f"[yellow]warning:[/] no primary key on {', '.join(unkeyed)}: their rows are identified by "
                      "their whole content (an update is a delete plus an insert)")
    if installed.follows_new_tables:
        console.print(f"new tables in {', '.join(follow)} are captured as they are created; DDL re-images a table")
    elif installed.why_not:
        console.print(f"[yellow]warning:[/] new tables will NOT be captured by themselves and DDL will not re-image "
                      f"rows: {installed.why_not}. Run `quiver events install` again after creating tables; "
                      "`quiver events status` lists what is not captured.")


@app.command()
def uninstall(database_url: DatabaseUrl = None,
              drop_outbox: Annotated[bool, typer.Option(help="Also drop the outbox and its events")] = False) -> None:
    """Remove the capture triggers (and, with --drop-outbox, the outbox)."""
    settings = _settings(database_url)
    with psycopg.connect(settings.database_url) as conn:
        capture.uninstall(conn, _entities(settings), drop_outbox=drop_outbox)
    console.print("capture removed")


async def _run(settings: Settings, relay: bool, sinks: list[Sink]) -> None:
    from quiver.events.runner import run_pipeline

    metrics = EventMetrics()
    if settings.events_metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(settings.events_metrics_port, addr=settings.host, registry=metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    from quiver.events.supervisor import watch_supervisor

    watcher = asyncio.create_task(watch_supervisor(stop))  # a stage of `events run` stops when its supervisor dies
    try:
        await run_pipeline(settings, relay=relay, sinks=sinks, stop=stop, metrics=metrics)
    finally:
        watcher.cancel()


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


@app.command()
def relay(database_url: DatabaseUrl = None) -> None:
    """Publish outbox events to JetStream until stopped."""
    _logging()
    asyncio.run(_run(_settings(database_url), relay=True, sinks=[]))


@app.command()
def consume(sink: SinkNames = None) -> None:
    """Feed sinks from JetStream until stopped."""
    _logging()
    settings = _settings()
    sinks = _sinks(sink or settings.sinks, settings)
    asyncio.run(_run(settings, relay=False, sinks=sinks))


@app.command()
def run(database_url: DatabaseUrl = None, sink: SinkNames = None,
        in_process: Annotated[bool, typer.Option(
            "--in-process", help="Relay and consumers as tasks of this one process, unsupervised")] = False) -> None:
    """Supervise the relay and one consumer per sink, each a child process restarted when it dies.

    SIGTERM or SIGINT stops every stage and exits 0. With QUIVER_EVENTS_METRICS_PORT=P the relay serves
    metrics on P and the n-th sink's consumer on P + n.
    """
    _logging()
    settings = _settings(database_url)
    names = sink or settings.sinks
    if in_process:
        asyncio.run(_run(settings, relay=True, sinks=_sinks(names, settings)))
        return
    from quiver.events.sinks.registry import UnknownSink, check_names
    from quiver.events.supervisor import pipeline_stages, supervise

    try:
        check_names(names)  # names only: each sink is opened by its own consumer (chDB by one process at a time)
    except UnknownSink as error:
        raise typer.BadParameter(str(error), param_hint="--sink") from None
    supervise(pipeline_stages(names, database_url=database_url, metrics_port=settings.events_metrics_port))


@app.command()
def status(
    database_url: DatabaseUrl = None,
    server: Annotated[str | None, typer.Option(help="A `quiver serve` URL: adds its live datasets "
                                               "(state, why not cached, rows, watermark) from its /metrics")] = None,
) -> None:
    """Per-stage counts and lags: outbox, JetStream, each sink's consumer, and a server's live datasets."""
    settings = _settings(database_url)
    table = Table("stage", "measure", "value")
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            f"SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FILTER (WHERE published_at IS NOT NULL), "
            f"coalesce(extract(epoch FROM clock_timestamp() - min(occurred_at) FILTER (WHERE published_at IS NULL)), 0)"
            f" FROM {capture.OUTBOX}").fetchone()
        coverage = capture.coverage(conn, settings.schemas)
        holder = capture.oldest_writer(conn)
    assert row is not None
    table.add_row("outbox", "backlog (unpublished)", f"{row[0]:,}")
    table.add_row("outbox", "published, kept for retention", f"{row[1]:,}")
    table.add_row("outbox", "oldest unpublished (s)", f"{float(row[2]):.1f}")
    if holder is not None:
        late = holder.seconds >= settings.events_xmin_warn_seconds
        table.add_row("relay gate", "oldest writing transaction (cluster-wide)",
                      ("[yellow]" if late else "") + f"{holder.seconds:.1f} s: pid {holder.pid} in database "
                      f"{holder.database} ({holder.state})" + (" holds every later event back[/]" if late else ""))
    for tc in coverage:
        state = "captured" if tc.captured else "[red]NOT captured[/] (run quiver events install)"
        if tc.captured and not tc.has_primary_key:
            state += " (no primary key: rows identified by content)"
        table.add_row("capture", f"{tc.schema}.{tc.table}", state)

    async def jetstream() -> None:
        nc, js = await bus.connect(settings.nats_url, name="quiver-status")
        try:
            topology = bus.Topology(settings.events_namespace)
            info = await js.stream_info(topology.stream)
            table.add_row("jetstream", "messages", f"{info.state.messages:,}")
            table.add_row("jetstream", "last sequence", f"{info.state.last_seq:,}")
            for name in settings.sinks:
                try:
                    consumer = await js.consumer_info(topology.stream, f"quiver-sink-{name}")
                except Exception:  # noqa: BLE001 - a sink that never ran has no consumer yet
                    table.add_row(f"sink {name}", "consumer", "not created yet")
                    continue
                table.add_row(f"sink {name}", "pending (not delivered)", f"{consumer.num_pending:,}")
                table.add_row(f"sink {name}", "delivered, not acknowledged", f"{consumer.num_ack_pending:,}")
                table.add_row(f"sink {name}", "redelivered", f"{consumer.num_redelivered:,}")
            try:
                dlq = await js.stream_info(topology.dlq_stream)
                table.add_row("dead letters", "messages", f"{dlq.state.messages:,}")
            except Exception:  # noqa: BLE001
                pass
        finally:
            await nc.close()

    try:
        asyncio.run(jetstream())
    except Exception as error:  # noqa: BLE001 - status still shows what it could read
        table.add_row("jetstream", "unreachable", str(error))

    async def visible(name: str) -> str:
        [target] = _sinks([name], settings)
        try:
            return f"{await asyncio.wait_for(target.count_visible(), STATUS_READ_TIMEOUT):,}"
        finally:
            await target.close()

    for name in settings.sinks:
        try:
            count = asyncio.run(visible(name))
        except Exception as error:  # noqa: BLE001 - a sink down (or chDB held by its consumer) is a status too
            count = f"unreadable: {str(error)[:300] or type(error).__name__}"
        table.add_row(f"sink {name}", "visible events (documented read)", count)
    if server is not None:
        from quiver.live.report import live_lines

        for entity, measure, value in live_lines(server):
            table.add_row(f"live {entity}", measure, value)
    console.print(table)


STATUS_READ_TIMEOUT = 15.0  # seconds status waits for one sink's count


@app.command()
def read(
    sink: Annotated[str, typer.Option(help="The sink to read (chdb, clickhouse, search)")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl: one JSON object per event; "
                                     "arrow: an Arrow IPC stream of the events")] = "jsonl",
    count: Annotated[bool, typer.Option("--count", help="Print only how many events are visible")] = False,
) -> None:
    """Print what a sink holds as its readers see it: every event once, by seq (the sink's documented read).

    Columns: event_id, seq, entity, entity_id, op, occurred_at_us, data, changed, actor, tenant_id.
    A chDB path opens in one process at a time: read chDB while its consumer is stopped.
    """
    import orjson
    import pyarrow as pa

    from quiver.events.sinks.base import VISIBLE_FIELDS, VISIBLE_SCHEMA, SinkError, visible_table

    if fmt not in ("jsonl", "arrow"):
        raise typer.BadParameter(f"{fmt!r}: choose jsonl or arrow", param_hint="--format")
    [target] = _sinks([sink], _settings())

    async def documented_read() -> Any:
        try:
            return await target.count_visible() if count else await target.visible_events()
        finally:
            await target.close()

    try:
        result = asyncio.run(documented_read())
    except SinkError as error:
        typer.echo(f"cannot read sink {sink}: {error}", err=True)
        raise typer.Exit(1) from None
    out = sys.stdout.buffer
    if count:
        out.write(f"{result}\n".encode())
    elif fmt == "arrow":
        with pa.ipc.new_stream(out, VISIBLE_SCHEMA) as writer:
            writer.write_table(visible_table(result))
    else:
        out.writelines(orjson.dumps(dict(zip(VISIBLE_FIELDS, row, strict=True))) + b"\n" for row in result)
    out.flush()


dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: events a sink refused for good.")
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(sink: Annotated[str | None, typer.Option(help="Only this sink's dead letters")] = None) -> None:
    """Show dead letters: sink, reason, attempts, event."""
    from quiver.events.dlq import dead_letters

    settings = _settings()

    async def read() -> list[Any]:
        nc, js = await bus.connect(settings.nats_url, name="quiver-dlq")
        try:
            return await dead_letters(js, bus.Topology(settings.events_namespace), sink)
        finally:
            await nc.close()

    letters = asyncio.run(read())
    table = Table("#", "sink", "event", "entity", "op", "seq", "attempts", "reason")
    for letter in letters:
        event = letter.event
        table.add_row(str(letter.stream_seq), letter.sink, event["event_id"], event["entity"], event["op"],
                      str(event["seq"]), str(letter.attempts), letter.reason[:200])
    console.print(table)
    console.print(f"{len(letters)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay(sink: Annotated[str, typer.Option(help="The sink whose dead letters to write again")]) -> None:
    """Write a sink's dead letters into it again (after a fix); each is removed once accepted."""
    from quiver.events.dlq import replay

    settings = _settings()
    [target] = _sinks([sink], settings)

    async def run() -> int:
        nc, js = await bus.connect(settings.nats_url, name="quiver-dlq")
        try:
            return await replay(js, bus.Topology(settings.events_namespace), target)
        finally:
            await target.close()
            await nc.close()

    console.print(f"replayed {asyncio.run(run())} dead letter(s) into {sink}")


from quiver.cli.backfill import backfill  # noqa: E402 - the command lives in cli/backfill.py

app.command()(backfill)
