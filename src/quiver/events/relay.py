"""Outbox → JetStream, in ``seq`` order, never skipping a late commit.

A transaction can take outbox ``seq`` 10, let another take 11 and commit first, and
commit 10 later. A relay that remembers "published up to 11" would skip 10 forever.
This one keeps no high-water mark: it publishes unpublished rows in ``seq`` order,
but only rows whose transaction id is below the oldest transaction still running
(``pg_snapshot_xmin``), so no row it has not yet seen can ever appear *before* one it
publishes; then it marks the rows published. A crash between publishing and marking
publishes them again, which JetStream drops as duplicates (same ``Nats-Msg-Id``).

Woken by LISTEN/NOTIFY, with a polling fallback; NATS or PostgreSQL down means the
events wait in the outbox and the relay retries with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from nats.js import JetStreamContext

from quiver.events import bus
from quiver.events.capture import CHANNEL, OUTBOX
from quiver.events.metrics import EventMetrics

log = logging.getLogger("quiver.relay")

_FETCH = f"""
SELECT seq, event_id::text, entity, entity_id, op,
       CAST(floor(extract(epoch FROM occurred_at) * 1000000) AS bigint), data::text, changed, actor, tenant_id
FROM {OUTBOX}
WHERE published_at IS NULL AND txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY seq
LIMIT %s
"""
_MARK = f"UPDATE {OUTBOX} SET published_at = clock_timestamp() WHERE seq = ANY(%s)"
_PRUNE = f"DELETE FROM {OUTBOX} WHERE published_at < clock_timestamp() - make_interval(secs => %s)"
_BACKLOG = f"SELECT count(*) FROM {OUTBOX} WHERE published_at IS NULL"


@dataclass
class RelayConfig:
    database_url: str
    nats_url: str
    batch: int = 2000
    poll_interval: float = 0.5  # fallback when no NOTIFY arrives
    retention_seconds: float = 3600.0  # published rows kept this long, then pruned
    prune_every: float = 30.0
    max_backoff: float = 5.0
    publish_window: int = 64  # messages in flight at once
    events_per_message: int = 500
    topology: bus.Topology = field(default_factory=bus.Topology)


class Relay:
    def __init__(self, config: RelayConfig, metrics: EventMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or EventMetrics()
        self.published = 0

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
            async with await psycopg.AsyncConnection.connect(self.config.database_url, autocommit=True) as conn:
                wake = asyncio.Event()
                listener = asyncio.create_task(self._listen(wake, stop))
                try:
                    await self._loop(conn, js, wake, stop)
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

    async def _loop(self, conn: psycopg.AsyncConnection[Any], js: JetStreamContext, wake: asyncio.Event,
                    stop: asyncio.Event) -> None:
        last_prune = 0.0
        while not stop.is_set():
            wake.clear()
            rows = await (await conn.execute(_FETCH, (self.config.batch,))).fetchall()
            if rows:
                await self._publish(js, rows)
                await conn.execute(_MARK, ([r[0] for r in rows],))
                self.published += len(rows)
                self.metrics.published.inc(len(rows))
            if time.monotonic() - last_prune > self.config.prune_every:
                await conn.execute(_PRUNE, (self.config.retention_seconds,))
                backlog = await (await conn.execute(_BACKLOG)).fetchone()
                self.metrics.outbox_backlog.set(backlog[0] if backlog else 0)
                last_prune = time.monotonic()
            if len(rows) < self.config.batch:
                # Caught up (or held back by a running transaction): wait for a NOTIFY or the poll.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.config.poll_interval)

    async def _publish(self, js: JetStreamContext, rows: list[tuple[Any, ...]]) -> None:
        """Publish ``rows`` (in seq order) as messages of up to ``events_per_message`` events each.

        Consecutive events with the same entity and op share a message on their subject,
        so one fsync covers many events; the message id names its exact seq range, so a
        republished identical message is dropped by JetStream, and sinks dedupe per event.
        """
        messages: list[tuple[str, bytes, str]] = []
        group: list[tuple[Any, ...]] = []

        def flush() -> None:
            if group:
                first, last = group[0], group[-1]
                msg_id = f"{first[2]}.{first[4]}.{first[0]}-{last[0]}.{len(group)}"
                body = b"[" + b",".join(_body(r) for r in group) + b"]"
                messages.append((self.config.topology.subject(first[2], first[4]), body, msg_id))
                group.clear()

        for row in rows:
            if group and (row[2] != group[0][2] or row[4] != group[0][4]
                          or len(group) >= self.config.events_per_message):
                flush()
            group.append(row)
        flush()
        window = self.config.publish_window
        for start in range(0, len(messages), window):
            acks = await asyncio.gather(*(
                js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})
                for subject, body, msg_id in messages[start:start + window]
            ))
            duplicates = sum(1 for a in acks if a.duplicate)
            if duplicates:
                self.metrics.republished.inc(duplicates)


def _body(row: tuple[Any, ...]) -> bytes:
    seq, event_id, entity, entity_id, op, occurred_us, data, changed, actor, tenant = row
    return orjson.dumps({
        "event_id": event_id, "seq": seq, "entity": entity, "entity_id": entity_id, "op": op,
        "occurred_at": occurred_us, "data": data, "changed": changed, "actor": actor, "tenant_id": tenant,
    })


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
