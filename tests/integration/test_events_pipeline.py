"""The event pipeline, for real: every committed change reaches every sink exactly once in effect.

PostgreSQL triggers → outbox → relay → NATS JetStream → one durable consumer per sink →
chDB and the ClickHouse server. The conservation oracle compares each sink with the
outbox: same event ids, none visible twice, equal payloads, per-entity order by seq.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from nats.js.errors import NotFoundError

from quiver.events import bus
from tests.conftest import Changes, wait_for
from tests.support.changes import concurrent_updates, mixed_changes, out_of_order_commit
from tests.support.oracle import compare, source_events
from tests.support.pipeline import Pipeline, opensearch_url

SINKS = ("chdb", "clickhouse", "search")


@dataclass(frozen=True)
class Progress:
    """Where one sink's durable JetStream consumer stands."""

    acked: int  # the stream sequence of its ack floor: every message up to it is written and acknowledged
    pending: int  # messages not yet delivered to it
    unacked: int  # delivered, not yet acknowledged

    @property
    def drained(self) -> bool:
        return self.pending == 0 and self.unacked == 0


MISSING = Progress(-1, -1, -1)  # the stream or the consumer is not created yet


def progress(pipeline: Pipeline) -> tuple[int, dict[str, Progress]]:
    """The event stream's last sequence, and each sink's consumer progress."""

    async def read() -> tuple[int, dict[str, Progress]]:
        topology = bus.Topology(pipeline.namespace)
        nc, js = await bus.connect(pipeline.nats, name="quiver-test")
        try:
            try:
                last = (await js.stream_info(topology.stream)).state.last_seq
            except NotFoundError:  # the relay creates it when it starts
                return 0, dict.fromkeys(pipeline.sinks, MISSING)
            sinks: dict[str, Progress] = {}
            for sink in pipeline.sinks:
                try:
                    info = await js.consumer_info(topology.stream, f"quiver-sink-{sink}")
                except NotFoundError:
                    sinks[sink] = MISSING
                    continue
                acked = info.ack_floor.stream_seq if info.ack_floor is not None else 0
                sinks[sink] = Progress(acked, info.num_pending or 0, info.num_ack_pending or 0)
            return last, sinks
        finally:
            await nc.close()

    return asyncio.run(read())


