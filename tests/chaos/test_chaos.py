"""Chaos: kill or freeze each service mid-stream; every sink still ends with exactly the source's events.

Each scenario runs against private NATS, ClickHouse and Redis servers (and OpenSearch when
the search sink is present), drives changes while the fault happens, recovers, drains, and
then applies the conservation oracle to every sink. Liveness: after recovery, a fresh
change reaches every sink within 30 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.chaos.cluster import Cluster
from tests.conftest import Changes, free_port, outside_basetemp, wait_for
from tests.support.changes import mixed_changes
from tests.support.pipeline import Pipeline

SINKS = ("chdb", "clickhouse", "search")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """One private set of servers for the module; every scenario leaves them all running again.

    Outside pytest's basetemp: OpenSearch runs as a service user (see ``outside_basetemp``).
    """
    with outside_basetemp("quiver-chaos-") as root:
        running = Cluster(root, with_search=True)
        try:
            running.start()
            yield running
        finally:
            running.stop()


@pytest.fixture()
def pipeline(scratch_url: str, tmp_path: Path, cluster: Cluster) -> Iterator[Pipeline]:
    running = Pipeline(scratch_url, tmp_path, f"c{time.monotonic_ns() % 10**12}", SINKS,
                       clickhouse=cluster.url("clickhouse"), nats=cluster.url("nats"), redis=cluster.url("redis"),
                       opensearch=cluster.url("opensearch"),
                       metrics_ports={f"consume:{s}": free_port() for s in SINKS})
    running.cli("install")
    running.start_all()
    yield running
    # A failed scenario may have left a server down or frozen: bring it back first, since cleaning up
    # needs NATS (whose client reconnects forever) and the next scenario needs everything.
    cluster.ensure_running()
    running.cleanup()


def workload(pipeline: Pipeline, seed: int) -> Changes:
    """Changes committed steadily (~1,400 events/s) until the test stops them, once its fault is in place."""
    return Changes(pipeline.database_url, seed=seed, per_round=200, pace=0.5)


def settle(pipeline: Pipeline) -> None:
    """Drain, check every sink, then prove the pipeline is live: a new change arrives within 30 s."""
    pipeline.wait_drained(timeout=180)
    pipeline.check()
    with psycopg.connect(pipeline.database_url) as conn:
        conn.execute("UPDATE products SET name = name || '+' WHERE id = 1")
        conn.commit()
    pipeline.wait_drained(timeout=30)
    pipeline.check()


def outbox(pipeline: Pipeline, query: str, *params: object) -> int:
    """One number from the outbox."""
    with psycopg.connect(pipeline.database_url) as conn:
        row = conn.execute(query, params).fetchone()
    value = row[0] if row else None
    assert isinstance(value, int), (query, row)
    return value


def written(pipeline: Pipeline, sink: str) -> float:
    """Events the sink's consumer process has written since it started (its Prometheus counter)."""
    return pipeline.metric(f"consume:{sink}", 'quiver_sink_written_total{sink="' + sink + '"}')


def dedup_up(pipeline: Pipeline, sink: str) -> float:
    return pipeline.metric(f"consume:{sink}", f'quiver_dedup_up{{sink="{sink}"}}')


def wait_until_flowing(pipeline: Pipeline, sinks: tuple[str, ...] = SINKS) -> None:
    """Until every one of ``sinks`` has written events of the workload: the stream is under way."""
    wait_for(lambda: all(written(pipeline, s) > 0 for s in sinks), 60,
             lambda: f"the workload's events did not reach the sinks: { {s: written(pipeline, s) for s in sinks} }")


def wait_until_receiving(pipeline: Pipeline, sinks: list[str], since: dict[str, float], timeout: float,
                         failure: str) -> None:
    """Until each of ``sinks`` has written more events than it had in ``since``."""
    wait_for(lambda: all(written(pipeline, s) > since[s] for s in sinks), timeout,
             lambda: f"{failure}: written {since} -> { {s: written(pipeline, s) for s in sinks} }")


def wait_until_caught_up(pipeline: Pipeline, sinks: list[str], timeout: float, failure: str) -> None:
    """Until the outbox is published and each of ``sinks`` has every event in JetStream acknowledged."""
    def caught_up() -> bool:
        if pipeline.backlog():
            return False
        state = pipeline.consumer_state()
        return all(state[s] == (0, 0) for s in sinks)

    wait_for(caught_up, timeout,
             lambda: f"{failure}: backlog {pipeline.backlog()}, (pending, unacked) {pipeline.consumer_state()}")


def test_clickhouse_killed_mid_stream(pipeline: Pipeline, cluster: Cluster) -> None:
    others = ["chdb", "search"]
    with workload(pipeline, seed=21) as load:
        wait_until_flowing(pipeline)
        cluster.kill("clickhouse")
        before = {sink: written(pipeline, sink) for sink in others}
        wait_until_receiving(pipeline, others, before, 60,
                             "the other sinks stopped receiving while ClickHouse was down")
        load.stop(at_least=load.rounds + 1)  # changes committed while ClickHouse is down
    wait_until_caught_up(pipeline, others, 180, "the other sinks did not catch up while ClickHouse was down")
    pending, unacked = pipeline.consumer_state()["clickhouse"]
    assert pending + unacked > 0, "ClickHouse's events should be waiting in JetStream while it is down"
    cluster.restart("clickhouse")
    settle(pipeline)


