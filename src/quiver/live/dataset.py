"""One live entity: loaded from a PostgreSQL snapshot, then kept equal to the table by its event stream.

Why the load misses nothing (docs/live.md has the argument in full): the reader's position
``P`` (the stream's last sequence) is taken *before* the snapshot's transaction starts. A
change the snapshot does not show committed after the snapshot began, so the relay
published it after its commit, after ``P``: replaying every message after ``P`` applies it.
Messages after ``P`` that the snapshot already shows are applied again; each carries the
whole row, and one key's events are published in ``seq`` order (a row lock orders their
transactions, the relay publishes by ``seq`` once no older transaction runs), so the
replay leaves each key as its last event left it. Until the replay has caught up with the
stream the dataset is not served.

Each batch of events is converted by PostgreSQL into the Arrow plane's typed columns
(``sql/images.typed_rows``: the very SQL of a table read), folded to the last event per
key, and applied with its watermark in one DuckDB transaction (``store.Store.apply``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
import pyarrow as pa
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError

from quiver.arrow.convert import conform, converters
from quiver.config import Settings
from quiver.db import AdbcPool
from quiver.errors import UnsupportedValue, classify
from quiver.events.reading import StreamReader
from quiver.execute.arrow_plane import ArrowQuery
from quiver.execute.session import ReadSession
from quiver.live.store import Change, Store, to_stored
from quiver.plan import nodes
from quiver.schema.model import Entity, Kind
from quiver.sql.images import typed_rows
from quiver.sql.live import LiveTable
from quiver.sql.params import SettingParams

log = logging.getLogger("quiver.live")
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
ROW_OPS = ("insert", "update", "snapshot")


class State(StrEnum):
    LOADING = "loading"  # reading the snapshot
    CATCHING_UP = "catching up"  # replaying the stream after the snapshot's position
    LIVE = "live"  # served
    NOT_CACHED = "not cached"  # never served; ``reason`` says why


class OverMemory(Exception):
    """The live datasets would hold more than ``QUIVER_LIVE_MEMORY_MB``."""


@dataclass
class Dataset:
    entity: Entity
    store: Store
    settings: Settings
    adbc: AdbcPool
    binary_text: frozenset[str] = frozenset()
    state: State = State.LOADING
    reason: str = ""
    seq: int = 0  # the highest outbox seq applied (the snapshot: the highest committed before it)
    stream_seq: int = 0  # the last JetStream sequence applied
    rows: int = 0
    applied: asyncio.Condition = field(default_factory=asyncio.Condition)
    loaded_at: float = 0.0

    @property
    def name(self) -> str:
        return self.entity.list_field

    @property
    def table(self) -> LiveTable:
        return LiveTable(self.name, self.binary_text)

    @property
    def whole(self) -> nodes.ListRoot:
        return nodes.ListRoot(self.name, nodes.ListQuery(self.entity, nodes.whole_row(self.entity)))

    @property
    def key_fields(self) -> list[str]:
        return [self.entity.columns[c].field_name for c in self.entity.primary_key]

    def refuse(self, reason: str) -> None:
        """Stop serving and keep nothing: queries go to PostgreSQL from now on."""
        self.state, self.reason = State.NOT_CACHED, reason
        self.store.drop(self.name)
        self.rows = 0
        log.warning("live dataset %s not cached: %s", self.name, reason)

    # -- the snapshot ---------------------------------------------------------------------------

    def load(self, stream_seq: int, memory_bytes: int) -> None:
        """The table as of one snapshot into a fresh live table (blocking)."""
        query = ArrowQuery.compile(self.whole)
        enums = {c.field_name: c.type.enum_labels for c in self.entity.columns.values()
                 if c.type.kind is Kind.ENUM and not c.type.is_array and c.type.enum_labels}
        self.store.create(self.name, query.schema, enums)
        seq = newest_seq(self.adbc)
        rows = 0
        for batch in query.batches(self.adbc, self.settings):
            self.store.load(self.name, batch)
            rows += batch.num_rows
            if self.store.memory_bytes() > memory_bytes:
                raise OverMemory(f"over QUIVER_LIVE_MEMORY_MB ({memory_bytes // 2**20:,} MB) after {rows:,} rows")
        self.store.mark(self.name, seq, stream_seq)
        self.seq, self.stream_seq, self.rows = seq, stream_seq, rows
        self.loaded_at = time.time()

    # -- the stream -----------------------------------------------------------------------------

    def apply(self, events: list[dict[str, Any]], stream_seq: int, memory_bytes: int) -> None:
        """One batch of events (any entities', in ``seq`` order) applied with its watermark (blocking)."""
        own = [e for e in events if e.get("entity") == self.entity.event_name and e["seq"] > 0]
        changes: list[Change] = []
        segment: list[dict[str, Any]] = []
        truncate = False
        for event in own:
            if event["op"] == "truncate":
                changes.append(self._fold(truncate, segment))
                segment, truncate = [], True
            else:
                segment.append(event)
        changes.append(self._fold(truncate, segment))
        seq = max([self.seq, *(e["seq"] for e in own)])
        self.store.apply(self.name, self.key_fields, changes, seq, stream_seq)
        self.seq, self.stream_seq = seq, stream_seq
        if own:
            self.rows = self.store.rows(self.name)
            if self.store.memory_bytes() > memory_bytes:
                raise OverMemory(f"over QUIVER_LIVE_MEMORY_MB ({memory_bytes // 2**20:,} MB) at {self.rows:,} rows")

    def _fold(self, truncate: bool, events: list[dict[str, Any]]) -> Change:
        """The last event of each key among ``events``: keys to delete, rows to insert."""
        rows = self._typed(events)
        keys = rows.select(self.key_fields)
        last: dict[tuple[Any, ...], int] = {}
        for i, key in enumerate(zip(*(keys.column(k).to_pylist() for k in self.key_fields), strict=True)):
            last[key] = i
        kept = sorted(i for i in last.values() if events[i]["op"] in ROW_OPS)
        touched = pa.array(sorted(last.values()), pa.int64())
        return Change(truncate, keys.take(touched), rows.take(pa.array(kept, pa.int64())))

    def _typed(self, events: list[dict[str, Any]]) -> pa.Table:
        """The events' row images as stored rows, converted by PostgreSQL as a table read converts them."""
        query = ArrowQuery.compile(self.whole)
        if not events:
            return to_stored(query.schema.empty_table())
        images = [e["data"] if isinstance(e["data"], str) else _json(e["data"]) for e in events]
        params = SettingParams()
        sql = typed_rows(self.entity, images, params)
        schema, plan = converters(self.whole)
        session = ReadSession(self.adbc, timeout_ms=self.settings.statement_timeout_ms,
                              batch_bytes=self.settings.arrow_batch_bytes)
        batches = []
        try:
            session.begin(params.settings)
            session.stream(sql)
            while (batch := session.next_batch()) is not None:
                if batch.num_rows:
                    batches.append(conform(batch, schema, plan))
        finally:
            session.end()
        table = to_stored(pa.Table.from_batches(batches, schema=schema))
        if table.num_rows != len(events):
            raise RuntimeError(f"{len(events)} images became {table.num_rows} rows")
        return table

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, reader: StreamReader, memory_bytes: int) -> None:
        """Load, replay, then follow the stream until cancelled; a refusal ends it."""
        try:
            await self._run(reader, memory_bytes)
        except UnsupportedValue as error:
            self.refuse(f"a value the Arrow planes cannot carry: {error}")
        except (OverMemory, Broken) as error:
            self.refuse(str(error))
        finally:
            await reader.close()

    async def _run(self, reader: StreamReader, memory_bytes: int) -> None:
        await _retrying(f"{self.name}: stream position", reader.start_at_end)
        start = (reader.next_stream_seq or 1) - 1
        await _retrying(f"{self.name}: snapshot", functools.partial(asyncio.to_thread, self.load, start, memory_bytes))
        self.state = State.CATCHING_UP
        target = await _retrying(f"{self.name}: catch-up position", functools.partial(self._caught_up_at, reader))
        attempt = 0
        while True:
            try:
                events = await reader.read()
                caught_up = self.state is not State.LIVE and (
                    (reader.next_stream_seq or 1) - 1 >= target or (not events and await reader.caught_up()))
                attempt = 0
            except Exception as error:  # noqa: BLE001 - NATS away: the reader resumes where it stopped
                log.info("live dataset %s: reading the stream: %s; retrying", self.name, type(error).__name__)
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
                continue
            if events:
                position = (reader.next_stream_seq or 1) - 1
                await _retrying(f"{self.name}: apply", functools.partial(
                    asyncio.to_thread, self.apply, events, position, memory_bytes))
            if caught_up:
                self.state = State.LIVE
                log.info("live dataset %s: live at seq %s (%s rows)", self.name, self.seq, f"{self.rows:,}")
            async with self.applied:
                self.applied.notify_all()

    async def _caught_up_at(self, reader: StreamReader) -> int:
        """The stream position past which the replay shows every change the snapshot showed: the subject's
        last message once every outbox row committed by the snapshot's end is published. Without it a
        steady writer (never an empty read) would keep the dataset catching up forever."""
        newest = await asyncio.to_thread(newest_seq, self.adbc)
        while await asyncio.to_thread(unpublished, self.adbc, newest):
            await asyncio.sleep(0.05)
        return await last_message(reader.js, reader.topology.stream, reader.subject)

    async def wait_applied(self, stream_seq: int, deadline: float) -> bool:
        """Whether the dataset applied the stream up to ``stream_seq`` before ``deadline`` (monotonic)."""
        async with self.applied:
            while self.stream_seq < stream_seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.state is State.NOT_CACHED:
                    return False
                try:
                    await asyncio.wait_for(self.applied.wait(), remaining)
                except TimeoutError:
                    return False
        return True


