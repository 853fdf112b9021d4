"""CancelFlightInfo cancels the PostgreSQL statement its FlightInfo's ticket runs: before, during, after.

A cancel while the DoGet waits for PostgreSQL's first row, or while rows stream, ends that DoGet with
CANCELLED (not the timeout's status) and the statement leaves pg_stat_activity; a cancel before the
DoGet makes the DoGet refuse; a cancel after it finished is NOT_CANCELLABLE.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from quiver.config import Settings
from quiver.db import AdbcPool
from quiver.flight.sql.protocol import pack, pb, unpack
from tests.conftest import wait_for
from tests.integration.flight.sql.server import SqlOnlyServer

Row = tuple[Any, ...]
CANCELLED = b"\x08\x01"  # CancelFlightInfoResult{status: CANCEL_STATUS_CANCELLED}
NOT_CANCELLABLE = b"\x08\x03"


@pytest.fixture(scope="module")
def patient(sql_url: str) -> Iterator[SqlOnlyServer]:
    """A server whose statements may run for minutes: only a cancel ends them."""
    pool = AdbcPool(sql_url, 2)
    server = SqlOnlyServer(pool, Settings(statement_timeout_ms=600_000, arrow_batch_bytes=1 << 16))
    yield server
    server.stop()
    pool.close()


@pytest.fixture()
def client(patient: SqlOnlyServer) -> Iterator[flight.FlightClient]:
    with flight.FlightClient(patient.url) as connected:
        yield connected


def info_for(client: flight.FlightClient, sql: str) -> flight.FlightInfo:
    return client.get_flight_info(flight.FlightDescriptor.for_command(pack(pb.CommandStatementQuery(query=sql))))


def cancel(client: flight.FlightClient, info: flight.FlightInfo, action: str = "CancelFlightInfo") -> bytes:
    body = pb.ActionCancelQueryRequest(info=info.serialize()).SerializeToString()
    [result] = [bytes(r.body.to_pybytes()) for r in client.do_action(flight.Action(action, body))]
    return result


def active(pg: psycopg.Connection[Row], marker: str) -> int:
    row = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active' "
                     "AND pid <> pg_backend_pid()", (f"%{marker}%",)).fetchone()
    pg.rollback()
    assert row is not None
    return int(row[0])


def test_a_cancel_while_the_statement_runs_ends_it(client: flight.FlightClient, pg: psycopg.Connection[Row]) -> None:
    marker = f"sleep-{uuid.uuid4().hex}"
    info = info_for(client, f"SELECT pg_sleep(300) AS slept /* {marker} */")
    failure: list[BaseException] = []

    def read() -> None:
        try:
            client.do_get(info.endpoints[0].ticket).read_all()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            failure.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    wait_for(lambda: active(pg, marker) == 1, 30, "the statement never started")
    assert cancel(client, info) == CANCELLED
    reader.join(60)
    assert not reader.is_alive(), "the DoGet kept running after the cancel"
    assert len(failure) == 1 and isinstance(failure[0], flight.FlightCancelledError), failure
    assert "CancelFlightInfo" in str(failure[0]) and "Traceback" not in str(failure[0])
    wait_for(lambda: active(pg, marker) == 0, 30, "the statement kept running after the cancel")


def test_a_cancel_while_rows_stream_ends_the_stream(client: flight.FlightClient,
                                                    pg: psycopg.Connection[Row]) -> None:
    marker = f"stream-{uuid.uuid4().hex}"
    # generate_series in the select list streams (in FROM it would be materialized before the first row)
    info = info_for(client, f"SELECT generate_series(1, 500000000) AS g, repeat('x', 100) AS pad /* {marker} */")
    reader = client.do_get(info.endpoints[0].ticket)
    assert reader.read_chunk().data.num_rows > 0
    assert cancel(client, info) == CANCELLED
    with pytest.raises(flight.FlightCancelledError, match="CancelFlightInfo") as caught:
        while True:
            reader.read_chunk()
    assert "Traceback" not in str(caught.value) and ".py" not in str(caught.value)
    wait_for(lambda: active(pg, marker) == 0, 30, "the statement kept running after the cancel")


def test_a_cancel_before_the_do_get_makes_it_refuse(client: flight.FlightClient) -> None:
    info = info_for(client, "SELECT 1 AS one")
    assert cancel(client, info) == CANCELLED
    with pytest.raises(flight.FlightCancelledError, match="before it started"):
        client.do_get(info.endpoints[0].ticket).read_all()
    again = info_for(client, "SELECT 1 AS one")  # a new FlightInfo of the same SQL is a new run
    assert client.do_get(again.endpoints[0].ticket).read_all().to_pylist() == [{"one": 1}]


def test_a_finished_statement_is_not_cancellable(client: flight.FlightClient) -> None:
    info = info_for(client, "SELECT 2 AS two")
    assert client.do_get(info.endpoints[0].ticket).read_all().num_rows == 1
    assert cancel(client, info) == NOT_CANCELLABLE


def test_prepared_statements_are_cancelled_per_execution(client: flight.FlightClient) -> None:
    [body] = [r.body.to_pybytes() for r in client.do_action(flight.Action(
        "CreatePreparedStatement", pack(pb.ActionCreatePreparedStatementRequest(query="SELECT 3 AS three"))))]
    prepared = unpack(body)
    assert isinstance(prepared, pb.ActionCreatePreparedStatementResult)
    descriptor = flight.FlightDescriptor.for_command(
        pack(pb.CommandPreparedStatementQuery(prepared_statement_handle=prepared.prepared_statement_handle)))
    first, second = client.get_flight_info(descriptor), client.get_flight_info(descriptor)
    assert cancel(client, first) == CANCELLED
    with pytest.raises(flight.FlightCancelledError):
        client.do_get(first.endpoints[0].ticket).read_all()
    assert client.do_get(second.endpoints[0].ticket).read_all().to_pylist() == [{"three": 3}]


def test_the_deprecated_cancel_query_action(client: flight.FlightClient) -> None:
    info = info_for(client, "SELECT 4 AS four")
    result = unpack(cancel(client, info, "CancelQuery"))
    assert isinstance(result, pb.ActionCancelQueryResult)
    assert result.result == pb.ActionCancelQueryResult.CANCEL_RESULT_CANCELLED


def test_metadata_and_forged_infos(client: flight.FlightClient) -> None:
    tables = client.get_flight_info(flight.FlightDescriptor.for_command(pack(pb.CommandGetTableTypes())))
    assert cancel(client, tables) == NOT_CANCELLABLE
    forged = flight.FlightInfo(pa.schema([]), flight.FlightDescriptor.for_command(b"x"), [flight.FlightEndpoint(
        pack(pb.TicketStatementQuery(statement_handle=b"q1" + b"\0" * 40)), [])], -1, -1)
    with pytest.raises(pa.ArrowInvalid, match="signature|handle"):
        cancel(client, forged)
    with pytest.raises(pa.ArrowInvalid):
        list(client.do_action(flight.Action("CancelFlightInfo", b"\x0a\x03abc")))
