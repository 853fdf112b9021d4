"""``quiver events read`` and ``quiver events status`` on every sink: both use only the documented read."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quiver.arrow.events import events_to_batch
from quiver.events.sinks.registry import NAMES, make_sink
from tests.conftest import ROOT
from tests.integration.events.sinks.support import event, expected
from tests.support.pipeline import Pipeline, opensearch_url

EVENTS = [event(i, changed=["a"] if i % 2 else None, actor="alice" if i % 3 else None) for i in range(1, 8)]
CHDB_WRITE = """
import asyncio, json, sys
from quiver.arrow.events import events_to_batch
from quiver.config import Settings
from quiver.events.sinks.registry import make_sink

async def main() -> None:
    sink = make_sink("chdb", Settings())
    await sink.setup()
    await sink.write(events_to_batch(json.loads(sys.argv[1])))

asyncio.run(main())
"""


@pytest.fixture
def pipeline(scratch_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """The pipeline harness's settings (no process runs): every sink holds ``EVENTS``, written directly."""
    running = Pipeline(scratch_url, tmp_path, f"t{time.monotonic_ns() % 10**12}", NAMES, opensearch=opensearch_url())
    running.cli("install")

    async def write(name: str) -> None:
        sink = make_sink(name, running.settings())
        try:
            await sink.setup()
            await sink.write(events_to_batch(EVENTS))
        finally:
            await sink.close()

    try:
        for name in ("clickhouse", "search"):
            asyncio.run(write(name))
        written = subprocess.run([sys.executable, "-c", CHDB_WRITE, json.dumps(EVENTS)], env=running.env(), cwd=ROOT,
                                 capture_output=True, timeout=120)
        assert written.returncode == 0, written.stderr.decode(errors="replace")[-3000:]
        yield running
    finally:
        running.cleanup()


def test_read_and_status_show_each_sinks_documented_read(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        assert pipeline.read_with_cli(name) == expected(EVENTS), name  # --format arrow
    lines = pipeline.cli("read", "--sink", "search").stdout.splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == [e["event_id"] for e in EVENTS]
    assert pipeline.cli("read", "--sink", "clickhouse", "--count").stdout == f"{len(EVENTS)}\n"
    assert pipeline.sink_rows("clickhouse") == pipeline.sink_rows("search") == expected(EVENTS)  # in-process

    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    status = pipeline.cli("status").stdout.splitlines()
    for name in NAMES:
        [row] = [line for line in status if f"sink {name}" in line and "visible events" in line]
        assert row.split("│")[-2].strip() == str(len(EVENTS)), row


@pytest.mark.parametrize("command", [["read", "--sink", "kafka"], ["consume", "--sink", "chdb", "--sink", "kafka"]])
def test_an_unknown_sink_is_a_usage_error_naming_the_choices(command: list[str]) -> None:
    refused = subprocess.run([sys.executable, "-m", "quiver.cli", "events", *command], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})
    assert refused.returncode == 2
    assert "unknown sink 'kafka'; choose from chdb, clickhouse, search" in refused.stderr