class Broken(Exception):
    """Applying or loading failed for a reason other than an outage: a bug, never retried into staleness."""


async def _retrying(what: str, call: Any) -> Any:
    """``await call()`` until it succeeds while PostgreSQL or NATS is away; anything else is ``Broken``
    (the dataset is then not cached, rather than served stale while it retries forever)."""
    attempt = 0
    while True:
        try:
            return await call()
        except (UnsupportedValue, OverMemory):
            raise
        except Exception as error:
            if not _outage(error):
                log.error("live dataset %s failed", what, exc_info=error)
                raise Broken(f"{what}: {type(error).__name__}: {error}") from error
            log.warning("live dataset %s failed (%s: %s); retrying", what, type(error).__name__, error)
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            attempt += 1


def _outage(error: BaseException) -> bool:
    """PostgreSQL or NATS unreachable (retry), as opposed to a failure that would repeat."""
    if isinstance(error, NatsError | OSError | TimeoutError):
        return True
    return classify(error) == "DATABASE_UNAVAILABLE"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _scalar(pool: AdbcPool, sql: str, params: tuple[Any, ...] = ()) -> Any:
    conn = pool.acquire()
    ok = False
    try:
        cursor = conn.cursor()
        cursor.execute(sql, params or None)
        found = cursor.fetchone()
        cursor.close()
        conn.rollback()
        ok = True
        return found[0] if found else None
    finally:
        pool.release(conn, ok)


def newest_seq(pool: AdbcPool) -> int:
    """The highest outbox seq committed now: a snapshot started after this shows at least every change to it."""
    return int(_scalar(pool, "SELECT coalesce(max(seq), 0) FROM quiver.outbox") or 0)


def unpublished(pool: AdbcPool, upto: int) -> bool:
    """Whether an outbox row with seq <= ``upto`` still waits for the relay."""
    return bool(_scalar(pool, "SELECT EXISTS (SELECT FROM quiver.outbox WHERE published_at IS NULL "
                              "AND seq <= $1)", (upto,)))


async def last_message(js: Any, stream: str, subject: str) -> int:
    """The stream sequence of ``subject``'s last message (0: none yet)."""
    try:
        last = await js.get_last_msg(stream, subject)
    except NotFoundError:
        return 0
    return int(last.seq or 0)
