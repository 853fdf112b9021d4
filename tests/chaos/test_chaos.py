"""Chaos: kill or freeze each service mid-stream; every sink still ends with exactly the source's events.

Each scenario runs against private NATS, ClickHouse and Redis servers (and OpenSearch when
the search sink is present), drives changes while the fault happens, recovers, drains, and
then applies the conservation oracle to every sink. Liveness: after recovery, a fresh
change reaches every sink within 30 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.chaos.cluster import Cluster
from tests.conftest import free_port
from tests.support.changes import mixed_changes
from tests.support.pipeline import Pipeline

SINKS = ("chdb", "clickhouse", "search")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One private set of servers for the module; every scenario leaves them all running again."""
    running = Cluster(tmp_path_factory.mktemp("cluster"), with_search=True)
    running.start()
    yield running
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
    running.cleanup()


def workload(url: str, rounds: int, seed: int) -> threading.Thread:
    thread = threading.Thread(target=mixed_changes, args=(url, rounds), kwargs={"per_round": 600, "seed": seed})
    thread.start()
    return thread


def settle(pipeline: Pipeline) -> None:
    """Drain, check every sink, then prove the pipeline is live: a new change arrives within 30 s."""
    pipeline.wait_drained(timeout=180)
    pipeline.check()
    with psycopg.connect(pipeline.database_url) as conn:
        conn.execute("UPDATE products SET name = name || '+' WHERE id = 1")
        conn.commit()
    pipeline.wait_drained(timeout=30)
    pipeline.check()


def written(pipeline: Pipeline, sink: str) -> float:
    return pipeline.metric(f"consume:{sink}", 'quiver_sink_written_total{sink="' + sink + '"}')


def test_clickhouse_killed_mid_stream(pipeline: Pipeline, cluster: Cluster) -> None:
    load = workload(pipeline.database_url, 3, seed=21)
    time.sleep(1.5)
    cluster.kill("clickhouse")
    before = {sink: written(pipeline, sink) for sink in ("chdb", "search")}
    time.sleep(6)
    for sink, count in before.items():
        assert written(pipeline, sink) > count, f"{sink} stopped receiving while ClickHouse was down"
    load.join()
    cluster.restart("clickhouse")
    settle(pipeline)


def test_opensearch_paused_for_30_seconds(pipeline: Pipeline, cluster: Cluster) -> None:
    load = workload(pipeline.database_url, 3, seed=27)
    time.sleep(1.5)
    frozen = cluster.pause("opensearch")
    try:
        before = written(pipeline, "clickhouse")
        time.sleep(30)
        assert written(pipeline, "clickhouse") > before, "ClickHouse stopped receiving while OpenSearch was frozen"
    finally:
        cluster.resume(frozen, "opensearch")
    load.join()
    settle(pipeline)


def test_nats_killed_mid_stream(pipeline: Pipeline, cluster: Cluster) -> None:
    load = workload(pipeline.database_url, 3, seed=22)
    time.sleep(1.5)
    cluster.kill("nats")
    time.sleep(3)
    assert pipeline.backlog() > 0, "changes should wait in the outbox while NATS is down"
    load.join()
    cluster.restart("nats")
    settle(pipeline)


def test_redis_killed_then_back(pipeline: Pipeline, cluster: Cluster) -> None:
    load = workload(pipeline.database_url, 2, seed=23)
    time.sleep(1.5)
    cluster.kill("redis")
    load.join()
    pipeline.wait_drained(timeout=180)  # the pipeline flows without dedup
    pipeline.check()
    assert any(pipeline.metric(f"consume:{s}", f'quiver_dedup_up{{sink="{s}"}}') == 0 for s in SINKS)
    cluster.restart("redis")
    mixed_changes(pipeline.database_url, 1, per_round=200, seed=24)
    pipeline.wait_drained(timeout=60)
    deadline = time.monotonic() + 30
    while any(pipeline.metric(f"consume:{s}", f'quiver_dedup_up{{sink="{s}"}}') != 1 for s in SINKS):
        assert time.monotonic() < deadline, "dedup did not come back with Redis"
        with psycopg.connect(pipeline.database_url) as conn:
            conn.execute("UPDATE products SET in_stock = NOT in_stock WHERE id = 2")
            conn.commit()
        time.sleep(1)
    settle(pipeline)


def test_consumer_killed_mid_batch(pipeline: Pipeline) -> None:
    load = workload(pipeline.database_url, 3, seed=25)
    for sink in SINKS:
        time.sleep(1)
        pipeline.kill(f"consume:{sink}")
        pipeline.start(f"consume:{sink}")
    load.join()
    settle(pipeline)


def test_everything_down_then_back_in_another_order(pipeline: Pipeline, cluster: Cluster) -> None:
    load = workload(pipeline.database_url, 3, seed=26)
    time.sleep(1.5)
    for name in ("clickhouse", "nats", "redis"):
        cluster.kill(name)
    frozen = cluster.pause("opensearch")
    time.sleep(3)
    load.join()
    for name in ("redis", "opensearch", "nats", "clickhouse"):  # not the order they went down in
        if name == "opensearch":
            cluster.resume(frozen, "opensearch")
        else:
            cluster.restart(name)
        time.sleep(1)
    settle(pipeline)
