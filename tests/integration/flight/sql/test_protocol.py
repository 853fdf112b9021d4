"""The wire protocol seen from a plain Flight client: stateless signed handles, binding, refusals."""

from __future__ import annotations

from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quiver.config import Settings
from quiver.db import AdbcPool
from quiver.flight.sql.protocol import pack, pb, unpack
from tests.conftest import wait_for
from tests.integration.flight.sql.server import SqlOnlyServer

Row = tuple[Any, ...]


def action(raw: flight.FlightClient, name: str, message: Any) -> list[bytes]:
    return [r.body.to_pybytes() for r in raw.do_action(flight.Action(name, pack(message)))]


def prepare(raw: flight.FlightClient, sql: str) -> Any:
    [body] = action(raw, "CreatePreparedStatement", pb.ActionCreatePreparedStatementRequest(query=sql))
    result = unpack(body)
    assert isinstance(result, pb.ActionCreatePreparedStatementResult)
    return result


def bind(raw: flight.FlightClient, handle: bytes, parameters: pa.RecordBatch) -> bytes:
    """DoPut of the parameters; the answer is the handle that carries them."""
    descriptor = flight.FlightDescriptor.for_command(
        pack(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle)))
    writer, reader = raw.do_put(descriptor, parameters.schema)
    writer.write_batch(parameters)
    writer.done_writing()
    answer = reader.read()
    writer.close()
    assert answer is not None
    result = pb.DoPutPreparedStatementResult()
    result.ParseFromString(answer.to_pybytes())
    return bytes(result.prepared_statement_handle)


def run(raw: flight.FlightClient, handle: bytes) -> pa.Table:
    info = raw.get_flight_info(flight.FlightDescriptor.for_command(
        pack(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle))))
    return pa.concat_tables([raw.do_get(e.ticket).read_all() for e in info.endpoints])


def test_prepare_bind_run_by_hand(raw: flight.FlightClient) -> None:
    prepared = prepare(raw, "SELECT code, label FROM fsql.parent WHERE region = $1 ORDER BY code")
    assert pa.ipc.read_schema(pa.py_buffer(prepared.parameter_schema)).types == [pa.utf8()]
    assert pa.ipc.read_schema(pa.py_buffer(prepared.dataset_schema)).names == ["code", "label"]
    handle = bind(raw, prepared.prepared_statement_handle, pa.RecordBatch.from_pydict({"$1": ["eu"]}))
    assert run(raw, handle).to_pylist() == [{"code": 1, "label": "one"}, {"code": 2, "label": "two"}]
    assert action(raw, "ClosePreparedStatement", pb.ActionClosePreparedStatementRequest(
        prepared_statement_handle=handle)) == []


def test_a_handle_works_on_another_server_with_the_same_secret(raw: flight.FlightClient, sql_url: str) -> None:
    prepared = prepare(raw, "SELECT $1::int * 2 AS twice")
    handle = bind(raw, prepared.prepared_statement_handle, pa.RecordBatch.from_pydict({"$1": [21]}))
    pool = AdbcPool(sql_url, 1)
    other = SqlOnlyServer(pool, Settings())
    try:
        with flight.FlightClient(other.url) as client:
            assert run(client, handle).to_pylist() == [{"twice": 42}]
    finally:
        other.stop()
        pool.close()


def test_a_forged_ticket_is_refused(raw: flight.FlightClient) -> None:
    prepared = prepare(raw, "SELECT 1 AS one")
    forged = bytes(prepared.prepared_statement_handle).replace(b"SELECT 1 AS one", b"SELECT 2 AS one")
    ticket = flight.Ticket(pack(pb.TicketStatementQuery(statement_handle=forged)))
    with pytest.raises(pa.ArrowInvalid, match="signature does not match"):
        raw.do_get(ticket).read_all()


def test_several_parameter_rows_are_refused(raw: flight.FlightClient) -> None:
    prepared = prepare(raw, "SELECT $1::int AS x")
    handle = bind(raw, prepared.prepared_statement_handle, pa.RecordBatch.from_pydict({"$1": [1, 2]}))
    with pytest.raises(pa.ArrowInvalid, match="one row of parameters"):
        run(raw, handle)


