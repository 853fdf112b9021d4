"""JetStream → one sink, through its own durable pull consumer.

Messages are fetched in batches bounded by count and time, decoded and checked, their
large-event references resolved (``bus.LargeEvents``), and written as Arrow batches of the event
schema of at most ``write_bytes`` each; they are acknowledged once the sink accepted the events.
Failures (docs/events.md, "Messages that can never be processed"):

- retryable (the sink is down; NATS does not answer while a large event is read): backoff and
  retry, messages unacknowledged and kept by in-progress signals; never dead-lettered.
- permanent (the sink refuses events): bisection, or the sink's per-event report, down to the
  refused events, which are dead-lettered with the reason; the rest are written.
- malformed (not JSON, not an array, not an event, a reference whose object is missing):
  dead-lettered on first sight (a redelivery carries the same bytes); the valid events written.
- unexpected (any other exception building the batch or in the sink): bisected to the events
  that raise, the rest written; their messages are negatively acknowledged with a delay, and
  once delivered ``max_deliveries`` times (JetStream's ``num_delivered``) the failing events are
  dead-lettered. JetStream's ``max_deliver`` stays unlimited: nothing is dropped unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pyarrow as pa
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from quiver.arrow.events import event_problem, events_to_batch
from quiver.events import bus, dlq
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
    # Deliveries of a message whose events keep failing unexpectedly (not Retryable, not Permanent)
    # before those events are dead-lettered; JetStream's own max_deliver stays unlimited.
    max_deliveries: int = 5
    write_bytes: int = 64 << 20  # event bytes per sink write (large events resolved); a larger event alone
    large_concurrency: int = 4  # large events read from the Object Store at once
    topology: bus.Topology = field(default_factory=bus.Topology)


@dataclass
class Delivered:
    message: Any
    event: dict[str, Any]  # the event; before resolution, possibly a large-event reference
    size: int = 0  # the event's encoded bytes (estimated for inline events)
    reference: dict[str, Any] | None = None  # the reference it was resolved from, if it was large


@dataclass
class Outcome:
    """What became of a fetch: the events handled (written or dead-lettered), the messages to redeliver."""

    handled: list[Delivered]
    again: list[Any]


class SinkConsumer:
    def __init__(self, js: JetStreamContext, sink: Sink, settings: ConsumerSettings | None = None,
                 metrics: EventMetrics | None = None, dedup: RedisDedup | None = None) -> None:
        self.js = js
        self.sink = sink
        self.settings = settings or ConsumerSettings()
        if self.settings.max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self.metrics = metrics or EventMetrics()
        self.dedup = dedup
        self.durable = f"quiver-sink-{sink.name}"
        self.written = 0
        self.large = bus.LargeEvents(js, self.settings.topology)
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
                outcome = await self.process(messages, stop)
                if finishing is not None:
                    await finishing
                finishing = asyncio.create_task(self.finish(messages, outcome.handled, outcome.again))
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
        outcome = await self.process(messages, stop)
        await self.finish(messages, outcome.handled, outcome.again)

    async def process(self, messages: list[Any], stop: asyncio.Event) -> Outcome:
        """Decode, deduplicate, resolve and write the events of ``messages``; never raises for an event.

        Writes go in chunks of at most ``write_bytes``, resolving large events chunk by chunk,
        so memory holds one chunk of large events at a time.
        """
        items = await self.fresh(messages)
        failures: list[tuple[Delivered, str]] = []
        progress = time.monotonic()
        for chunk in _chunks(items, self.settings.write_bytes):
            if time.monotonic() - progress > self.settings.ack_wait / 3:  # many large events: keep them ours
                await self._in_progress([Delivered(m, {}) for m in messages])
                progress = time.monotonic()
            resolved, failed = await self._resolve(chunk)
            failures += failed
            if resolved:
                failures += await self.write(resolved, stop)
        again = await self._bounded(failures)
        failing = {item.event["event_id"] for item, _ in failures} if again else set()
        retried = {id(message) for message in again}
        handled = [i for i in items if not (id(i.message) in retried and i.event["event_id"] in failing)]
        return Outcome(handled, again)

    async def fresh(self, messages: list[Any]) -> list[Delivered]:
        """The events of ``messages``, each once, minus those Redis says this sink already wrote.

        What is not an event (a body that is not JSON or not an array, an element that is not an
        event or a well-formed reference) is dead-lettered here with the reason.
        """
        delivered: dict[str, Delivered] = {}
        for message in messages:
            try:
                body = orjson.loads(message.data)
            except orjson.JSONDecodeError as error:
                await self.dead_letter_malformed(message, f"message is not JSON: {error}")
                continue
            if not isinstance(body, list):
                await self.dead_letter_malformed(message, f"message is not a JSON array of events but a "
                                                          f"{type(body).__name__}")
                continue
            size = len(message.data) // max(1, len(body))
            for index, event in enumerate(body):
                problem = bus.reference_problem(event) if bus.is_reference(event) else event_problem(event)
                if problem is not None:
                    await self.dead_letter_malformed(message, f"element {index} is not an event: {problem}",
                                                     index, event)
                    continue
                # The same event twice (a republish, a redelivery) is written once.
                if event["event_id"] not in delivered:
                    delivered[event["event_id"]] = Delivered(message, event,
                                                             event["size"] if bus.is_reference(event) else size)
        if self.dedup is not None and delivered:
            for event_id in await self.dedup.seen([(e, d.event["seq"]) for e, d in delivered.items()]):
                del delivered[event_id]
        return list(delivered.values())

    async def _resolve(self, items: list[Delivered]) -> tuple[list[Delivered], list[tuple[Delivered, str]]]:
        """``items`` with large events read from the Object Store; the ones that failed unexpectedly apart.

        A missing object (or one that holds no valid event) is dead-lettered; NATS not answering is
        waited out like a sink outage.
        """
        if not any(item.reference is None and bus.is_reference(item.event) for item in items):
            return items, []
        limit = asyncio.Semaphore(self.settings.large_concurrency)
        failures: list[tuple[Delivered, str]] = []

        async def one(item: Delivered) -> Delivered | None:
            if item.reference is not None or not bus.is_reference(item.event):
                return item
            async with limit:
                event = await self._read_large(item, failures)
            if event is None:
                return None
            problem = event_problem(event)
            if problem is not None:
                await self.dead_letter(item, f"large event {item.event[bus.REF]} is not an event: {problem}")
                return None
            return replace(item, event=event, reference=item.event)

        resolved = await asyncio.gather(*(one(item) for item in items))
        return [item for item in resolved if item is not None], failures

    async def _read_large(self, item: Delivered, failures: list[tuple[Delivered, str]]) -> dict[str, Any] | None:
        try:
            return await self.large.resolve_patiently(item.event, self.settings.base_backoff,
                                                      self.settings.max_backoff, lambda: self._in_progress([item]))
        except bus.MissingLargeEvent as error:
            await self.dead_letter(item, str(error))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - corrupt, or unexpected: bounded by max_deliveries
            failures.append((item, f"{type(error).__name__}: {error}"))
        return None

    async def _bounded(self, failures: list[tuple[Delivered, str]]) -> list[Any]:
        """Dead-letter the unexpected failures of messages delivered ``max_deliveries`` times; the
        messages of the others, to be redelivered."""
        again: dict[int, Any] = {}
        for item, reason in failures:
            delivered = _num_delivered(item.message)
            if delivered >= self.settings.max_deliveries:
                await self.dead_letter(item, f"{reason} (failed on each of {delivered} deliveries)")
            else:
                log.warning("%s: event %s failed unexpectedly on delivery %d of at most %d: %s", self.sink.name,
                            item.event["event_id"], delivered, self.settings.max_deliveries, reason)
                again[id(item.message)] = item.message
        return list(again.values())

    async def finish(self, messages: list[Any], written: list[Delivered], again: Sequence[Any] = ()) -> None:
        """Record ``written`` in Redis, then acknowledge ``messages`` (whose events are all stored),
        except those in ``again``: negatively acknowledged, to come back after a delay."""
        if self.dedup is not None and written:
            await self.dedup.mark([(i.event["event_id"], i.event["seq"]) for i in written])
        retry = {id(message) for message in again}
        for message in messages:
            if id(message) in retry:
                delivered = _num_delivered(message)
                await message.nak(delay=min(self.settings.max_backoff, self.settings.base_backoff * 2 ** delivered))
            else:
                await message.ack()

    async def write(self, items: list[Delivered], stop: asyncio.Event) -> list[tuple[Delivered, str]]:
        """Write ``items`` until the sink accepts them (or dead-letter what it refuses for good).

        Returns the items whose write failed unexpectedly (isolated by bisection), with the reason.
        """
        attempt = 0
        try:
            batch = events_to_batch([d.event for d in items])
        except Exception as error:  # noqa: BLE001 - checked events should always build; isolate the culprit
            return await self._unexpected(items, error, stop)
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
                return await self._isolate(items, error, stop)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - neither retryable nor permanent: bounded by deliveries
                return await self._unexpected(items, error, stop)
            self.breaker.success()
            break
        self._account(batch)
        return []

    async def _unexpected(self, items: list[Delivered], error: Exception,
                          stop: asyncio.Event) -> list[tuple[Delivered, str]]:
        if len(items) == 1:
            reason = f"{type(error).__name__}: {error}"
            log.warning("%s: event %s: unexpected %s", self.sink.name, items[0].event["event_id"], reason)
            return [(items[0], reason)]
        middle = len(items) // 2
        return [*await self.write(items[:middle], stop), *await self.write(items[middle:], stop)]

    async def _isolate(self, items: list[Delivered], error: PermanentError,
                       stop: asyncio.Event) -> list[tuple[Delivered, str]]:
        known = [i for i in items if i.event["event_id"] in error.rejected]
        if known:
            for item in known:
                await self.dead_letter(item, error.rejected[item.event["event_id"]])
            rest = [i for i in items if i.event["event_id"] not in error.rejected]
            return await self.write(rest, stop) if rest else []
        if len(items) == 1:
            await self.dead_letter(items[0], str(error))
            return []
        middle = len(items) // 2
        return [*await self.write(items[:middle], stop), *await self.write(items[middle:], stop)]

    async def dead_letter(self, item: Delivered, reason: str) -> None:
        """Publish ``item``'s event to the dead-letter stream with ``reason`` (a large one as its reference)."""
        event = item.reference if item.reference is not None else item.event
        await dlq.publish(self.js, self.settings.topology, self.sink.name, event, reason,
                          _num_delivered(item.message), self.large)
        self.metrics.dead_lettered.labels(self.sink.name).inc()
        log.error("%s: event %s dead-lettered: %s", self.sink.name, event["event_id"], reason)

    async def dead_letter_malformed(self, message: Any, reason: str, index: int | None = None,
                                    element: Any = None) -> None:
        """Dead-letter a message (or its element ``index``) that holds no event, with an excerpt of it."""
        where = await dlq.publish_malformed(self.js, self.settings.topology, self.sink.name, message, reason,
                                            _num_delivered(message), index, element)
        self.metrics.dead_lettered.labels(self.sink.name).inc()
        log.error("%s: message %s (stream seq %d) dead-lettered: %s", self.sink.name, where["subject"],
                  where["stream_seq"], reason)

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


def _num_delivered(message: Any) -> int:
    """How many times JetStream has delivered ``message`` (this delivery included)."""
    try:
        return int(message.metadata.num_delivered or 1)
    except Exception:  # noqa: BLE001 - not a JetStream message (tests): its first delivery
        return 1


def _chunks(items: list[Delivered], max_bytes: int) -> Iterator[list[Delivered]]:
    """``items`` in order, cut into runs of at most ``max_bytes`` of events (a larger event alone)."""
    chunk: list[Delivered] = []
    size = 0
    for item in items:
        if chunk and size + item.size > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item.size
    if chunk:
        yield chunk
