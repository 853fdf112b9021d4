"""The dead-letter stream: events a sink refused for good, kept with the reason, replayable.

``publish`` and ``publish_malformed`` write dead letters (the consumer calls them); the rest
reads and replays them.

Each dead letter is one JetStream message on ``<namespace>.dlq.<sink>`` holding the sink,
the reason, the delivery count and the event (a large event as its reference: the object stays
in the large-event bucket). ``replay`` writes a sink's dead letters back into that sink (after
a fix) and deletes each one only once the sink accepted it; sinks are idempotent, so a replay
interrupted and run again still counts each event once.

A message that held no event (not JSON, not an array of events) is dead-lettered with
``message``: where it was (subject, stream sequence, element index) and an excerpt. Such a
letter cannot be replayed: ``replay`` leaves it in place, for an operator to read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from quiver.arrow.events import encode_event, event_problem, events_to_batch
from quiver.events import bus
from quiver.events.sinks.base import Sink

log = logging.getLogger("quiver.dlq")

REPLAY_BYTES = 64 << 20  # event bytes per replay write (large events resolved); a larger event alone
MAX_REASON = 4000  # characters of a dead letter's reason
MAX_EXCERPT = 64 << 10  # bytes of a malformed message kept in its dead letter


@dataclass(frozen=True)
class DeadLetter:
    stream_seq: int
    sink: str
    reason: str
    attempts: int
    # The event (a large one as its reference). For a message that held no event: what could be read
    # of it, with ``event_id``, ``entity``, ``op`` and ``seq`` always present ("" / -1 when unknown).
    event: dict[str, Any]
    message: dict[str, Any] | None = field(default=None)  # set when the letter holds no valid event

    @property
    def replayable(self) -> bool:
        return self.message is None


async def publish(js: JetStreamContext, topology: bus.Topology, sink: str, event: dict[str, Any], reason: str,
                  attempts: int, large: bus.LargeEvents) -> None:
    """Dead-letter ``event`` (an event, or a large event's reference) for ``sink``.

    An inline event that would make the dead letter too large for a message is stored in the
    large-event bucket and the letter keeps its reference.
    """
    letter = {"sink": sink, "reason": reason[:MAX_REASON], "attempts": attempts, "event": event}
    body = orjson.dumps(letter)
    if len(body) > bus.max_payload(js) and not bus.is_reference(event):
        encoded = encode_event(event)
        await large.put(event["event_id"], encoded)
        body = orjson.dumps({**letter, "event": bus.large_reference(event, len(encoded))})
    await js.publish(f"{topology.dlq_prefix}.{sink}", body, headers={"Nats-Msg-Id": f"{sink}:{event['event_id']}"})


async def publish_malformed(js: JetStreamContext, topology: bus.Topology, sink: str, message: Any, reason: str,
                            attempts: int, index: int | None = None, element: Any = None) -> dict[str, Any]:
    """Dead-letter ``message`` (or its element ``index``), which holds no event; returns where it was."""
    metadata = getattr(message, "metadata", None)
    stream_seq = getattr(getattr(metadata, "sequence", None), "stream", 0) or 0
    raw = orjson.dumps(element) if index is not None else bytes(message.data)
    where = {"subject": getattr(message, "subject", ""), "stream_seq": stream_seq, "index": index,
             "bytes": len(raw), "excerpt": raw[:MAX_EXCERPT].decode(errors="replace")}
    letter = {"sink": sink, "reason": reason[:MAX_REASON], "attempts": attempts,
              "event": element if isinstance(element, dict) and len(raw) <= MAX_EXCERPT else None, "message": where}
    msg_id = f"{sink}:{topology.stream}:{stream_seq}" + (f":{index}" if index is not None else "")
    await js.publish(f"{topology.dlq_prefix}.{sink}", orjson.dumps(letter), headers={"Nats-Msg-Id": msg_id})
    return where


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
                found.append(_letter(message.metadata.sequence.stream, orjson.loads(message.data), topology))
            if (await subscription.consumer_info()).num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    return found


def _letter(stream_seq: int, body: dict[str, Any], topology: bus.Topology) -> DeadLetter:
    where = body.get("message")
    event = body.get("event")
    if where is None and isinstance(event, dict):
        return DeadLetter(stream_seq, body["sink"], body["reason"], int(body.get("attempts", 1)), event)
    where = where if isinstance(where, dict) else {}
    known = event if isinstance(event, dict) else {}
    subject = str(where.get("subject") or "")
    entity = subject[len(topology.prefix) + 1:] if subject.startswith(topology.prefix + ".") else ""
    seq = known.get("seq")
    summary = {**known, "event_id": str(known.get("event_id") or ""), "entity": str(known.get("entity") or entity),
               "op": str(known.get("op") or ""), "seq": seq if isinstance(seq, int) else -1}
    return DeadLetter(stream_seq, body["sink"], body["reason"], int(body.get("attempts", 1)), summary, where)


async def replay(js: JetStreamContext, topology: bus.Topology, sink: Sink) -> int:
    """Write ``sink``'s dead letters into it again; returns how many it accepted (and were removed).

    Large events are read back from the large-event bucket, at most ``REPLAY_BYTES`` of events
    per write. Letters that hold no event, or whose large event is gone, stay (with a warning).
    """
    letters = await dead_letters(js, topology, sink.name)
    replayable = [letter for letter in letters if letter.replayable]
    for letter in letters:
        if not letter.replayable:
            log.warning("dead letter %d holds no event (%s); left in place", letter.stream_seq, letter.reason)
    if not replayable:
        return 0
    await sink.setup()
    large = bus.LargeEvents(js, topology)
    replayed = 0
    for chunk in _chunks(replayable, REPLAY_BYTES):
        events: list[dict[str, Any]] = []
        kept: list[DeadLetter] = []
        for letter in chunk:
            try:
                event = await large.resolve(letter.event) if bus.is_reference(letter.event) else letter.event
            except (bus.MissingLargeEvent, bus.CorruptLargeEvent) as error:
                log.warning("dead letter %d: %s; left in place", letter.stream_seq, error)
                continue
            problem = event_problem(event)
            if problem is not None:
                log.warning("dead letter %d: not an event (%s); left in place", letter.stream_seq, problem)
                continue
            events.append(event)
            kept.append(letter)
        if not events:
            continue
        await sink.write(events_to_batch(events))
        for letter in kept:
            await js.delete_msg(topology.dlq_stream, letter.stream_seq)
        replayed += len(kept)
    return replayed


def _chunks(letters: list[DeadLetter], max_bytes: int) -> Iterator[list[DeadLetter]]:
    def weight(letter: DeadLetter) -> int:
        if bus.is_reference(letter.event):
            return int(letter.event.get("size", 0))
        return len(orjson.dumps(letter.event))

    return bus.runs_by_weight(letters, weight, max_bytes)
