"""Outbox → JetStream, in ``seq`` order, never skipping a late commit.

A transaction can take outbox ``seq`` 10, let another take 11 and commit first, and
commit 10 later. A relay that remembers "published up to 11" would skip 10 forever.
This one keeps no high-water mark: it publishes unpublished rows in ``seq`` order,
but only rows whose transaction id is below the oldest transaction still running
(``pg_snapshot_xmin``), so no row it has not yet seen can ever appear *before* one it
publishes; then it marks the rows published. A crash between publishing and marking
publishes them again, which JetStream drops as duplicates (same ``Nats-Msg-Id``).

An event too large for a message (over the server's max_payload) is stored first in the
JetStream Object Store (``bus.LargeEvents``, key = event_id) and its message carries a small
reference (``bus.large_reference``); a republish finds the object stored and leaves it alone.
Reads are bounded by rows and by stored bytes, so large rows are read a few at a time.

Woken by LISTEN/NOTIFY, with a polling fallback; NATS or PostgreSQL down means the
events wait in the outbox and the relay retries with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from nats.js import JetStreamContext

from quiver.events import bus
from quiver.events.capture import CHANNEL, OUTBOX
from quiver.events.metrics import EventMetrics

log = logging.getLogger("quiver.relay")

_COLUMNS = """seq, event_id::text, entity, entity_id, op,
       CAST(floor(extract(epoch FROM occurred_at) * 1000000) AS bigint), data::text, changed, actor, tenant_id"""
_READY = f"FROM {OUTBOX} WHERE published_at IS NULL AND txid < pg_snapshot_xmin(pg_current_snapshot())"
# The first unpublished rows outside the seq span [low, high] of the batches in flight. Two index
# range scans: a filter "not one of these 20k seqs" would cost seconds per read. The read also stops
# once the rows' stored size (pg_column_size of data: read from the TOAST pointer, nothing is
# decompressed) passes %(bytes)s, the first row always included, so a run of large rows is read a
# few at a time; only the rows kept are detoasted and cast to text (the window streams, ~1 µs a row).
_FETCH = f"""
SELECT {_COLUMNS} FROM (
    SELECT ready.*, sum(pg_column_size(ready.data)) OVER (ORDER BY ready.seq ROWS UNBOUNDED PRECEDING) AS upto
    FROM (
        (SELECT * {_READY} AND seq < %(low)s ORDER BY seq LIMIT %(limit)s)
        UNION ALL
        (SELECT * {_READY} AND seq > %(high)s ORDER BY seq LIMIT %(limit)s)
    ) AS ready ORDER BY ready.seq LIMIT %(limit)s
) AS sized WHERE upto - pg_column_size(data) < %(bytes)s ORDER BY seq
"""
_MARK = f"UPDATE {OUTBOX} SET published_at = clock_timestamp() WHERE seq = ANY(%s)"
_PRUNE = f"DELETE FROM {OUTBOX} WHERE published_at < clock_timestamp() - make_interval(secs => %s)"
_BACKLOG = f"SELECT count(*) FROM {OUTBOX} WHERE published_at IS NULL"


@dataclass
class RelayConfig:
    database_url: str
    nats_url: str
    batch: int = 10_000  # outbox rows per read
    poll_interval: float = 0.5  # fallback when no NOTIFY arrives
    retention_seconds: float = 3600.0  # published rows kept this long, then pruned
    prune_every: float = 30.0
    max_backoff: float = 5.0
    publish_window: int = 64  # messages in flight at once
    events_per_message: int = 1000
    max_message_bytes: int = 1 << 20  # and never above the server's max_payload
    read_bytes: int = 32 << 20  # stored size of the rows per read (the first row always): bounds memory
    large_concurrency: int = 4  # large events stored in the Object Store at once
    topology: bus.Topology = field(default_factory=bus.Topology)


class Relay:
    def __init__(self, config: RelayConfig, metrics: EventMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or EventMetrics()
        self.published = 0
        self._large: bus.LargeEvents | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; every failure is retried with backoff."""
        failures = 0
        while not stop.is_set():
            try:
                await self._session(stop)
                failures = 0
            except (TimeoutError, psycopg.Error, OSError, Exception) as error:  # noqa: BLE001
                if stop.is_set():
                    return
                failures += 1
                delay = min(self.config.max_backoff, 0.1 * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0)
                log.warning("relay: %s: %s; retrying in %.2fs", type(error).__name__, error, delay)
                self.metrics.relay_errors.inc()
                await _sleep_or_stop(stop, delay)

    async def _session(self, stop: asyncio.Event) -> None:
        nc, js = await bus.connect(self.config.nats_url, name="quiver-relay")
        try:
            await bus.ensure_streams(js, self.config.topology)
            limit = min(self.config.max_message_bytes, bus.max_payload(js))
            connect = psycopg.AsyncConnection.connect
            async with await connect(self.config.database_url, autocommit=True) as reader, \
                    await connect(self.config.database_url, autocommit=True) as marker:
                wake = asyncio.Event()
                listener = asyncio.create_task(self._listen(wake, stop))
                try:
                    await self._loop(reader, marker, js, wake, stop, limit)
                finally:
                    listener.cancel()
        finally:
            await nc.close()

    async def _listen(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(self.config.database_url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            async for _ in conn.notifies():
                wake.set()
                if stop.is_set():
                    return

    async def _loop(self, reader: psycopg.AsyncConnection[Any], marker: psycopg.AsyncConnection[Any],
                    js: JetStreamContext, wake: asyncio.Event, stop: asyncio.Event, message_bytes: int) -> None:
        """Three stages overlapped: batch N is published while N+1 is read and N-1 is marked.

        The read of N+1 skips the seq span of N and N-1 (published or being published, not
        yet marked), so nothing is read twice; a crash anywhere leaves rows unmarked, which
        the next session publishes again (JetStream drops the identical messages).
        """
        marking: asyncio.Task[None] | None = None
        marking_span = (0, 0)
        publishing: asyncio.Task[None] | None = None
        last_prune = 0.0
        try:
            wake.clear()
            rows = await self._fetch(reader)
            while not stop.is_set():
                if not rows:
                    if marking is not None:
                        await marking
                        marking, marking_span = None, (0, 0)
                    # Caught up (or held back by a running transaction): wait for a NOTIFY or the poll.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self.config.poll_interval)
                    wake.clear()
                    rows = await self._fetch(reader)
                    continue
                span = (rows[0][0], rows[-1][0])
                publishing = asyncio.create_task(self._publish(js, rows, message_bytes))
                wake.clear()
                # A late commit inside the span in flight waits for a later read (it is not lost:
                # nothing is in flight once the relay is idle).
                in_flight = (min(span[0], marking_span[0]) if marking is not None else span[0],
                             max(span[1], marking_span[1]))
                following = await self._fetch(reader, *in_flight)
                await publishing
                publishing = None
                if marking is not None:
                    await marking
                marking, marking_span = asyncio.create_task(self._mark(marker, [r[0] for r in rows])), span
                rows = following
                if time.monotonic() - last_prune > self.config.prune_every:
                    await self._prune(reader)
                    last_prune = time.monotonic()
            if marking is not None:
                await marking
                marking = None
        finally:
            for task in (publishing, marking):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _fetch(self, reader: psycopg.AsyncConnection[Any], low: int = 0, high: int = 0) -> list[tuple[Any, ...]]:
        """Up to ``batch`` publishable rows in seq order, none with ``low <= seq <= high``."""
        params = {"low": low, "high": high, "limit": self.config.batch, "bytes": self.config.read_bytes}
        return await (await reader.execute(_FETCH, params)).fetchall()

    async def _mark(self, marker: psycopg.AsyncConnection[Any], seqs: list[int]) -> None:
        await marker.execute(_MARK, (seqs,))
        self.published += len(seqs)
        self.metrics.published.inc(len(seqs))

    async def _prune(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(_PRUNE, (self.config.retention_seconds,))
        backlog = await (await conn.execute(_BACKLOG)).fetchone()
        self.metrics.outbox_backlog.set(backlog[0] if backlog else 0)

    async def _publish(self, js: JetStreamContext, rows: list[tuple[Any, ...]], message_bytes: int) -> None:
        """Publish ``rows`` (in seq order) as messages, at most ``publish_window`` awaiting their ack.

        Events too large for any message are stored in the Object Store first (each acknowledged
        before a message refers to it), then the messages with their references are published.
        """
        packed = pack(rows, self.config.topology, self.config.events_per_message, message_bytes,
                      payload_limit=bus.max_payload(js))
        if packed.large:
            await self._store_large(js, packed.large)
        messages = packed.messages
        window = self.config.publish_window
        for start in range(0, len(messages), window):
            acks = await asyncio.gather(*(
                js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})
                for subject, body, msg_id in messages[start:start + window]
            ))
            duplicates = sum(1 for a in acks if a.duplicate)
            if duplicates:
                self.metrics.republished.inc(duplicates)

    async def _store_large(self, js: JetStreamContext, large: list[tuple[str, bytes]]) -> None:
        store = self._large if self._large is not None and self._large.js is js else bus.LargeEvents(
            js, self.config.topology)
        self._large = store
        limit = asyncio.Semaphore(self.config.large_concurrency)

        async def put(key: str, body: bytes) -> None:
            async with limit:
                written = await store.put(key, body)
            log.info("relay: event %s (%d bytes) %s the large-event bucket %s", key, len(body),
                     "stored in" if written else "already in", store.bucket)

        await asyncio.gather(*(put(key, body) for key, body in large))


@dataclass
class Packed:
    """What one read becomes: the messages, and the events stored out of band that they refer to."""

    messages: list[tuple[str, bytes, str]]  # (subject, body, message id)
    large: list[tuple[str, bytes]]  # (object key, encoded event), stored before the messages are published


def group_messages(rows: list[tuple[Any, ...]], topology: bus.Topology, max_events: int,
                   max_bytes: int) -> list[tuple[str, bytes, str]]:
    """``(subject, body, message id)`` per message (``pack`` without storing anything out of band)."""
    return pack(rows, topology, max_events, max_bytes).messages


def pack(rows: list[tuple[Any, ...]], topology: bus.Topology, max_events: int, max_bytes: int,
         payload_limit: int | None = None) -> Packed:
    """Runs of one entity's events per message, in seq order; events over ``payload_limit`` out of band.

    The rows are partitioned by entity, keeping their order, so concurrent transactions on
    different tables still make large messages (one fsync for many events) while each
    entity's events stay in ``seq`` order on its subject. A message holds at most
    ``max_events`` events and ``max_bytes`` bytes (one larger event travels alone). An event
    that would not fit in a message even alone (``payload_limit``: the server's max_payload
    minus headroom) travels as a reference (``bus.large_reference``) and its encoded body is
    returned in ``large``, keyed by event_id. A message's id names its exact seq range, so a
    republished identical message is dropped by JetStream; sinks dedupe per event in every case.
    """
    by_entity: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_entity.setdefault(row[2], []).append(row)
    messages: list[tuple[str, bytes, str]] = []
    large: list[tuple[str, bytes]] = []
    for entity, entity_rows in by_entity.items():
        subject = topology.subject(entity)
        encoded: list[tuple[int, bytes]] = []
        for row in entity_rows:
            event = _event(row)
            body = orjson.dumps(event)
            if payload_limit is not None and len(body) + 2 > payload_limit:  # 2: the array's brackets
                large.append((event["event_id"], body))
                body = orjson.dumps(bus.large_reference(event, len(body)))
            encoded.append((row[0], body))
        for group in _runs(encoded, max_events, max_bytes):
            body = b"[" + b",".join(encoded for _, encoded in group) + b"]"
            messages.append((subject, body, f"{entity}.{group[0][0]}-{group[-1][0]}.{len(group)}"))
    return Packed(messages, large)


def _runs(encoded: list[tuple[int, bytes]], max_events: int, max_bytes: int) -> Iterator[list[tuple[int, bytes]]]:
    """Consecutive runs of at most ``max_events`` events and ``max_bytes`` bytes as a JSON array."""
    group: list[tuple[int, bytes]] = []
    size = 1  # the opening bracket
    for item in encoded:
        if group and (len(group) >= max_events or size + len(item[1]) + 1 > max_bytes):
            yield group
            group, size = [], 1
        group.append(item)
        size += len(item[1]) + 1
    if group:
        yield group


def _event(row: tuple[Any, ...]) -> dict[str, Any]:
    seq, event_id, entity, entity_id, op, occurred_us, data, changed, actor, tenant = row
    return {"event_id": event_id, "seq": seq, "entity": entity, "entity_id": entity_id, "op": op,
            "occurred_at": occurred_us, "data": data, "changed": changed, "actor": actor, "tenant_id": tenant}


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
