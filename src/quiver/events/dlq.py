"""The dead-letter stream: events a sink refused for good, kept with the reason, replayable.

Each dead letter is one JetStream message on ``<namespace>.dlq.<sink>`` holding the sink,
the reason, the delivery count and the event. ``replay`` writes a sink's dead letters
back into that sink (after a fix) and deletes each one only once the sink accepted it;
sinks are idempotent, so a replay interrupted and run again still counts each event once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from quiver.arrow.events import events_to_batch
from quiver.events import bus
from quiver.events.sinks.base import Sink


@dataclass(frozen=True)
class DeadLetter:
    stream_seq: int
    sink: str
    reason: str
    attempts: int
    event: dict[str, Any]


async def dead_letters(js: JetStreamContext, topology: bus.Topology, sink: str | None = None) -> list[DeadLetter]:
    """Every dead letter (of one sink, or all), oldest first; reading does not remove them."""
    subject = f"{topology.dlq_prefix}.{sink}" if sink else f"{topology.dlq_prefix}.>"
    try:
        info = await js.stream_info(topology.dlq_stream)
    except Exception:  # noqa: BLE001 - no stream yet: nothing was ever dead-lettered
        return []
    if info.state.messages == 0:
        return []
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0)
    subscription = await js.pull_subscribe(subject, stream=topology.dlq_stream, config=config)
    found: list[DeadLetter] = []
    try:
        while True:
            try:
                messages = await subscription.fetch(500, timeout=0.5)
            except (TimeoutError, NatsTimeout):
                break
            for message in messages:
                body = orjson.loads(message.data)
                found.append(DeadLetter(message.metadata.sequence.stream, body["sink"], body["reason"],
                                        int(body.get("attempts", 1)), body["event"]))
            if (await subscription.consumer_info()).num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    return found


async def replay(js: JetStreamContext, topology: bus.Topology, sink: Sink) -> int:
    """Write ``sink``'s dead letters into it again; returns how many it accepted (and were removed)."""
    letters = await dead_letters(js, topology, sink.name)
    if not letters:
        return 0
    await sink.setup()
    await sink.write(events_to_batch([letter.event for letter in letters]))
    for letter in letters:
        await js.delete_msg(topology.dlq_stream, letter.stream_seq)
    return len(letters)
