"""The Flight ``events`` ticket: history from JetStream, then a live tail, as Arrow batches.

``{"kind": "events", "entity": "orders", "from_seq": 0, "follow": true}`` streams the
events of one entity (or every entity when ``entity`` is omitted) whose outbox ``seq``
is at least ``from_seq``, in the event schema, through an ephemeral ordered JetStream
consumer. Without ``follow`` the stream ends once it has caught up; with it, the stream
stays open and carries new events as they arrive, until the client cancels. Events too large
for a message are read back from the large-event bucket (``bus.LargeEvents``); one whose object
is gone ends the stream with that error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from typing import Any

import orjson
import pyarrow as pa
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from quiver.arrow.events import events_to_batch
from quiver.events import bus

LARGE_BATCH_BYTES = 64 << 20  # bytes of large events resolved into one batch (a larger event alone)


def event_batches(nats_url: str, topology: bus.Topology, entity: str | None, from_seq: int, follow: bool, *,
                  batch: int = 200, idle_wait: float = 0.5) -> Generator[pa.RecordBatch, None, None]:
    """Blocking generator for a Flight stream; closing it closes the consumer."""
    loop = asyncio.new_event_loop()
    nc = None
    try:
        nc, js = loop.run_until_complete(bus.connect(nats_url, name="quiver-flight-events"))
        subject = topology.filter(entity)
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL,
                                inactive_threshold=60.0)
        subscription = loop.run_until_complete(js.pull_subscribe(subject, stream=topology.stream, config=config))
        large = bus.LargeEvents(js, topology)
        while True:
            try:
                messages = loop.run_until_complete(subscription.fetch(batch, timeout=idle_wait))
            except (TimeoutError, NatsTimeout):
                messages = []
            events = [e for m in messages for e in orjson.loads(m.data) if e["seq"] >= from_seq]
            if events:
                events.sort(key=lambda e: e["seq"])
                if not any(bus.is_reference(e) for e in events):
                    yield events_to_batch(events)
                    continue
                for group in _by_size(events, LARGE_BATCH_BYTES):  # a batch holds few large events
                    yield events_to_batch(loop.run_until_complete(large.resolve_all(group)))
                continue
            if not messages and not follow:
                pending = loop.run_until_complete(subscription.consumer_info()).num_pending
                if pending == 0:
                    return
    finally:
        if nc is not None:
            loop.run_until_complete(nc.close())
        loop.close()



def _by_size(events: list[dict[str, Any]], max_bytes: int) -> Iterator[list[dict[str, Any]]]:
    """``events`` in order, in runs whose large events add up to at most ``max_bytes``."""
    return bus.runs_by_weight(events, lambda e: int(e.get("size", 0)) if bus.is_reference(e) else 0, max_bytes)
