"""The ClickHouse sink against fake servers of both generations: the requests it builds, what it does on errors."""

from __future__ import annotations

import asyncio

import httpx
import pyarrow as pa
import pytest

from quiver.arrow.events import events_to_batch
from quiver.events.sinks.base import PermanentError, RetryableError
from quiver.events.sinks.clickhouse import ClickHouseSink
from quiver.events.sinks.clickhouse.ddl import COLUMNS
from quiver.events.sinks.clickhouse.encode import native_body
from tests.unit.events.sinks.clickhouse.test_encode import EVENTS


class FakeServer:
    """Answers like a ClickHouse of the given generation; records every request."""

    def __init__(self, modern: bool) -> None:
        self.modern = modern
        self.requests: list[httpx.Request] = []
        self.insert_status = 200
        self.insert_body = b""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        sql = request.url.params.get("query") or request.content.decode()
        if sql.startswith("SELECT version()"):
            probe = "26.9.2.1\t1\t1\t0\t1\n" if self.modern else "18.16.1\t0\t1\t1\t0\n"
            return httpx.Response(200, text=probe)
        if "system.columns" in sql:
            return httpx.Response(200, text="DateTime64(6, 'UTC')\n" if self.modern else "DateTime('UTC')\n")
        if sql.startswith("INSERT"):
            return httpx.Response(self.insert_status, content=self.insert_body)
        return httpx.Response(200, text="")

    def sql(self) -> list[str]:
        return [r.url.params.get("query") or r.content.decode() for r in self.requests]


def run_sink(server: FakeServer, batch: pa.RecordBatch) -> ClickHouseSink:
    async def scenario() -> ClickHouseSink:
        sink = ClickHouseSink("http://user:secret@clickhouse.test:8123/?max_memory_usage=1000", "events_db",
                              transport=httpx.MockTransport(server))
        try:
            await sink.setup()
            await sink.write(batch)
        finally:
            await sink.close()
        return sink

    return asyncio.run(scenario())


def test_modern_server_gets_datetime64_lowcardinality_and_arrow_stream() -> None:
    server = FakeServer(modern=True)
    batch = events_to_batch(EVENTS)
    sink = run_sink(server, batch)
    assert sink.info is not None and sink.info.modern and sink.info.version == "26.9.2.1"
    ddl = next(s for s in server.sql() if s.startswith("CREATE TABLE"))
    assert "occurred_at    DateTime64(6, 'UTC')" in ddl and "entity         LowCardinality(String)" in ddl
    assert "ENGINE = ReplacingMergeTree(seq)" in ddl and "ORDER BY (entity, seq, event_id)" in ddl
    insert = server.requests[-1]
    assert insert.method == "POST"
    assert insert.url.params["query"] == f"INSERT INTO events_db.events ({', '.join(COLUMNS)}) FORMAT ArrowStream"
    assert insert.url.params["max_memory_usage"] == "1000"  # the URL's own settings ride along
    assert insert.headers["authorization"].startswith("Basic ")
    table = pa.ipc.open_stream(insert.content).read_all()
    assert tuple(table.column_names) == COLUMNS
    assert table.schema.field("occurred_at").type == pa.timestamp("us", tz="UTC")
    rows = table.to_pylist()
    assert [r["occurred_at_us"] for r in rows] == [e["occurred_at"] for e in EVENTS]
    assert [r["changed"] for r in rows] == [["note", "ünï"], [], []]  # ClickHouse arrays are never NULL
    assert [r["event_id"] for r in rows] == [e["event_id"] for e in EVENTS]
    assert [r["data"] for r in rows] == [e["data"] for e in EVENTS]
    assert [r["tenant_id"] for r in rows] == [None, "t1", "日本"]


def test_old_server_gets_datetime_strings_and_native() -> None:
    server = FakeServer(modern=False)
    batch = events_to_batch(EVENTS)
    sink = run_sink(server, batch)
    assert sink.info is not None and not sink.info.modern and not sink.info.low_cardinality
    ddl = next(s for s in server.sql() if s.startswith("CREATE TABLE"))
    assert "occurred_at    DateTime('UTC')" in ddl and "LowCardinality" not in ddl and "occurred_at_us Int64" in ddl
    insert = server.requests[-1]
    assert insert.url.params["query"] == f"INSERT INTO events_db.events ({', '.join(COLUMNS)}) FORMAT Native"
    assert insert.content == native_body(batch)


def test_server_errors_are_classified_and_a_missing_table_is_set_up_again() -> None:
    server = FakeServer(modern=False)
    batch = events_to_batch(EVENTS)

    async def scenario() -> None:
        sink = ClickHouseSink("http://clickhouse.test:8123", transport=httpx.MockTransport(server))
        await sink.setup()
        server.insert_status, server.insert_body = 500, b"Code: 27, e.displayText() = DB::Exception: Cannot parse"
        with pytest.raises(PermanentError, match="code 27"):
            await sink.write(batch)
        server.insert_status, server.insert_body = 404, b"Code: 60, e.displayText() = DB::Exception: no table"
        with pytest.raises(RetryableError, match="code 60"):
            await sink.write(batch)
        assert sink.info is None
        server.insert_status, server.insert_body = 200, b""
        await sink.write(batch)  # sets up again first
        assert server.sql()[-2].startswith("SELECT type FROM system.columns")
        await sink.close()

    asyncio.run(scenario())


def test_unencodable_batches_are_permanent_without_a_request() -> None:
    server = FakeServer(modern=False)
    bad = events_to_batch([{**EVENTS[0], "event_id": "not-a-uuid"}])

    async def scenario() -> None:
        sink = ClickHouseSink("http://clickhouse.test:8123", transport=httpx.MockTransport(server))
        await sink.setup()
        sent = len(server.requests)
        with pytest.raises(PermanentError, match="UUID"):
            await sink.write(bad)
        assert len(server.requests) == sent
        await sink.write(events_to_batch([]))  # nothing to do, nothing sent
        assert len(server.requests) == sent
        await sink.close()

    asyncio.run(scenario())


def test_database_names_are_identifiers_and_the_read_query_is_documented() -> None:
    with pytest.raises(ValueError, match="identifier"):
        ClickHouseSink("http://x", "quiver; DROP TABLE x")
    assert ClickHouseSink("http://x", "q1").visible_events_sql() == (
        "SELECT toString(event_id), seq, entity, entity_id, op, occurred_at_us, data, changed, actor, tenant_id "
        "FROM q1.events FINAL")
