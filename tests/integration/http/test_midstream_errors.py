"""A failure after the first batch is reported in-band: Arrow IPC by a final batch, JSON by ``errors``.

The view divides by zero at row 50,000, long after the first batch (tiny batch sizes) was sent.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import psycopg
import pyarrow as pa
import pytest

from quiver.execute.arrow_plane import ERROR_KEY
from tests.conftest import Server, start_server, stop_server

ARROW = "application/vnd.apache.arrow.stream"
FAILS_AT = 50_000


@pytest.fixture(scope="module")
def failing_server(scratch_template: str) -> Iterator[Server]:
    from tests.conftest import admin_url, database_url

    name = "quiver_midstream_errors"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{scratch_template}"')
    url = database_url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE VIEW boom_rows AS SELECT g AS id, 1 / ({FAILS_AT} - g) AS v "
                     "FROM generate_series(1, 100000) AS g")
    running = start_server(url, QUIVER_ARROW_BATCH_BYTES="4096", QUIVER_BATCH_BYTES="4096")
    yield running
    stop_server(running)
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_arrow_stream_ends_with_an_in_band_error(failing_server: Server) -> None:
    with failing_server.client() as client, client.stream(
            "POST", "/graphql", json={"query": "{ boomRows { id v } }"}, headers={"accept": ARROW}) as response:
        assert response.status_code == 200  # the body had started when the database failed
        body = response.read()
    reader = pa.ipc.open_stream(body)
    rows, error = 0, None
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        assert error is None, "the error batch is the last one"
        if metadata is not None and ERROR_KEY in metadata:
            assert batch.num_rows == 0
            error = orjson.loads(metadata[ERROR_KEY])
        rows += batch.num_rows
    assert 0 < rows < FAILS_AT
    assert error is not None, "a stream cut short must say so"
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["sqlstate"] == "22012"
    assert "division by zero" in error["message"]
    assert error["path"] == ["boomRows"]


def test_arrow_stream_without_failure_has_no_error_batch(failing_server: Server) -> None:
    with failing_server.client() as client:
        response = client.post("/graphql", json={"query": "{ boomRows(limit: 40000) { id } }"},
                               headers={"accept": ARROW})
    reader = pa.ipc.open_stream(response.content)
    total = 0
    for batch, metadata in iter(lambda: _next(reader), None):
        assert metadata is None or ERROR_KEY not in metadata
        total += batch.num_rows
    assert total == 40_000


def _next(reader: pa.ipc.RecordBatchStreamReader) -> tuple[pa.RecordBatch, pa.KeyValueMetadata | None] | None:
    try:
        found: tuple[pa.RecordBatch, pa.KeyValueMetadata | None] = reader.read_next_batch_with_custom_metadata()
    except StopIteration:
        return None
    return found


def test_json_stream_ends_with_errors(failing_server: Server) -> None:
    with failing_server.client() as client, client.stream(
            "POST", "/graphql", json={"query": "{ boomRows { id v } }"}) as response:
        assert response.status_code == 200
        body = orjson.loads(response.read())
    assert 0 < len(body["data"]["boomRows"]) < FAILS_AT
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "sqlstate": "22012"}
    assert error["path"] == ["boomRows"]
    with failing_server.client() as client:  # the server is fine afterwards
        assert client.post("/graphql", json={"query": "{ boomRowsAggregate { count } }"}).status_code == 200