@pytest.mark.parametrize("command", [
    pb.CommandStatementUpdate(query="DELETE FROM fsql.child"),
    pb.CommandStatementQuery(query="SELECT 1", transaction_id=b"tx"),
    pb.CommandGetCrossReference(pk_table="parent", fk_table="child"),
])
def test_unsupported_commands_are_invalid_argument(raw: flight.FlightClient, command: Any) -> None:
    with pytest.raises(pa.ArrowInvalid) as caught:
        raw.get_flight_info(flight.FlightDescriptor.for_command(pack(command)))
    assert "Traceback" not in str(caught.value)


def update(raw: flight.FlightClient, command: Any) -> Any:
    descriptor = flight.FlightDescriptor.for_command(pack(command))
    writer, reader = raw.do_put(descriptor, pa.schema([]))
    writer.done_writing()
    answer = reader.read()
    writer.close()
    assert answer is not None
    result = pb.DoPutUpdateResult()
    result.ParseFromString(answer.to_pybytes())
    return result


def test_an_update_runs_read_only_so_a_write_is_refused(raw: flight.FlightClient,
                                                        pg: psycopg.Connection[Row]) -> None:
    before = pg.execute("SELECT count(*) FROM fsql.child").fetchone()
    with pytest.raises(pa.ArrowInvalid, match="read-only: cannot execute DELETE in a read-only transaction"):
        update(raw, pb.CommandStatementUpdate(query="DELETE FROM fsql.child"))
    [created] = [r.body.to_pybytes() for r in raw.do_action(flight.Action("CreatePreparedStatement", pack(
        pb.ActionCreatePreparedStatementRequest(query="UPDATE fsql.parent SET label = 'x'"))))]
    handle = unpack(created).prepared_statement_handle  # type: ignore[attr-defined]
    with pytest.raises(pa.ArrowInvalid, match="cannot execute UPDATE in a read-only transaction"):
        update(raw, pb.CommandPreparedStatementUpdate(prepared_statement_handle=handle))
    assert pg.execute("SELECT count(*) FROM fsql.child").fetchone() == before
    assert pg.execute("SELECT count(*) FROM fsql.parent WHERE label = 'x'").fetchone() == (0,)


def test_an_update_that_writes_nothing_answers_its_count(raw: flight.FlightClient) -> None:
    assert update(raw, pb.CommandStatementUpdate(query="SET LOCAL work_mem = '8MB'")).record_count == -1


def test_actions_are_listed(raw: flight.FlightClient) -> None:
    assert {a.type for a in raw.list_actions()} == {"CreatePreparedStatement", "ClosePreparedStatement",
                                                   "CancelFlightInfo", "CancelQuery"}


TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.integers(-(2**63), 2**63 - 1), text=TEXT, small=st.integers(-(2**31), 2**31 - 1),
       flag=st.booleans() | st.none())
def test_random_parameters_match_psycopg(conn: Any, pg: psycopg.Connection[Row], number: int, text: str,
                                         small: int, flag: bool | None) -> None:
    sql = "SELECT $1::bigint AS n, $2::text AS t, length($2::text) AS l, mod($3::int, 7) AS m, $4::bool AS f"
    with conn.cursor() as cur:
        cur.execute(sql, (number, text, small, flag))
        got = tuple(cur.fetch_arrow_table().to_pylist()[0].values())
    expected = pg.execute(sql.replace("$1", "%(n)s").replace("$2", "%(t)s").replace("$3", "%(m)s")
                          .replace("$4", "%(f)s"), {"n": number, "t": text, "m": small, "f": flag}).fetchone()
    assert got == expected


def test_a_client_that_stops_reading_cancels_the_statement(sql_url: str, pg: psycopg.Connection[Row]) -> None:
    pool = AdbcPool(sql_url, 1)
    patient = SqlOnlyServer(pool, Settings(statement_timeout_ms=600_000, arrow_batch_bytes=1 << 16))
    # generate_series in the select list streams (in FROM it would be materialized before the first row)
    sql = "SELECT generate_series(1, 500000000) AS g, repeat('x', 100) AS pad /* cancel-me */"
    try:
        with flight.FlightClient(patient.url) as client:
            info = client.get_flight_info(flight.FlightDescriptor.for_command(
                pack(pb.CommandStatementQuery(query=sql))))
            reader = client.do_get(info.endpoints[0].ticket)
            assert reader.read_chunk().data.num_rows > 0
            reader.cancel()

        def gone() -> bool:
            row = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%cancel-me%' "
                             "AND state = 'active' AND pid <> pg_backend_pid()").fetchone()
            pg.rollback()
            return row == (0,)

        wait_for(gone, 30, "the statement kept running after the client went away")
    finally:
        patient.stop()
        pool.close()
