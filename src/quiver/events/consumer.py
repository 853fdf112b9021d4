"""JetStream → one sink, through its own durable pull consumer.

Messages are fetched in batches bounded by count and time, decoded into one Arrow
batch of the event schema and written; they are acknowledged only after the sink
accepted the write. A retryable failure backs off (exponential, jittered) while the
messages stay unacknowledged and are kept from redelivery by in-progress signals. A
permanent failure is narrowed down by bisection to the events the sink refuses;
those go to the dead-letter stream with the reason, the rest are written.
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
import pyarrow as pa
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from quiver.arrow.events import events_to_batch
from quiver.events import bus
from quiver.events.breaker import CircuitBreaker, State
from quiver.events.dedup import RedisDedup
from quiver.events.metrics import EventMetrics
from quiver.events.sinks.base import PermanentError, RetryableError, Sink

log = logging.getLogger("quiver.consumer")


@dataclass
class ConsumerSettings:
    batch_max: int = 40  # messages per fetch (each holds up to 1,000 events)
    batch_wait: float = 0.25  # seconds to fill a batch
    ack_wait: float = 60.0  # JetStream redelivers after this unless told the batch is in progress
    base_backoff: float = 0.2
    max_backoff: float = 10.0
    breaker_threshold: int = 3  # consecutive failures that open the circuit
    topology: bus.Topology = field(default_factory=bus.Topology)


@dataclass
class Delivered:
    message: Any
    event: dict[str, Any]


class SinkConsumer:
    def __init__(self, js: JetStreamContext, sink: Sink, settings: ConsumerSettings | None = None,
                 metrics: EventMetrics | None = None, dedup: RedisDedup | None = None) -> None:
        self.js = js
        self.sink = sink
        self.settings = settings or ConsumerSettings()
        self.metrics = metrics or EventMetrics()
        self.dedup = dedup
        self.durable = f"quiver-sink-{sink.name}"
        self.written = 0
        for counter in (self.metrics.written, self.metrics.retried, self.metrics.dead_lettered,
                        self.metrics.dedup_skipped):
            counter.labels(sink.name)  # export zeros from the start, not only after the first event
        gauge = self.metrics.breaker.labels(sink.name)
        gauge.set(State.CLOSED)
        self.breaker = CircuitBreaker(threshold=self.settings.breaker_threshold,
                                      cooldown=self.settings.base_backoff, max_cooldown=self.settings.max_backoff,
                                      on_change=lambda state: gauge.set(state))

    async def subscribe(self) -> Any:
        config = ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait, max_deliver=-1, max_ack_pending=self.settings.batch_max * 8,
        )
        topology = self.settings.topology
        return await self.js.pull_subscribe(f"{topology.prefix}.>", durable=self.durable, stream=topology.stream,
                                            config=config)

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, write, acknowledge until ``stop``; the next fetch and the last acknowledgements
        overlap the current write, so the sink's round trip is not added to theirs."""
        await bus.ensure_streams(self.js, self.settings.topology)
        await self.sink.setup()
        subscription = await self.subscribe()
        fetching = asyncio.create_task(self._fetch(subscription))
        finishing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                messages = await fetching
                fetching = asyncio.create_task(self._fetch(subscription))
                if not messages:
                    continue
                items = await self.fresh(messages)
                if items:
                    await self.write(items, stop)
                if finishing is not None:
                    await finishing
                finishing = asyncio.create_task(self.finish(messages, items))
        finally:
            fetching.cancel()
            # Acknowledgements in progress complete; the error that ends the run is the one reported.
            for task in (fetching, finishing):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _fetch(self, subscription: Any) -> list[Any]:
        try:
            messages = list(await subscription.fetch(self.settings.batch_max, timeout=self.settings.batch_wait))
        except (TimeoutError, NatsTimeout):
            messages = []
        # JetStream tells each delivery how many messages remain behind it for this consumer.
        pending = getattr(messages[-1].metadata, "num_pending", 0) if messages else 0
        self.metrics.pending.labels(self.sink.name).set(pending)
        return messages

    async def handle(self, messages: list[Any], stop: asyncio.Event) -> None:
        """Write the events of ``messages`` (each a JSON array of events), then acknowledge them."""
        items = await self.fresh(messages)
        if items:
            await self.write(items, stop)
        await self.finish(messages, items)

    async def fresh(self, messages: list[Any]) -> list[Delivered]:
        """The events of ``messages``, each once, minus those Redis says this sink already wrote."""
        delivered: dict[str, Delivered] = {}
        for message in messages:
            for event in orjson.loads(message.data):
                # The same event twice (a republish, a redelivery) is written once.
                delivered.setdefault(event["event_id"], Delivered(message, event))
        if self.dedup is not None:
            for event_id in await self.dedup.seen([(e, d.event["seq"]) for e, d in delivered.items()]):
                del delivered[event_id]
        return list(delivered.values())

    async def finish(self, messages: list[Any], written: list[Delivered]) -> None:
        """Record ``written`` in Redis, then acknowledge ``messages`` (whose events are all stored)."""
        if self.dedup is not None and written:
            await self.dedup.mark([(i.event["event_id"], i.event["seq"]) for i in written])
        for message in messages:
            await message.ack()

    async def write(self, items: list[Delivered], stop: asyncio.Event) -> None:
        """Write ``items`` until the sink accepts them (or dead-letter what it refuses for good)."""
        attempt = 0
        batch = events_to_batch([d.event for d in items])
        last_progress = time.monotonic()
        while True:
            wait = self.breaker.wait_time()
            while wait > 0:  # the circuit is open: no write until the next probe
                await asyncio.sleep(min(wait, self.settings.ack_wait / 3))
                await self._in_progress(items)
                last_progress = time.monotonic()
                wait = self.breaker.wait_time()
            try:
                await self.sink.write(batch)
            except RetryableError as error:
                attempt += 1
                self.breaker.failure()
                self.metrics.retried.labels(self.sink.name).inc()
                delay = min(self.settings.max_backoff, self.settings.base_backoff * 2 ** min(attempt, 16))
                delay *= random.uniform(0.5, 1.0)
                log.warning("%s: retryable failure (%s), attempt %d, circuit %s, next in %.2fs",
                            self.sink.name, error, attempt, self.breaker.state.name, delay)
                if time.monotonic() - last_progress > self.settings.ack_wait / 3:
                    await self._in_progress(items)
                    last_progress = time.monotonic()
                await asyncio.sleep(delay)
                continue
            except PermanentError as error:
                self.breaker.success()  # the sink answered: it is up
                await self._isolate(items, error, stop)
                return
            self.breaker.success()
            break
        self._account(batch)

    async def _isolate(self, items: list[Delivered], error: PermanentError, stop: asyncio.Event) -> None:
        known = [i for i in items if i.event["event_id"] in error.rejected]
        if known:
            for item in known:
                await self.dead_letter(item, error.rejected[item.event["event_id"]])
            rest = [i for i in items if i.event["event_id"] not in error.rejected]
            if rest:
                await self.write(rest, stop)
            return
        if len(items) == 1:
            await self.dead_letter(items[0], str(error))
            return
        middle = len(items) // 2
        for half in (items[:middle], items[middle:]):
            await self.write(half, stop)

    async def dead_letter(self, item: Delivered, reason: str) -> None:
        event = item.event
        body = orjson.dumps({"sink": self.sink.name, "reason": reason,
                             "attempts": getattr(item.message.metadata, "num_delivered", 1), "event": event})
        await self.js.publish(f"{self.settings.topology.dlq_prefix}.{self.sink.name}", body,
                              headers={"Nats-Msg-Id": f"{self.sink.name}:{event['event_id']}"})
        self.metrics.dead_lettered.labels(self.sink.name).inc()
        log.error("%s: event %s dead-lettered: %s", self.sink.name, event["event_id"], reason)

    async def _in_progress(self, items: list[Delivered]) -> None:
        for message in {id(i.message): i.message for i in items}.values():
            try:
                await message.in_progress()
            except Exception:  # noqa: BLE001 - NATS may be down too; redelivery is then harmless
                return

    def _account(self, batch: pa.RecordBatch) -> None:
        self.written += batch.num_rows
        self.metrics.written.labels(self.sink.name).inc(batch.num_rows)
        if batch.num_rows:
            newest = batch.column("occurred_at").cast(pa.int64()).to_numpy().max() / 1e6
            self.metrics.lag.labels(self.sink.name).observe(max(0.0, time.time() - newest))
