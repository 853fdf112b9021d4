"""Poison events: refused for good by a sink, dead-lettered with the reason, replayed once after a fix."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from quiver.events import bus
from quiver.events.dlq import DeadLetter, dead_letters
from tests.conftest import wait_for
from tests.support.changes import mixed_changes
from tests.support.oracle import compare, source_events
from tests.support.pipeline import Pipeline, clickhouse_url, nats_url


def letters(namespace: str) -> list[DeadLetter]:
    async def read() -> list[DeadLetter]:
        nc, js = await bus.connect(nats_url())
        try:
            return list(await dead_letters(js, bus.Topology(namespace), "clickhouse"))
        finally:
            await nc.close()

    return asyncio.run(read())


def test_refused_events_are_dead_lettered_and_replay_exactly_once(scratch_url: str, tmp_path: Path) -> None:
    namespace = f"t{time.monotonic_ns() % 10**12}"
    pipeline = Pipeline(scratch_url, tmp_path, namespace, sinks=("clickhouse",))
    ch = clickhouse_url()

    def sql(query: str) -> str:
        response = httpx.post(ch, params={"query": query}, timeout=30)
        assert response.status_code == 200, response.text
        return response.text

    try:
        # An operator's mistake: tenant_id created NOT NULL, so every event the sink sends is refused for good.
        sql(f"CREATE DATABASE {namespace}")
        sql(f"CREATE TABLE {namespace}.events (event_id UUID, seq Int64, entity String, entity_id String, op String, "
            "occurred_at DateTime('UTC'), occurred_at_us Int64, data String, changed Array(String), "
            "actor Nullable(String), tenant_id String) ENGINE = ReplacingMergeTree(seq) "
            "PARTITION BY toYYYYMM(occurred_at) ORDER BY (entity, seq, event_id)")
        pipeline.cli("install")
        pipeline.start_all()
        mixed_changes(scratch_url, 1, per_round=30)
        source = source_events(scratch_url)
        wait_for(lambda: len(letters(namespace)) >= len(source), 120,
                 lambda: f"{len(letters(namespace))} dead letters for {len(source)} events")
        dead = letters(namespace)
        assert len(dead) == len(source), f"{len(dead)} dead letters for {len(source)} events"
        first = dead[0]
        assert first.sink == "clickhouse" and "Code: 368" in first.reason, first
        assert first.attempts >= 1, first
        pipeline.wait_drained()  # the consumer moved on: nothing stuck, nothing written
        assert sql(f"SELECT count() FROM {namespace}.events").strip() == "0"
        listing = pipeline.cli("dlq", "list", "--sink", "clickhouse").stdout
        assert f"{len(source)} dead letter(s)" in listing

        sql(f"ALTER TABLE {namespace}.events MODIFY COLUMN tenant_id Nullable(String)")  # the fix
        assert f"replayed {len(source)} dead letter(s)" in pipeline.cli("dlq", "replay", "--sink", "clickhouse").stdout
        assert letters(namespace) == []
        assert "replayed 0 dead letter(s)" in pipeline.cli("dlq", "replay", "--sink", "clickhouse").stdout
        assert compare(source, pipeline.clickhouse_rows(), "clickhouse") == []
    finally:
        pipeline.cleanup()
