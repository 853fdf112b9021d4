"""The subscriptions of one server: one live feed per entity, shared by all of its subscribers.

Each entity with subscribers has one ``Feed``: one JetStream reader of its subject and one
evaluation per batch for all of its live subscribers (``evaluate``), so a thousand
subscribers cost one read and two statements per batch, not a thousand. Delivery never
waits for a subscriber: ``deliver`` only queues, and a subscriber whose queue is over its
bound is cut off by its transport, without slowing the feed.

A subscription with ``from`` replays first, through its own reader, while the feed keeps its
batches for it (``pending``). Once its reader has read everything stored (JetStream says
nothing is pending, so never while NATS is away) it takes the pending batches in order and
joins the feed. The feed started before the replay's catch-up was checked, so the two
overlap, and the watermark drops the overlap: no gap and no duplicate at the switch.

Failures: a lost NATS connection or consumer makes the reader resume from its next unread
message; a database that is down makes the feed retry the same batch with backoff (the
events wait in JetStream). A subscriber whose own statement fails is ended with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats
from graphql import GraphQLError
from nats.errors import Error as NatsError

from quiver.config import Settings
from quiver.errors import Unavailable, classify, database_error
from quiver.events import bus
from quiver.events.reading import StreamReader
from quiver.subscriptions.evaluate import begin, check, evaluate
from quiver.subscriptions.subscriber import Event, Subscriber

log = logging.getLogger("quiver.subscriptions")
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
REPLAY_SLACK = 100  # a replaying subscriber may hold this many times its message bound of live events


class EventsUnavailable(Unavailable):
    """NATS or the events stream cannot be reached: the subscription cannot start (retry later)."""


def events_unavailable(reason: str) -> GraphQLError:
    return GraphQLError(f"the event stream is unavailable: {reason}", extensions={"code": "EVENTS_UNAVAILABLE"})


async def _pause(attempt: int) -> None:
    await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])


class Hub:
    """Subscribers by entity; connects to NATS on the first subscription."""

    def __init__(self, settings: Settings, pool: Any) -> None:
        self.settings = settings
        self.pool = pool  # psycopg AsyncConnectionPool
        self.topology = bus.Topology(settings.events_namespace)
        self.feeds: dict[str, Feed] = {}
        self.nc: Any = None
        self.js: Any = None
        self.lock = asyncio.Lock()
        self.replays: set[asyncio.Task[None]] = set()

    async def jetstream(self) -> Any:
        async with self.lock:
            if self.nc is None or self.nc.is_closed:
                try:
                    connecting = nats.connect(self.settings.nats_url, name="quiver-subscriptions",
                                              max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=2)
                    self.nc = await asyncio.wait_for(connecting, 5)
                except (OSError, NatsError, TimeoutError) as error:
                    raise EventsUnavailable(f"cannot reach NATS ({type(error).__name__})") from None
                self.js = self.nc.jetstream(timeout=5)
                # As the relay and the consumers do: a subscription may come before the first event.
                await bus.ensure_streams(self.js, self.topology)
            return self.js

    async def subscribe(self, subscriber: Subscriber) -> None:
        """Check the subscriber's statements and start delivering to it; raises GraphQLError."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await begin(conn, self.settings.statement_timeout_ms)
                await check(conn, subscriber)
        except Exception as exc:  # noqa: BLE001 - classified: a value PostgreSQL refuses, or an outage
            raise database_error(exc, path=[subscriber.root.key]) from None
        start = subscriber.root.start
        subscriber.live = start is None
        try:
            js = await self.jetstream()
            feed = self.feeds.get(subscriber.entity)
            if feed is None or feed.stopped:
                feed = self.feeds[subscriber.entity] = Feed(self, subscriber.entity)
                await feed.start(js)
            feed.subscribers.add(subscriber)  # no await since the feed was seen running: it cannot stop first
            if subscriber.ended:  # completed by its client while starting
                feed.subscribers.discard(subscriber)
                return
            if start is None:
                return
            reader = StreamReader(js, self.topology, subscriber.entity)
            if start.time is not None:
                await reader.start_at_time(start.time)
            else:
                await reader.start_at_seq(start.seq or 0)
        except (EventsUnavailable, NatsError, OSError, TimeoutError) as error:
            self.unsubscribe(subscriber)
            reason = str(error) if isinstance(error, EventsUnavailable) else f"{type(error).__name__} from NATS"
            raise events_unavailable(reason) from None
        task = asyncio.create_task(self.replay(feed, subscriber, reader))
        self.replays.add(task)
        task.add_done_callback(self.replays.discard)

    def unsubscribe(self, subscriber: Subscriber, error: GraphQLError | None = None) -> None:
        """Stop delivering to ``subscriber``; with ``error``, tell it why."""
        subscriber.end(error)
        feed = self.feeds.get(subscriber.entity)
        if feed is not None:
            feed.subscribers.discard(subscriber)

    async def replay(self, feed: Feed, subscriber: Subscriber, reader: StreamReader) -> None:
        """History through its own reader, then the batches the feed kept meanwhile, then live."""
        attempt = 0
        try:
            while not subscriber.ended:
                try:
                    events = await reader.read()
                    if not events and await reader.caught_up():
                        break
                    attempt = 0
                except (NatsError, OSError, TimeoutError) as error:
                    log.info("replay for %s: %s; retrying", subscriber.entity, type(error).__name__)
                    await _pause(attempt)
                    attempt += 1
                    continue
                if events:
                    await self.deliver([subscriber], events)
            while subscriber.pending and not subscriber.ended:
                await self.deliver([subscriber], subscriber.pending.pop(0))
            subscriber.live = True  # no await since `pending` was seen empty: the feed's next batch is live
        finally:
            await reader.close()

    async def deliver(self, subscribers: list[Subscriber], events: list[Event]) -> None:
        """Evaluate ``events`` for ``subscribers`` and hand over the messages; retries while the database is down."""
        attempt = 0
        while True:
            subscribers = [s for s in subscribers if not s.ended]
            if not subscribers:
                return
            marks = {s: s.watermark for s in subscribers}
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    await begin(conn, self.settings.statement_timeout_ms)
                    out = await evaluate(conn, subscribers, events)
                break
            except Exception as exc:  # noqa: BLE001 - an outage is retried; anything else ends who caused it
                for s, mark in marks.items():
                    s.watermark = mark  # the batch is evaluated again
                if classify(exc) == "DATABASE_UNAVAILABLE":
                    log.warning("subscriptions on %s: database unavailable (%s); retrying", events[0]["entity"],
                                type(exc).__name__)
                    await _pause(attempt)
                    attempt += 1
                    continue
                if len(subscribers) == 1:
                    self.unsubscribe(subscribers[0], database_error(exc, path=[subscribers[0].root.key]))
                    return
                for s in subscribers:  # find who: one by one
                    await self.deliver([s], events)
                return
        for s, messages in out.items():
            if messages and not s.ended and not s.deliver(messages):
                self.unsubscribe(s)  # over its bound: its transport cuts it off

    async def close(self) -> None:
        for task in list(self.replays):
            task.cancel()
        for feed in list(self.feeds.values()):
            await feed.stop()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()