def published(pipeline: Pipeline) -> int:
    """Outbox rows the relay has published (the tests keep published rows for a day)."""
    with psycopg.connect(pipeline.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM quiver.outbox WHERE published_at IS NOT NULL").fetchone()
    count = row[0] if row else None
    assert isinstance(count, int), row
    return count


def wait_until_relay_publishes(pipeline: Pipeline, what: str) -> None:
    """Until the relay publishes outbox rows beyond those published now: it is mid-stream."""
    start = published(pipeline)
    wait_for(lambda: published(pipeline) > start, 60,
             lambda: f"{what} published nothing: {published(pipeline)} published, backlog {pipeline.backlog()}")


def wait_until_sink_acknowledges(pipeline: Pipeline, sink: str) -> None:
    """Until ``sink``'s consumer acknowledges messages beyond those acknowledged now: it is mid-stream."""
    start = max(progress(pipeline)[1][sink].acked, 0)
    wait_for(lambda: progress(pipeline)[1][sink].acked > start, 60,
             lambda: f"consume:{sink} acknowledged nothing beyond stream seq {start}: {progress(pipeline)}")


@pytest.fixture()
def pipeline(scratch_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    namespace = f"t{time.monotonic_ns() % 10**12}"
    running = Pipeline(scratch_url, tmp_path, namespace, SINKS, opensearch=opensearch_url())
    running.cli("install")
    yield running
    running.cleanup()


def test_conservation_over_100k_changes(pipeline: Pipeline) -> None:
    pipeline.start_all()
    workload = threading.Thread(target=mixed_changes, args=(pipeline.database_url, 28), kwargs={"per_round": 1000})
    workload.start()
    concurrent_updates(pipeline.database_url, threads=4, statements=250)
    workload.join()
    for i in range(5):
        out_of_order_commit(pipeline.database_url, f"extra{i}")
    drained = pipeline.wait_drained()
    counts = pipeline.check()
    assert counts["events"] >= 100_000, counts
    with psycopg.connect(pipeline.database_url) as conn:
        ops = {str(op): n for op, n in conn.execute("SELECT op, count(*) FROM quiver.outbox GROUP BY op")}
    assert set(ops) == {"insert", "update", "delete"}
    print(f"\n{counts['events']:,} events {ops}, drained {drained:.1f}s after the workload")


def test_negative_control_a_dropped_event_fails_the_oracle(pipeline: Pipeline) -> None:
    pipeline.start_all()
    mixed_changes(pipeline.database_url, 1, per_round=200)
    pipeline.wait_drained()
    source = source_events(pipeline.database_url)
    sink = pipeline.chdb_rows()
    assert compare(source, sink) == []
    assert any("missing" in p for p in compare(source, sink[1:]))
    assert any("more than once" in p for p in compare(source, [*sink, sink[0]]))
    first = sink[0]
    changed = (*first[:6], first[6].replace("}", ', "x": 1}'), *first[7:])  # the payload (data) altered
    assert any("differ" in p for p in compare(source, [changed, *sink[1:]]))


def test_relay_killed_mid_stream(pipeline: Pipeline) -> None:
    pipeline.start_all()
    with Changes(pipeline.database_url, seed=31, per_round=250, pace=0.4) as load:
        wait_until_relay_publishes(pipeline, "the relay")
        pipeline.kill("relay")
        time.sleep(1)  # the fault: the relay stays dead for a second while the workload keeps committing
        pipeline.start("relay")
        wait_until_relay_publishes(pipeline, "the restarted relay")
        pipeline.kill("relay")
        pipeline.start("relay")
        load.stop(at_least=load.rounds + 1)  # changes committed after the last restart too
    pipeline.wait_drained()
    pipeline.check()


def test_consumer_killed_mid_stream(pipeline: Pipeline) -> None:
    pipeline.start_all()
    with Changes(pipeline.database_url, seed=32, per_round=250, pace=0.4) as load:
        for sink in SINKS:
            wait_until_sink_acknowledges(pipeline, sink)
            pipeline.kill(f"consume:{sink}")
            time.sleep(0.5)  # the fault: the consumer stays dead for half a second while events keep coming
            pipeline.start(f"consume:{sink}")
        load.stop(at_least=load.rounds + 1)
    pipeline.wait_drained()
    pipeline.check()


def test_events_from_graphql_mutations_arrive(pipeline: Pipeline) -> None:
    from tests.conftest import start_server, stop_server

    pipeline.start_all()
    server = start_server(pipeline.database_url)
    try:
        with server.client() as client:
            body = {"query": 'mutation { insertCustomer(object: {email: "gql@x", name: "From GraphQL"}) { id } '
                             'updateOrders(where: {id: {lte: "3"}}, set: {note: "via graphql"}) { id } }'}
            response = client.post("/graphql", json=body)
            assert response.status_code == 200 and "errors" not in response.json(), response.text
    finally:
        stop_server(server)
    pipeline.wait_drained()
    pipeline.check()
    status = pipeline.cli("status").stdout
    for stage in ("outbox", "backlog (unpublished)", "jetstream", "sink chdb", "pending (not delivered)"):
        assert stage in status, status
    rows = pipeline.chdb_rows()
    assert any(r[2] == "customers" and r[4] == "insert" and "From GraphQL" in r[6] for r in rows)
    assert sum(1 for r in rows if r[2] == "orders" and r[4] == "update" and "via graphql" in r[6]) == 3


def test_clickhouse_down_for_20_seconds(scratch_url: str, tmp_path: Path) -> None:
    """ClickHouse stopped mid-stream, started 20 s later: no loss, no visible duplicate; chDB never paused."""
    from tests.conftest import free_port
    from tests.support.servers.clickhouse import ClickHouseServer

    outage = 20.0
    others = [sink for sink in SINKS if sink != "clickhouse"]
    clickhouse = ClickHouseServer(tmp_path / "clickhouse", free_port(), free_port())
    clickhouse.start()
    running = Pipeline(scratch_url, tmp_path, f"t{time.monotonic_ns() % 10**12}", SINKS, clickhouse=clickhouse.url,
                       opensearch=opensearch_url())
    try:
        running.cli("install")
        running.start_all()
        with Changes(running.database_url, seed=11, per_round=250, pace=0.4) as load:
            wait_until_sink_acknowledges(running, "clickhouse")  # ClickHouse is taking the stream in
            clickhouse.stop()
            down_since = time.monotonic()
            _, before = progress(running)
            # While ClickHouse is down the other sinks keep receiving: their acknowledged position moves...
            wait_for(lambda: all(progress(running)[1][s].acked > before[s].acked for s in others), 60,
                     lambda: f"{others} stopped receiving while ClickHouse was down: {before} -> {progress(running)}")
            load.stop(at_least=load.rounds + 1)  # changes committed while ClickHouse is down

        # ...until they hold every event in the stream, while ClickHouse's events still wait in it.
        def others_caught_up() -> bool:
            if running.backlog():
                return False
            last, now = progress(running)
            return all(now[s].drained and now[s].acked == last for s in others)

        wait_for(others_caught_up, 180,
                 lambda: f"{others} did not catch up while ClickHouse was down: {progress(running)}")
        last, during = progress(running)
        assert during["clickhouse"].acked < last and not during["clickhouse"].drained, \
            f"ClickHouse's events should be waiting in JetStream: {during['clickhouse']}, stream at {last}"
        time.sleep(max(0.0, down_since + outage - time.monotonic()))  # the fault: ClickHouse stays down 20 s
        clickhouse.start()
        running.wait_drained()
        running.check()
    finally:
        running.cleanup()
        clickhouse.stop()
