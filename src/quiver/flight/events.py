"""The Flight ``events`` ticket: history from JetStream, then a live tail, as Arrow batches.

``{"kind": "events", "entity": "orders", "from_seq": 0, "follow": true}`` streams the
events of one entity (or every entity when ``entity`` is omitted) whose outbox ``seq``
is at least ``from_seq``, in the event schema, through an ephemeral ordered JetStream
consumer. Without ``follow`` the stream ends once it has caught up; with it, the stream
stays open and carries new events as they arrive, until the client cancels or the server
stops. Events too large for a message are read back from the large-event bucket
(``bus.LargeEvents``); one whose object is gone ends the stream with that error.

The connection is bounded (one attempt, no reconnects): an unreachable NATS answers
UNAVAILABLE at once instead of a stream that never starts. The consumer starts at the first
stream message that can hold ``from_seq`` (a binary search by stream sequence; a message
carries a JSON array of events, in outbox order), not at the start of the stream.
Malformed messages are skipped with a warning (``events.reading``, shared with subscriptions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Iterator
from typing import Any

import nats
import pyarrow as pa
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from quiver.arrow.events import events_to_batch
from quiver.errors import Unavailable
from quiver.events import bus
from quiver.events.reading import events_of, start_sequence

LARGE_BATCH_BYTES = 64 << 20  # bytes of large events resolved into one batch (a larger event alone)


class EventsUnavailable(Unavailable):
    """NATS (or its events stream) cannot be reached (UNAVAILABLE: retry)."""


async def _quiet(_error: Exception) -> None:
    """nats-py logs every connection error with a traceback by default; the caller reports it once."""


async def _connect(url: str, timeout: float) -> Any:
    try:
        # nats-py can keep retrying a refused first connect despite the options: bound it from outside too.
        connecting = nats.connect(url, name="quiver-flight-events", allow_reconnect=False, max_reconnect_attempts=0,
                                  connect_timeout=timeout, error_cb=_quiet)
        return await asyncio.wait_for(connecting, timeout * 2)
    except (OSError, NatsError, TimeoutError) as error:
        reason = type(error).__name__
        raise EventsUnavailable(f"the event stream is unavailable: cannot reach NATS ({reason})") from None


def open_events(nats_url: str, topology: bus.Topology, entity: str | None, from_seq: int, follow: bool, *,
                stopped: Callable[[], bool] = lambda: False, batch: int = 200, idle_wait: float = 0.5,
                connect_timeout: float = 2.0) -> Iterator[pa.RecordBatch]:
    """Connect and subscribe now (so failures are the RPC's status), then stream; ``stopped`` ends a tail."""
    loop = asyncio.new_event_loop()
    try:
        nc = loop.run_until_complete(_connect(nats_url, connect_timeout))
    except BaseException:
        loop.close()
        raise
    try:
        js = nc.jetstream(timeout=10)
        subject = topology.filter(entity)
        start = loop.run_until_complete(start_sequence(js, topology.stream, subject, from_seq))
        policy = {"deliver_policy": DeliverPolicy.ALL} if start is None else {
            "deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": start}
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=60.0, **policy)
        subscription = loop.run_until_complete(js.pull_subscribe(subject, stream=topology.stream, config=config))
    except BaseException as error:
        loop.run_until_complete(nc.close())
        loop.close()
        if isinstance(error, NotFoundError):
            raise EventsUnavailable(f"the event stream {topology.stream!r} does not exist yet") from None
        raise
    return _stream(loop, nc, js, topology, subscription, from_seq, follow, stopped, batch, idle_wait)


def _stream(loop: asyncio.AbstractEventLoop, nc: Any, js: Any, topology: bus.Topology, subscription: Any,
            from_seq: int, follow: bool, stopped: Callable[[], bool], batch: int,
            idle_wait: float) -> Generator[pa.RecordBatch, None, None]:
    """The batches; closing the generator (a cancelled call) closes the connection."""
    large = bus.LargeEvents(js, topology)
    try:
        while not stopped():
            try:
                messages = loop.run_until_complete(subscription.fetch(batch, timeout=idle_wait))
            except (TimeoutError, NatsTimeout):
                messages = []
            events = [e for m in messages for e in events_of(m) if e["seq"] >= from_seq]
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
        loop.run_until_complete(nc.close())
        loop.close()


def _by_size(events: list[dict[str, Any]], max_bytes: int) -> Iterator[list[dict[str, Any]]]:
    """``events`` in order, in runs whose large events add up to at most ``max_bytes``."""
    return bus.runs_by_weight(events, lambda e: int(e.get("size", 0)) if bus.is_reference(e) else 0, max_bytes)