def test_opensearch_paused_for_30_seconds(pipeline: Pipeline, cluster: Cluster) -> None:
    others = ["chdb", "clickhouse"]
    with workload(pipeline, seed=27) as load:
        wait_until_flowing(pipeline)
        frozen = cluster.pause("opensearch")
        thaw_at = time.monotonic() + 30
        try:
            before = {sink: written(pipeline, sink) for sink in others}
            wait_until_receiving(pipeline, others, before, thaw_at - time.monotonic(),
                                 "the other sinks stopped receiving while OpenSearch was frozen")
            load.stop(at_least=load.rounds + 1)  # changes committed while OpenSearch is frozen
            time.sleep(max(0.0, thaw_at - time.monotonic()))  # the fault: OpenSearch stays frozen for 30 s
        finally:
            cluster.resume(frozen, "opensearch")
    settle(pipeline)


def test_nats_killed_mid_stream(pipeline: Pipeline, cluster: Cluster) -> None:
    with workload(pipeline, seed=22) as load:
        wait_until_flowing(pipeline)
        cluster.kill("nats")
        cut = outbox(pipeline, "SELECT coalesce(max(seq), 0) FROM quiver.outbox")  # all committed before we look
        # Two more rounds: the second starts after ``cut`` was read, so all its rows come after it.
        load.stop(at_least=load.rounds + 2)
    # Every row committed after ``cut`` came after NATS died and cannot have reached JetStream.
    later = outbox(pipeline, "SELECT count(*) FROM quiver.outbox WHERE seq > %s", cut)
    published = outbox(pipeline, "SELECT count(*) FROM quiver.outbox WHERE seq > %s AND published_at IS NOT NULL", cut)
    assert later > 0, "the workload committed nothing while NATS was down"
    assert published == 0, f"{published} of {later} outbox rows committed while NATS was down were marked published"
    cluster.restart("nats")
    settle(pipeline)


def test_redis_killed_then_back(pipeline: Pipeline, cluster: Cluster) -> None:
    with workload(pipeline, seed=23) as load:
        wait_until_flowing(pipeline)
        cluster.kill("redis")
        before = {s: written(pipeline, s) for s in SINKS}
        load.stop(at_least=load.rounds + 1)  # changes committed while Redis is down
    pipeline.wait_drained(timeout=180)  # the pipeline flows without dedup
    # Read before check(): reading chDB restarts its consumer, which starts its counters afresh.
    after = {s: written(pipeline, s) for s in SINKS}
    dedup = {s: dedup_up(pipeline, s) for s in SINKS}
    pipeline.check()
    assert all(after[s] > before[s] for s in SINKS), f"a sink wrote nothing after Redis died: {before} -> {after}"
    assert all(dedup[s] == 0 for s in SINKS), f"a sink that wrote without Redis still reports dedup up: {dedup}"
    cluster.restart("redis")
    mixed_changes(pipeline.database_url, 1, per_round=200, seed=24)
    pipeline.wait_drained(timeout=60)

    def dedup_back() -> bool:
        if all(dedup_up(pipeline, s) == 1 for s in SINKS):
            return True
        with psycopg.connect(pipeline.database_url) as conn:  # a write makes each consumer try Redis again
            conn.execute("UPDATE products SET in_stock = NOT in_stock WHERE id = 2")
            conn.commit()
        return False

    wait_for(dedup_back, 30, interval=1,
             failure=lambda: f"dedup did not come back with Redis: { {s: dedup_up(pipeline, s) for s in SINKS} }")
    settle(pipeline)


def test_consumer_killed_mid_batch(pipeline: Pipeline) -> None:
    with workload(pipeline, seed=25) as load:
        for sink in SINKS:
            since = {sink: written(pipeline, sink)}
            wait_until_receiving(pipeline, [sink], since, 60, f"consume:{sink} wrote nothing while the workload ran")
            pipeline.kill(f"consume:{sink}")
            pipeline.start(f"consume:{sink}")
        load.stop(at_least=load.rounds + 1)
    settle(pipeline)


def test_everything_down_then_back_in_another_order(pipeline: Pipeline, cluster: Cluster) -> None:
    with workload(pipeline, seed=26) as load:
        wait_until_flowing(pipeline)
        for name in ("clickhouse", "nats", "redis"):
            cluster.kill(name)
        frozen = cluster.pause("opensearch")
        time.sleep(3)  # the fault: everything stays down for 3 s while the workload keeps committing
        load.stop(at_least=load.rounds + 1)
    for name in ("redis", "opensearch", "nats", "clickhouse"):  # not the order they went down in
        if name == "opensearch":
            cluster.resume(frozen, "opensearch")
        else:
            cluster.restart(name)
        time.sleep(1)  # the fault: they come back one at a time, a second apart
    settle(pipeline)
