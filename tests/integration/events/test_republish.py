"""What JetStream's duplicate window does and does not catch when the relay publishes again.

A relay that dies between publishing and marking publishes the same rows again. The
message id names the entity, seq range and event count, so the stream drops a republish
grouped the same way; one grouped differently (another ``events_per_message``) is stored
again, and the sink, which deduplicates by ``event_id``, still counts every event once.
Real PostgreSQL, NATS JetStream and ClickHouse.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import psycopg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from quiver.events import bus, capture
from quiver.events.consumer import ConsumerSettings, SinkConsumer
from quiver.events.relay import Relay, RelayConfig, group_messages
from quiver.events.sinks.clickhouse import ClickHouseSink
from quiver.schema.introspect import introspect
from tests.support.pipeline import clickhouse_url, nats_url

ROWS = 500
_ROWS_SQL = """SELECT seq, event_id::text, entity, entity_id, op,
       CAST(floor(extract(epoch FROM occurred_at) * 1000000) AS bigint), data::text, changed, actor, tenant_id
FROM quiver.outbox ORDER BY seq"""


def _setup(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE republished (id int PRIMARY KEY, v text)")
        model = introspect(conn, ["public"])
        capture.install(conn, [e for e in model.entities.values() if e.name == "republished"])
        conn.execute("INSERT INTO republished SELECT g, 'v' || g FROM generate_series(1, %s) AS g", (ROWS,))
        return conn.execute(_ROWS_SQL).fetchall()


async def _events_in_stream(js: Any, topology: bus.Topology) -> int:
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0)
    subscription = await js.pull_subscribe(topology.filter(), stream=topology.stream, config=config)
    total = 0
    while True:
        try:
            messages = await subscription.fetch(100, timeout=1.0)
        except (TimeoutError, NatsTimeout):
            return total
        total += sum(len(orjson.loads(m.data)) for m in messages)


async def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.2)


def test_a_republish_grouped_differently_is_stored_twice_and_counted_once(scratch_url: str) -> None:
    rows = _setup(scratch_url)
    assert len(rows) == ROWS
    namespace = f"t{time.monotonic_ns() % 10**12}"
    topology = bus.Topology(namespace)

    async def scenario() -> None:
        nc, js = await bus.connect(nats_url(), name="quiver-test-republish")
        try:
            await bus.ensure_streams(js, topology)
            crashed = group_messages(rows, topology, 100, 1 << 20)  # a relay that published, then died
            for subject, body, msg_id in crashed:
                await js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})
            again = [await js.publish(s, b, headers={"Nats-Msg-Id": i}) for s, b, i in crashed]
            assert all(ack.duplicate for ack in again), "the same grouping must be dropped by the stream"
            assert await _events_in_stream(js, topology) == ROWS

            stop = asyncio.Event()  # the restarted relay groups by 37: other message ids
            relay = Relay(RelayConfig(scratch_url, nats_url(), events_per_message=37, topology=topology))
            relaying = asyncio.create_task(relay.run(stop))

            async def marked() -> bool:
                async with await psycopg.AsyncConnection.connect(scratch_url) as conn:
                    cursor = await conn.execute("SELECT count(*) FROM quiver.outbox WHERE published_at IS NULL")
                    row = await cursor.fetchone()
                    return row is not None and row[0] == 0

            await _until(marked, 60, "the relay marking every row published")
            stop.set()
            await relaying
            assert await _events_in_stream(js, topology) == 2 * ROWS, "a different grouping is stored again"

            sink = ClickHouseSink(clickhouse_url(), namespace)
            consumer = SinkConsumer(js, sink, ConsumerSettings(topology=topology))
            consuming_stop = asyncio.Event()
            consuming = asyncio.create_task(consumer.run(consuming_stop))

            async def written() -> bool:
                return await sink.count_visible() >= ROWS if sink.info is not None else False

            await _until(written, 120, "the sink receiving every event")
            consuming_stop.set()
            await consuming
            assert await sink.count_visible() == ROWS, "every event counted once"
            assert {e[1] for e in await sink.visible_events()} == {r[0] for r in rows}
            await sink.query(f"DROP DATABASE IF EXISTS {namespace}")
            await sink.close()
            for stream in (topology.stream, topology.dlq_stream):
                await js.delete_stream(stream)
        finally:
            await nc.close()

    asyncio.run(scenario())
