"""The ClickHouse server sink against the real ClickHouse 18.16 (``QUIVER_CLICKHOUSE_URL``).

Each test gets its own database (dropped afterwards). What is written is read back
through the documented query (``visible_events_sql()``, FINAL) and compared exactly.
The modern path (ArrowStream, DateTime64, LowCardinality) has no server here: its
request body is loaded into chDB (the modern engine, in a child process) instead.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from quiver.arrow.events import events_to_batch
from quiver.events.sinks.base import PermanentError, RetryableError, by_seq
from quiver.events.sinks.clickhouse import COLUMNS, ClickHouseSink, ServerInfo, native_body
from tests.integration.events.sinks.support import event, expected, server_url

_COUNTER = itertools.count()


def clickhouse_url() -> str:
    return server_url("QUIVER_CLICKHOUSE_URL")


@pytest.fixture
def database() -> Iterator[str]:
    name = f"quiver_test_{os.getpid()}_{next(_COUNTER)}"
    yield name
    response = httpx.post(clickhouse_url(), params={"query": f"DROP DATABASE IF EXISTS {name}"}, timeout=30)
    assert response.status_code == 200, response.text


TRICKY = [
    event(1, data='{"note": "\\"quoted\\" \'single\' back\\\\slash"}', actor="alice", changed=["note"]),
    event(2, data="line one\nline two\ttabbed\r\n\\N not null \\ end", tenant_id="t1", op="update",
          changed=["a", "", "ünïcødé", "tab\there"]),
    event(3, data='{"name": "日本語 ✓ 🦀 ÿ€"}', entity="customers", entity_id='[1, "x"]', changed=[]),
    event(4, seq=2**53 + 1, data="\x01\x1f control \x7f chars", actor="", tenant_id="", op="delete"),
    event(5, seq=2**63 - 1, data="x" * 20_000, occurred_at=999_999),  # 1970-01-01 00:00:00.999999
    event(6, seq=-7, data="", entity="", entity_id="", occurred_at=4_102_444_800_000_001),  # year 2100
    event(7, seq=8, occurred_at=1_700_000_000_123_456, actor="bob \"the\" builder", tenant_id="naïve\\tenant"),
]


def test_setup_probes_the_server_and_is_idempotent(database: str) -> None:
    async def scenario() -> None:
        sink = ClickHouseSink(clickhouse_url(), database)
        try:
            await sink.setup()
            await sink.setup()
            assert sink.info == ServerInfo("18.16.1", datetime64=False, low_cardinality=False, arrow_stream=False)
            ddl = " ".join((await sink.query(f"SHOW CREATE TABLE {database}.events FORMAT TSVRaw")).split())
            assert "ReplacingMergeTree(seq) PARTITION BY toYYYYMM(occurred_at) ORDER BY (entity, seq, event_id)" in ddl
            assert "occurred_at DateTime('UTC'), occurred_at_us Int64" in ddl
            assert "LowCardinality" not in ddl
            assert await sink.count_visible() == 0
        finally:
            await sink.close()

    asyncio.run(scenario())


def test_events_round_trip_exactly(database: str) -> None:
    async def scenario() -> None:
        sink = ClickHouseSink(clickhouse_url(), database)
        try:
            await sink.setup()
            await sink.write(events_to_batch(TRICKY))
            assert await sink.visible_events() == expected(TRICKY)
            # The seconds column and the partitions agree with the microseconds.
            text = await sink.query(f"SELECT toString(event_id), toUInt32(occurred_at), toYYYYMM(occurred_at)"
                                    f" FROM {database}.events FORMAT JSONCompact")
            seconds = {row[0]: (row[1], row[2]) for row in json.loads(text)["data"]}
            assert seconds[TRICKY[4]["event_id"]] == (0, 197001)
            assert seconds[TRICKY[5]["event_id"]] == (4_102_444_800, 210001)
            assert seconds[TRICKY[6]["event_id"]] == (1_700_000_000, 202311)
        finally:
            await sink.close()

    asyncio.run(scenario())


def test_a_repeated_batch_is_visible_once(database: str) -> None:
    events = [event(i) for i in range(100, 1100)] + TRICKY

    async def scenario() -> None:
        sink = ClickHouseSink(clickhouse_url(), database)
        try:
            await sink.setup()
            await sink.write(events_to_batch(events))
            await sink.write(events_to_batch(events))  # redelivered as is
            await sink.write(events_to_batch(events[500:] + events[:10]))  # redelivered in another grouping
            stored = int(await sink.query(f"SELECT count() FROM {database}.events FORMAT TSV"))
            assert stored >= len(events)  # duplicates may still be stored: merges are asynchronous
            assert await sink.count_visible() == len(events)
            assert await sink.visible_events() == expected(events)
        finally:
            await sink.close()

    asyncio.run(scenario())


def test_100k_events_round_trip(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(7)
    events = [
        event(i, seq=2**53 + i, entity=rng.choice(["orders", "customers", "line_items"]),
              op=rng.choice(["insert", "update", "delete"]),
              occurred_at=1_700_000_000_000_000 + rng.randrange(10**14),  # ~3 years: ~38 partitions
              data=json.dumps({"id": i, "note": "é\t\"" * rng.randrange(5), "amount": rng.random()},
                              ensure_ascii=False),
              changed=rng.choice([None, [], ["amount"], ["note", "amount"]]),
              actor=rng.choice([None, "alice", "bob"]), tenant_id=rng.choice([None, "t1"]))
        for i in range(100_000)
    ]
    batch = events_to_batch(events)

    async def scenario() -> None:
        sink = ClickHouseSink(clickhouse_url(), database)
        try:
            await sink.setup()
            started = time.perf_counter()
            body = native_body(batch)
            encoded = time.perf_counter()
            await sink.write(batch)
            written = time.perf_counter()
            with capsys.disabled():
                print(f"\nClickHouse 18.16 Native, 100k events ({len(body) / 1e6:.1f} MB): encode "
                      f"{encoded - started:.3f}s, write (encode + POST) {written - encoded:.3f}s = "
                      f"{batch.num_rows / (written - encoded):,.0f} events/s")
            assert await sink.count_visible() == len(events)
            assert await sink.visible_events() == expected(events)
        finally:
            await sink.close()

    asyncio.run(scenario())


def test_an_unreachable_server_is_retryable() -> None:
    async def scenario() -> None:
        sink = ClickHouseSink("http://127.0.0.1:1", "quiver", timeout=2.0)
        try:
            with pytest.raises(RetryableError, match="unreachable"):
                await sink.setup()
            with pytest.raises(RetryableError, match="unreachable"):
                await sink.write(events_to_batch(TRICKY))
        finally:
            await sink.close()

    asyncio.run(scenario())


def test_a_server_that_does_not_answer_is_retryable() -> None:
    async def scenario() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sink = ClickHouseSink(f"http://127.0.0.1:{port}", "quiver", timeout=0.3)
        try:
            with pytest.raises(RetryableError, match="timed out"):
                await sink.setup()
        finally:
            await sink.close()
            server.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("alter", "code"), [
    ("DROP COLUMN tenant_id", 16),  # NO_SUCH_COLUMN_IN_TABLE
    ("MODIFY COLUMN data Array(String)", 44),  # ILLEGAL_COLUMN
    ("MODIFY COLUMN entity_id UInt8", 368),  # BAD_CAST
])
def test_a_table_that_cannot_take_the_events_is_permanent(database: str, alter: str, code: int) -> None:
    async def scenario() -> None:
        sink = ClickHouseSink(clickhouse_url(), database)
        try:
            await sink.setup()
            await sink.query(f"ALTER TABLE {database}.events {alter}")
            with pytest.raises(PermanentError, match=f"code {code}"):
                await sink.write(events_to_batch(TRICKY))
        finally:
            await sink.close()

    asyncio.run(scenario())


def test_a_dropped_table_is_retryable_and_created_again(database: str) -> None:
    async def scenario() -> None:
        sink = ClickHouseSink(clickhouse_url(), database)
        try:
            await sink.write(events_to_batch(TRICKY[:2]))  # setup on first use
            await sink.query(f"DROP TABLE {database}.events")
            with pytest.raises(RetryableError, match="code 60"):
                await sink.write(events_to_batch(TRICKY))
            await sink.write(events_to_batch(TRICKY))
            assert await sink.visible_events() == expected(TRICKY)
        finally:
            await sink.close()

    asyncio.run(scenario())


def test_bad_events_are_permanent_before_reaching_the_server(database: str) -> None:
    async def scenario() -> None:
        sink = ClickHouseSink(clickhouse_url(), database)
        try:
            await sink.setup()
            with pytest.raises(PermanentError, match="UUID"):
                await sink.write(events_to_batch([event(1, event_id="not-a-uuid")]))
            with pytest.raises(PermanentError, match="DateTime"):
                await sink.write(events_to_batch([event(1, occurred_at=-1)]))  # before 1970: DateTime cannot
            assert await sink.count_visible() == 0
        finally:
            await sink.close()

    asyncio.run(scenario())


CHDB_SCRIPT = """
import json, sys
from chdb import session
from quiver.events.sinks.clickhouse import COLUMNS, ClickHouseSink, ServerInfo, table_ddl

