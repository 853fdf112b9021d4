"""Reading the events stream from a point: where to start, how to decode, and a reader that survives restarts.

A stream message carries a JSON array of events of one entity, in outbox ``seq`` order
(``bus``). Readers start at the first message that can hold the wanted ``seq`` (a binary
search by stream sequence) or time, so a replay does not read the stream from its start.

``StreamReader`` is the asynchronous reader of subscriptions: an ephemeral, unacknowledged
consumer that remembers the last stream sequence it read and, when the consumer or the
connection is lost (a NATS restart), creates a new one from the next sequence: no message
is skipped, and none is read twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from quiver.events import bus

log = logging.getLogger("quiver.events.reading")
CLOCK_SKEW = timedelta(seconds=5)  # a replay from a time starts this much earlier, then filters by occurred_at


def decode(data: bytes) -> list[dict[str, Any]] | None:
    """The events of one stream message, or None when it is not a JSON array of events with a ``seq``."""
    try:
        events = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(events, list) or not all(isinstance(e, dict) and isinstance(e.get("seq"), int)
                                               for e in events):
        return None
    return events


def events_of(message: Any) -> list[dict[str, Any]]:
    """A message's events; a malformed message is skipped with a warning (it cannot be delivered)."""
    events = decode(message.data)
    if events is None:
        log.warning("skipping a malformed event message on %s (stream seq %s)", message.subject,
                    getattr(message.metadata.sequence, "stream", "?") if message.metadata else "?")
        return []
    return events


async def start_sequence(js: Any, stream: str, subject: str, from_seq: int) -> int | None:
    """The stream sequence of the last message (on ``subject``) whose first event is at or before
    ``from_seq``: the one that can hold it. None: start at the beginning."""
    if from_seq <= 0:
        return None
    info = await js.stream_info(stream)
    low, high, best = info.state.first_seq, info.state.last_seq, None
    while low <= high:
        middle = (low + high) // 2
        try:
            message = await js.get_msg(stream, seq=middle, subject=subject, next=True)
        except NotFoundError:
            message = None
        if message is None or message.seq is None or message.seq > high:
            high = middle - 1
            continue
        events = decode(message.data or b"")
        if events and events[0]["seq"] <= from_seq:
            best, low = message.seq, message.seq + 1
        else:  # later, or unreadable: start earlier (more to skip, nothing missed)
            high = middle - 1
    return best


class StreamReader:
    """One subject's events from a point on, in order, across consumer and connection losses."""

    def __init__(self, js: Any, topology: bus.Topology, entity: str, *, batch: int = 100,
                 idle_wait: float = 0.2, check_every: float = 3.0) -> None:
        self.js = js
        self.topology = topology
        self.subject = topology.subject(entity)
        self.batch = batch
        self.idle_wait = idle_wait
        self.check_every = check_every
        self.next_stream_seq: int | None = None  # None: from the first message
        self.subscription: Any = None
        self.large = bus.LargeEvents(js, topology)
        self.checked = time.monotonic()

    async def start_at_end(self) -> None:
        """Read only what is published from now on."""
        info = await self.js.stream_info(self.topology.stream)
        self.next_stream_seq = info.state.last_seq + 1

    async def start_at_seq(self, from_seq: int) -> None:
        start = await start_sequence(self.js, self.topology.stream, self.subject, from_seq)
        self.next_stream_seq = start

    async def start_at_time(self, when: datetime) -> None:
        """From the first message published at or after ``when`` less the allowed clock skew."""
        try:
            message = await self.js.get_msg(self.topology.stream, subject=self.subject, next=True,
                                            seq=await self._seq_at(when - CLOCK_SKEW))
        except NotFoundError:
            message = None
        self.next_stream_seq = message.seq if message is not None and message.seq is not None else None
        if self.next_stream_seq is None:
            await self.start_at_end()

    async def _seq_at(self, when: datetime) -> int:
        """The first stream sequence of a message stored at or after ``when`` (binary search on storage time)."""
        info = await self.js.stream_info(self.topology.stream)
        low, high = info.state.first_seq, info.state.last_seq + 1
        while low < high:
            middle = (low + high) // 2
            try:
                message = await self.js.get_msg(self.topology.stream, seq=middle)
            except NotFoundError:  # deleted or purged: later messages decide
                low = middle + 1
                continue
            stored = _stored_at(message)
            if stored is not None and stored < when:
                low = middle + 1
            else:
                high = middle
        return max(int(low), 1)

    async def _subscribe(self) -> None:
        policy: dict[str, Any] = {"deliver_policy": DeliverPolicy.ALL} if self.next_stream_seq is None else {
            "deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": self.next_stream_seq}
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=60.0, **policy)
        self.subscription = await self.js.pull_subscribe(self.subject, stream=self.topology.stream, config=config)
        self.checked = time.monotonic()

    async def close(self) -> None:
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except (NatsError, OSError) as error:
                log.debug("closing a reader's consumer: %s", error)

    async def read(self) -> list[dict[str, Any]]:
        """The next events (in ``seq`` order, large ones resolved); empty after ``idle_wait`` without any.

        A lost consumer or connection raises (the caller retries after a pause); the next
        call makes a new consumer from the next unread message. While idle, every
        ``check_every`` seconds the consumer is proven to exist, so one lost silently is
        noticed too.
        """
        if self.subscription is None:
            await self._subscribe()
        try:
            messages = await self.subscription.fetch(self.batch, timeout=self.idle_wait)
        except (TimeoutError, NatsTimeout):
            messages = []
        except (NatsError, OSError, NotFoundError) as error:
            await self._lost(error)
            raise
        if not messages:
            if time.monotonic() - self.checked >= self.check_every:
                await self.caught_up()
            return []
        self.next_stream_seq = messages[-1].metadata.sequence.stream + 1
        events = sorted((e for m in messages for e in events_of(m)), key=lambda e: e["seq"])
        if any(bus.is_reference(e) for e in events):
            events = await self.large.resolve_all(events)
        return events

    async def caught_up(self) -> bool:
        """Whether the consumer has delivered every message stored so far (asks the server: a reader
        cut off from NATS is never caught up)."""
        if self.subscription is None:
            await self._subscribe()
        self.checked = time.monotonic()
        try:
            info = await self.subscription.consumer_info()
        except (NatsError, OSError, NotFoundError, TimeoutError) as error:
            await self._lost(error)
            raise
        return bool(info.num_pending == 0)

    async def _lost(self, error: Exception) -> None:
        log.info("event reader on %s lost its consumer (%s); it is recreated from stream seq %s",
                 self.subject, type(error).__name__, self.next_stream_seq)
        await self.close()


def _stored_at(message: Any) -> datetime | None:
    """When JetStream stored a raw message (its ``time`` field), or None when absent."""
    stored = getattr(message, "time", None)
    if isinstance(stored, datetime):
        return stored
    if isinstance(stored, str):
        try:
            return datetime.fromisoformat(stored.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None
