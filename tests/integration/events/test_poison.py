"""Messages that can never be processed: dead-lettered with the reason, never a crash loop; the rest flows.

A consumer runs in this process against the real NATS server (its own namespace), feeding an
in-memory sink; messages are published straight to the stream subject with nats-py, as a
buggy or hostile publisher would. Each test ends with the consumer still running and a
later, valid message written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from quiver.arrow.events import batch_to_events
from quiver.events import bus
from quiver.events.consumer import ConsumerSettings, SinkConsumer
from quiver.events.dlq import DeadLetter, dead_letters, replay
from quiver.events.sinks.base import VisibleEvent, by_seq
from tests.support.pipeline import nats_url

SINK = "memory"


def event(seq: int, **changes: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "seq": seq, "entity": "orders", "entity_id": str(seq), "op": "insert",
            "occurred_at": 1_714_557_600_000_000 + seq, "data": f'{{"id": {seq}}}', "changed": None, "actor": None,
            "tenant_id": None, **changes}


@dataclass
class MemorySink:
    """A sink in a dict (idempotent per event_id); ``fails(event)`` makes its write raise for that event."""

    fails: Callable[[dict[str, Any]], Exception | None] = lambda _: None
    name: str = SINK
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # writes that included each event

    async def setup(self) -> None:
        return None

    async def write(self, batch: pa.RecordBatch) -> None:
        events = batch_to_events(batch)
        for e in events:
            self.attempts[e["event_id"]] = self.attempts.get(e["event_id"], 0) + 1
        for e in events:
            error = self.fails(e)
            if error is not None:
                raise error
        self.stored.update((e["event_id"], e) for e in events)

    async def visible_events(self) -> list[VisibleEvent]:
        return by_seq((e["event_id"], e["seq"], e["entity"], e["entity_id"], e["op"], e["occurred_at"], e["data"],
                       e["changed"] or [], e["actor"], e["tenant_id"]) for e in self.stored.values())

    async def count_visible(self) -> int:
        return len(self.stored)

    async def close(self) -> None:
        return None


@dataclass
class Running:
    js: Any
    topology: bus.Topology
    sink: MemorySink
    consumer: SinkConsumer
    task: asyncio.Task[None]

    async def publish(self, body: bytes, entity: str = "orders") -> None:
        await self.js.publish(self.topology.subject(entity), body)

    async def letters(self) -> list[DeadLetter]:
        return await dead_letters(self.js, self.topology, SINK)

    async def until(self, condition: Callable[[], bool], what: Callable[[], str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert not self.task.done(), f"the consumer died: {self.task.exception()!r}"
            if time.monotonic() > deadline:
                raise AssertionError(f"{what()} (waited {timeout}s)")
            await asyncio.sleep(0.1)

    async def drained(self, timeout: float = 60) -> None:
        """Until every message is delivered and acknowledged (or dead-lettered and acknowledged)."""
        deadline = time.monotonic() + timeout
        while True:
            info = await self.js.consumer_info(self.topology.stream, self.consumer.durable)
            if (info.num_pending, info.num_ack_pending) == (0, 0):
                return
            assert not self.task.done(), f"the consumer died: {self.task.exception()!r}"
            assert time.monotonic() < deadline, f"not drained: {info}"
            await asyncio.sleep(0.1)

    async def letters_until(self, count: int) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        deadline = time.monotonic() + 60
        while len(found) < count:
            assert not self.task.done(), f"the consumer died: {self.task.exception()!r}"
            assert time.monotonic() < deadline, f"{len(found)} dead letters, expected {count}: {found}"
            await asyncio.sleep(0.2)
            found = await self.letters()
        return found


@contextlib.asynccontextmanager
async def consumer_running(fails: Callable[[dict[str, Any]], Exception | None] = lambda _: None,
                           ) -> AsyncIterator[Running]:
    """A consumer of a fresh namespace feeding a ``MemorySink``; stopped (and the streams deleted) on exit."""
    topology = bus.Topology(f"t{time.monotonic_ns() % 10**12}")
    nc, js = await bus.connect(nats_url(), name="quiver-test-poison")
    await bus.ensure_streams(js, topology)
    sink = MemorySink(fails)
    settings = ConsumerSettings(batch_max=10, batch_wait=0.1, base_backoff=0.05, max_backoff=0.5, max_deliveries=3,
                                topology=topology)
    consumer = SinkConsumer(js, sink, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield Running(js, topology, sink, consumer, task)
        stop.set()
        await asyncio.wait_for(task, 30)  # it ends when asked, with no error: it never died
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        for stream in (topology.stream, topology.dlq_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()


def test_malformed_messages_are_dead_lettered_and_the_rest_flows() -> None:
    asyncio.run(malformed_messages())


async def malformed_messages() -> None:
    async with consumer_running() as running:
        before, after = event(1), event(9)
        good_neighbour = event(2)
        await running.publish(orjson.dumps([before]))
        await running.publish(b"not json {")
        await running.publish(b'{"event_id": "x", "seq": 3}')  # JSON, but not a list of events
        await running.publish(b"[1, 2]")  # a list, of no events
        missing = {k: v for k, v in event(4).items() if k != "entity_id"}
        wrong_type = {**event(5), "seq": "five"}  # would break the Arrow batch
        await running.publish(orjson.dumps([good_neighbour, missing, wrong_type]))
        await running.publish(orjson.dumps([{"$ref": 7}]))  # a malformed large-event reference
        await running.publish(orjson.dumps([after]))

        wanted = {e["event_id"] for e in (before, good_neighbour, after)}
        await running.until(lambda: wanted <= running.sink.stored.keys(),
                            lambda: f"stored {sorted(running.sink.stored)}, wanted {sorted(wanted)}")
        letters = await running.letters_until(7)
        reasons = sorted(letter.reason for letter in letters)
        assert len(letters) == 7, reasons
        assert any(r.startswith("message is not JSON") for r in reasons), reasons
        assert any(r == "message is not a JSON array of events but a dict" for r in reasons), reasons
        assert sum(1 for r in reasons if "not a JSON object but int" in r) == 2, reasons
        assert any("field entity_id is missing" in r for r in reasons), reasons
        assert any("field seq is str, not int" in r for r in reasons), reasons
        assert any("large-event reference: field event_id" in r for r in reasons), reasons
        assert running.sink.stored.keys() == wanted  # nothing invented, nothing lost
        for letter in letters:
            assert letter.sink == SINK and not letter.replayable and letter.message is not None, letter
            assert letter.message["subject"] == running.topology.subject("orders")
            assert {"event_id", "entity", "op", "seq"} <= letter.event.keys()  # what `quiver events dlq list` shows
        [missing_letter] = [letter for letter in letters if "entity_id is missing" in letter.reason]
        assert missing_letter.event["event_id"] == missing["event_id"] and missing_letter.message is not None
        assert missing_letter.message["index"] == 1 and missing_letter.attempts == 1  # dead-lettered at first sight
        assert await replay(running.js, running.topology, running.sink) == 0  # no event to replay: left in place
        assert len(await running.letters()) == 7

        later = event(10)
        await running.publish(orjson.dumps([later]))
        await running.until(lambda: later["event_id"] in running.sink.stored, lambda: "a later event was not written")
        await running.drained()


def _key_error_for_seq_13(e: dict[str, Any]) -> Exception | None:
    return KeyError(f"no column for {e['entity_id']}") if e["seq"] == 13 else None


def test_a_sink_raising_unexpectedly_dead_letters_that_event_after_the_bound() -> None:
    asyncio.run(sink_raising_unexpectedly())


async def sink_raising_unexpectedly() -> None:
    async with consumer_running(_key_error_for_seq_13) as running:
        events = [event(seq) for seq in range(10, 20)]
        bad = events[3]
        assert bad["seq"] == 13
        for start in range(0, len(events), 4):  # [10-13] [14-17] [18-19]: the bad one shares a message
            await running.publish(orjson.dumps(events[start:start + 4]))

        good = {e["event_id"] for e in events if e is not bad}
        await running.until(lambda: good <= running.sink.stored.keys(), lambda: f"{len(running.sink.stored)} stored")
        [letter] = await running.letters_until(1)
        assert letter.event == bad and letter.replayable
        assert letter.attempts == 3, letter  # JetStream's num_delivered when the bound was reached
        assert letter.reason.startswith("KeyError: 'no column for 13'") and "3 deliveries" in letter.reason, letter
        # Bisection isolates it on each delivery: it is tried a few times per delivery, and never again after the bound.
        tried = running.sink.attempts[bad["event_id"]]
        await asyncio.sleep(1.5)
        assert running.sink.attempts[bad["event_id"]] == tried
        assert bad["event_id"] not in running.sink.stored

        later = event(30)
        await running.publish(orjson.dumps([later]))
        await running.until(lambda: later["event_id"] in running.sink.stored, lambda: "a later event was not written")
        await running.drained()


def test_an_unexpected_failure_that_passes_is_written_on_redelivery_not_dead_lettered() -> None:
    asyncio.run(unexpected_failure_that_passes())


async def unexpected_failure_that_passes() -> None:
    seen: set[str] = set()

    def once(e: dict[str, Any]) -> Exception | None:
        if e["seq"] != 21 or e["event_id"] in seen:
            return None
        seen.add(e["event_id"])
        return RuntimeError("a hiccup")

    async with consumer_running(once) as running:
        events = [event(seq) for seq in range(20, 23)]
        await running.publish(orjson.dumps(events))
        wanted = {e["event_id"] for e in events}
        await running.until(lambda: wanted <= running.sink.stored.keys(), lambda: f"{len(running.sink.stored)} stored")
        await running.drained()
        assert await running.letters() == []
