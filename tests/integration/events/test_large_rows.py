"""Rows larger than a NATS message (1 MiB here): delivered out of band, never blocking the other events.

PostgreSQL → relay → JetStream (a reference in the message, the event in the Object Store
bucket ``<NAMESPACE>_LARGE_EVENTS``) → each sink's consumer, which resolves the reference.
Rows of 5 MiB and 64 MiB among small ones reach chDB, ClickHouse and OpenSearch with equal
payloads (the conservation oracle); a row a sink cannot take (OpenSearch refuses a request
over its http.max_content_length, 100mb) is dead-lettered there with the reason while the
other events, and the other sinks, go on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow.flight as flight
import pytest

from quiver.events import bus
from quiver.events.dlq import DeadLetter, dead_letters
from tests.conftest import start_server, stop_server, wait_for
from tests.support.oracle import compare, source_events
from tests.support.pipeline import Pipeline, nats_url, opensearch_url

MiB = 1 << 20


def hex_text(mib: int, seed: str) -> str:
    """SQL for ``mib`` MiB of hexadecimal text (md5 runs: TOAST barely compresses it)."""
    return f"(SELECT string_agg(md5('{seed}' || i::text), '') FROM generate_series(1, {mib * MiB // 32}) AS i)"


def large_events(url: str) -> dict[str, int]:
    """event_id → bytes of data, for the outbox events over 1 MiB."""
    return {e[0]: len(e[6]) for e in source_events(url) if len(e[6]) > MiB}


def nats(fn: Any) -> Any:
    """Run ``fn(js)`` on a fresh connection."""

    async def run() -> Any:
        nc, js = await bus.connect(nats_url(), name="quiver-test-large")
        try:
            return await fn(js)
        finally:
            await nc.close()

    return asyncio.run(run())


def objects(namespace: str, event_ids: list[str]) -> dict[str, tuple[str, int] | None]:
    """Per event id: (nuid, size) of its object in the large-event bucket, or None."""

    async def read(js: Any) -> dict[str, tuple[str, int] | None]:
        store = await js.object_store(bus.Topology(namespace).large_bucket)
        found: dict[str, tuple[str, int] | None] = {}
        for event_id in event_ids:
            try:
                info = await store.get_info(event_id)
                found[event_id] = (info.nuid, info.size)
            except Exception:  # noqa: BLE001 - not there
                found[event_id] = None
        return found

    result: dict[str, tuple[str, int] | None] = nats(read)
    return result


def letters(namespace: str, sink: str) -> list[DeadLetter]:
    result: list[DeadLetter] = nats(lambda js: dead_letters(js, bus.Topology(namespace), sink))
    return result


@pytest.fixture()
def namespace() -> Iterator[str]:
    name = f"t{time.monotonic_ns() % 10**12}"
    yield name

    async def drop(js: Any) -> None:
        await bus.LargeEvents(js, bus.Topology(name)).delete_bucket()

    nats(drop)


def test_large_rows_reach_every_sink_among_small_ones(scratch_url: str, tmp_path: Path, namespace: str) -> None:
    pipeline = Pipeline(scratch_url, tmp_path, namespace, ("chdb", "clickhouse", "search"), opensearch=opensearch_url())
    try:
        pipeline.cli("install")
        pipeline.start_all()
        with psycopg.connect(scratch_url) as conn:  # one transaction: large rows between small ones
            conn.execute("UPDATE orders SET note = 'small before' WHERE id <= 20")
            conn.execute(f"UPDATE customers SET profile = jsonb_build_object('blob', {hex_text(5, 'c')}, 'n', id)"
                         " WHERE id IN (1, 2, 3)")
            conn.execute(f"UPDATE orders SET note = {hex_text(64, 'o')} WHERE id = 21")
            conn.execute("UPDATE orders SET note = 'small after' WHERE id BETWEEN 22 AND 40")
            conn.commit()
            conn.execute("UPDATE customers SET name = name || '!' WHERE id BETWEEN 10 AND 30")
            conn.commit()
        large = large_events(scratch_url)
        assert sorted(size // MiB for size in large.values()) == [5, 5, 5, 64], large
        pipeline.wait_drained(timeout=600)
        counts = pipeline.check()  # every sink: same events, none twice, equal payloads (64 MiB compared)
        assert counts["events"] == 20 + 3 + 1 + 19 + 21, counts

        stored = objects(namespace, list(large))
        assert all(found is not None and found[1] > size for (event_id, size), found in
                   ((item, stored[item[0]]) for item in large.items())), stored
        small = [e[0] for e in source_events(scratch_url) if e[0] not in large][:5]
        assert set(objects(namespace, small).values()) == {None}  # small events travel inline

        # The Flight events ticket resolves references too: the 64 MiB event arrives whole.
        server = start_server(scratch_url, QUIVER_NATS_URL=nats_url(), QUIVER_EVENTS_NAMESPACE=namespace)
        try:
            client = flight.connect(server.flight_url)
            ticket = flight.Ticket(orjson.dumps({"kind": "events", "entity": "orders", "from_seq": 0}))
            history = client.do_get(ticket).read_all()
            source = {e[0]: e for e in source_events(scratch_url) if e[2] == "orders"}
            assert history.column("event_id").to_pylist() == list(source)
            assert history.column("data").to_pylist() == [e[6] for e in source.values()]
        finally:
            stop_server(server)

        # A relay that crashed before marking publishes everything again: the objects are left as they are.
        pipeline.stop("relay")
        with psycopg.connect(scratch_url) as conn:
            conn.execute("UPDATE quiver.outbox SET published_at = NULL")
        pipeline.start("relay")
        pipeline.wait_drained(timeout=600)
        assert objects(namespace, list(large)) == stored  # same chunks (nuid), same sizes
        pipeline.check()
    finally:
        pipeline.cleanup()


def test_a_row_a_sink_cannot_take_is_dead_lettered_there_and_the_rest_flows(
        scratch_url: str, tmp_path: Path, namespace: str) -> None:
    pipeline = Pipeline(scratch_url, tmp_path, namespace, ("clickhouse", "search"), opensearch=opensearch_url())
    try:
        pipeline.cli("install")
        pipeline.start_all()
        with psycopg.connect(scratch_url) as conn:
            conn.execute("UPDATE orders SET note = 'before' WHERE id <= 10")
            conn.execute(f"UPDATE orders SET note = {hex_text(110, 'x')} WHERE id = 11")  # > OpenSearch's 100mb
            conn.execute("UPDATE orders SET note = 'after' WHERE id BETWEEN 12 AND 20")
            conn.commit()
        [(huge, size)] = large_events(scratch_url).items()
        assert size > 110 * MiB
        wait_for(lambda: len(letters(namespace, "search")) == 1, 300,
                 lambda: f"no dead letter; search log: {pipeline.log('consume:search')[-3000:]}")
        with psycopg.connect(scratch_url) as conn:  # the consumer keeps flowing after the dead letter
            conn.execute("UPDATE orders SET note = 'later' WHERE id BETWEEN 21 AND 25")
            conn.commit()
        pipeline.wait_drained(timeout=600)

        source = source_events(scratch_url)
        assert len(source) == 10 + 1 + 9 + 5
        assert compare(source, pipeline.clickhouse_rows(), "clickhouse") == []  # ClickHouse takes it
        assert compare([e for e in source if e[0] != huge], pipeline.search_rows(), "search") == []
        [letter] = letters(namespace, "search")
        assert letter.event["event_id"] == huge and bus.is_reference(letter.event), letter.event
        assert "413" in letter.reason, letter.reason  # the search server's own refusal, as the reason
        assert letters(namespace, "clickhouse") == []

        async def resolve(js: Any) -> dict[str, Any]:  # the dead letter's reference still resolves (for replay)
            return await bus.LargeEvents(js, bus.Topology(namespace)).resolve(letter.event)

        event = nats(resolve)
        assert event["data"] == next(e[6] for e in source if e[0] == huge)
    finally:
        pipeline.cleanup()


def test_a_reference_whose_object_is_missing_is_dead_lettered(scratch_url: str, tmp_path: Path,
                                                              namespace: str) -> None:
    pipeline = Pipeline(scratch_url, tmp_path, namespace, ("clickhouse",))
    topology = bus.Topology(namespace)
    try:
        pipeline.cli("install")
        pipeline.start_all()
        with psycopg.connect(scratch_url) as conn:
            conn.execute("UPDATE orders SET note = 'before' WHERE id <= 10")
            conn.commit()
        pipeline.wait_drained()

        def reference(seq: int) -> dict[str, Any]:
            event_id = str(uuid.uuid4())
            return bus.large_reference({"event_id": event_id, "seq": seq, "entity": "orders", "op": "update",
                                        "occurred_at": 1_714_557_600_000_000}, 5 * MiB)

        no_bucket, no_object = reference(10**9), reference(10**9 + 1)

        async def publish(js: Any) -> None:
            await js.publish(topology.subject("orders"), orjson.dumps([no_bucket]))
            await bus.LargeEvents(js, topology).put("something-else", b"{}")  # the bucket exists from here on
            await js.publish(topology.subject("orders"), orjson.dumps([no_object]))

        nats(publish)
        with psycopg.connect(scratch_url) as conn:
            conn.execute("UPDATE orders SET note = 'after' WHERE id BETWEEN 11 AND 20")
            conn.commit()
        wait_for(lambda: len(letters(namespace, "clickhouse")) == 2, 120, "two dead letters")
        pipeline.wait_drained()
        found = {letter.event["event_id"]: letter for letter in letters(namespace, "clickhouse")}
        assert found[no_bucket["event_id"]].reason == f"the large-event bucket {topology.large_bucket} does not exist"
        assert found[no_object["event_id"]].reason == (
            f"large event {no_object['event_id']} is not in the bucket {topology.large_bucket}")
        assert compare(source_events(scratch_url), pipeline.clickhouse_rows(), "clickhouse") == []
    finally:
        pipeline.cleanup()