class Feed:
    """One entity's live events, evaluated once per batch for every live subscriber."""

    def __init__(self, hub: Hub, entity: str) -> None:
        self.hub = hub
        self.entity = entity
        self.subscribers: set[Subscriber] = set()
        self.task: asyncio.Task[None] | None = None
        self.reader: StreamReader | None = None
        self.stopped = False

    async def start(self, js: Any) -> None:
        """Position at the stream's end now (before any replay checks its catch-up), then run."""
        self.reader = StreamReader(js, self.hub.topology, self.entity)
        await self.reader.start_at_end()
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        assert self.reader is not None
        attempt = 0
        idle = 0
        while True:
            try:
                events = await self.reader.read()
                attempt = 0
            except (NatsError, OSError, TimeoutError) as error:
                log.info("feed %s: %s; retrying", self.entity, type(error).__name__)
                await _pause(attempt)
                attempt += 1
                continue
            idle = 0 if self.subscribers else idle + 1
            if idle > 25:  # no subscriber for a while (25 idle reads): stop reading
                self.stopped = True
                await self.reader.close()
                return
            if events:
                await self.dispatch(events)

    async def dispatch(self, events: list[Event]) -> None:
        bound = self.hub.settings.subscription_buffer
        live = []
        self.subscribers = {s for s in self.subscribers if not s.ended}
        for s in list(self.subscribers):
            if s.live:
                live.append(s)
            elif not s.ended:
                s.pending.append(events)
                if s.pending_events() > bound * REPLAY_SLACK:
                    self.hub.unsubscribe(s, GraphQLError(
                        f"the replay could not catch up with the live stream ({bound * REPLAY_SLACK:,} events "
                        "waiting)", extensions={"code": "TOO_SLOW"}))
        if live:
            await self.hub.deliver(live, events)

    async def stop(self) -> None:
        self.stopped = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.reader is not None:
            await self.reader.close()