path, body = sys.argv[1], sys.argv[2]
s = session.Session(path)
info = ServerInfo("modern", datetime64=True, low_cardinality=True, arrow_stream=True)
s.query("CREATE DATABASE IF NOT EXISTS modern")
s.query(table_ddl("modern", info))
for _ in range(2):  # the same body twice: must collapse
    s.query(f"INSERT INTO modern.events ({', '.join(COLUMNS)}) FROM INFILE '{body}' FORMAT ArrowStream")
sql = ClickHouseSink("http://unused", "modern").visible_events_sql()
rows = json.loads(str(s.query(sql + " FORMAT JSONCompact")))["data"]
ddl = str(s.query("SHOW CREATE TABLE modern.events FORMAT TSVRaw"))
print(json.dumps({"rows": rows, "ddl": ddl}))
"""


def test_the_modern_arrow_stream_request_loads_into_modern_clickhouse(tmp_path: Path) -> None:
    """chDB is ClickHouse 26 without an HTTP server: feed it the body the sink would POST."""
    posted: list[httpx.Request] = []

    def modern_server(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        sql = request.content.decode(errors="replace")
        if sql.startswith("SELECT version()"):
            return httpx.Response(200, text="26.9.2.1\t1\t1\t0\t1\n")
        if "system.columns" in sql:
            return httpx.Response(200, text="DateTime64(6, 'UTC')\n")
        return httpx.Response(200)

    async def scenario() -> None:
        sink = ClickHouseSink("http://modern.test:8123", "modern", transport=httpx.MockTransport(modern_server))
        await sink.write(events_to_batch(TRICKY))
        await sink.close()

    asyncio.run(scenario())
    insert = posted[-1]
    assert insert.url.params["query"] == f"INSERT INTO modern.events ({', '.join(COLUMNS)}) FORMAT ArrowStream"
    assert pa.ipc.open_stream(insert.content).read_all().num_rows == len(TRICKY)
    body = tmp_path / "body.arrows"
    body.write_bytes(insert.content)
    result = subprocess.run([sys.executable, "-c", CHDB_SCRIPT, str(tmp_path / "chdb"), str(body)],
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    out = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert "DateTime64(6, 'UTC')" in out["ddl"] and "LowCardinality(String)" in out["ddl"]
    rows = by_seq((r[0], int(r[1]), r[2], r[3], r[4], int(r[5]), r[6], r[7], r[8], r[9]) for r in out["rows"])
    assert rows == expected(TRICKY)
