"""The chDB sink's own tests (the shared contract is in ``test_every_sink.py``): its table is the ClickHouse
sink's, a table from before ``occurred_at_us`` is brought up to it, and other processes read it through
``quiver events read``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa

from quiver.arrow.events import events_to_batch
from quiver.events.sinks.base import VISIBLE_FIELDS, VISIBLE_SCHEMA, visible_rows
from quiver.events.sinks.chdb import ChdbSink
from quiver.events.sinks.chdb.ddl import ENGINE
from quiver.events.sinks.clickhouse.ddl import COLUMNS, table_ddl, visible_events_sql
from tests.conftest import ROOT
from tests.integration.events.sinks.support import event, expected

_COUNTER = itertools.count()
EVENTS = [event(1, changed=["a"], actor="alice"), event(2, tenant_id="t1", op="update"), event(3, op="delete")]


def fresh(path: Path) -> ChdbSink:
    return ChdbSink(path, f"chdb_test_{next(_COUNTER)}")


def test_the_table_is_the_clickhouse_sinks_on_a_modern_server(chdb_path: Path) -> None:
    sink = fresh(chdb_path)
    asyncio.run(sink.setup())
    described = sink.query_arrow(f"DESCRIBE TABLE {sink.database}.events").to_pylist()
    assert [(c["name"], c["type"]) for c in described] == [
        ("event_id", "UUID"), ("seq", "Int64"), ("entity", "LowCardinality(String)"), ("entity_id", "String"),
        ("op", "LowCardinality(String)"), ("occurred_at", "DateTime64(6, 'UTC')"), ("occurred_at_us", "Int64"),
        ("data", "String"), ("changed", "Array(String)"), ("actor", "Nullable(String)"),
        ("tenant_id", "Nullable(String)")]
    assert tuple(c["name"] for c in described) == COLUMNS
    # The very table a modern ClickHouse server gets, and the same documented read.
    twin = f"{sink.database}_twin"
    sink.query_arrow(f"CREATE DATABASE {twin}")
    sink.query_arrow(table_ddl(twin, ENGINE))
    assert sink.query_arrow(f"DESCRIBE TABLE {twin}.events").to_pylist() == described
    sink.query_arrow(f"DROP DATABASE {twin}")
    asyncio.run(sink.write(events_to_batch(EVENTS)))
    assert visible_rows(sink.query_arrow(visible_events_sql(sink.database))) == expected(EVENTS)


def test_a_table_from_before_occurred_at_us_gets_the_column(chdb_path: Path) -> None:
    sink = fresh(chdb_path)
    database = sink.database
    sink.query_arrow(f"CREATE DATABASE {database}")
    sink.query_arrow(f"""CREATE TABLE {database}.events (
        event_id UUID, seq Int64, entity LowCardinality(String), entity_id String, op LowCardinality(String),
        occurred_at DateTime64(6, 'UTC'), data String, changed Array(String), actor Nullable(String),
        tenant_id Nullable(String)
    ) ENGINE = ReplacingMergeTree(seq) PARTITION BY toYYYYMM(occurred_at) ORDER BY (entity, seq, event_id)""")
    old = event(9, occurred_at=1_700_000_000_123_456)
    sink.query_arrow(f"INSERT INTO {database}.events VALUES ('{old['event_id']}', 9, 'orders', '9', 'insert',"
                     " toDateTime64(1700000000.123456, 6, 'UTC'), '{\"id\": 9}', [], NULL, NULL)")

    async def scenario() -> None:
        await sink.setup()
        await sink.setup()
        await sink.write(events_to_batch(EVENTS))
        assert await sink.visible_events() == expected([*EVENTS, old])

    asyncio.run(scenario())
    names = [c["name"] for c in sink.query_arrow(f"DESCRIBE TABLE {database}.events").to_pylist()]
    assert tuple(names) == COLUMNS


WRITE = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from quiver.arrow.events import events_to_batch
    from quiver.events.sinks.chdb import ChdbSink

    async def main() -> None:
        sink = ChdbSink(Path(sys.argv[1]))
        await sink.setup()
        await sink.write(events_to_batch(json.loads(sys.argv[2])))

    asyncio.run(main())
""")


def quiver_events(*args: str, chdb: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "quiver.cli", "events", *args], cwd=ROOT, capture_output=True,
                          timeout=120, env={**os.environ, "QUIVER_CHDB_PATH": str(chdb)})


def test_another_process_reads_chdb_with_quiver_events_read(tmp_path: Path) -> None:
    """chDB opens a path in one process at a time: the CLI is how tests, the pipeline harness and users read it."""
    path = tmp_path / "chdb"
    written = subprocess.run([sys.executable, "-c", WRITE, str(path), json.dumps(EVENTS)], cwd=ROOT,
                             capture_output=True, timeout=120)
    assert written.returncode == 0, written.stderr.decode(errors="replace")[-3000:]

    arrow = quiver_events("read", "--sink", "chdb", "--format", "arrow", chdb=path)
    assert arrow.returncode == 0, arrow.stderr.decode(errors="replace")[-3000:]
    table = pa.ipc.open_stream(arrow.stdout).read_all()
    assert table.schema == VISIBLE_SCHEMA
    assert visible_rows(table) == expected(EVENTS)

    lines = quiver_events("read", "--sink", "chdb", chdb=path)
    assert lines.returncode == 0, lines.stderr.decode(errors="replace")[-3000:]
    assert [json.loads(line) for line in lines.stdout.splitlines()] == [
        dict(zip(VISIBLE_FIELDS, row, strict=True)) for row in expected(EVENTS)]

    count = quiver_events("read", "--sink", "chdb", "--count", chdb=path)
    assert (count.returncode, count.stdout) == (0, b"3\n")


def test_a_path_open_in_another_process_is_a_clear_error(chdb_path: Path) -> None:
    asyncio.run(fresh(chdb_path).setup())  # this test process holds chdb_path
    held = quiver_events("read", "--sink", "chdb", "--count", chdb=chdb_path)
    assert held.returncode == 1
    assert b"cannot read sink chdb" in held.stderr and b"another process" in held.stderr, held.stderr
