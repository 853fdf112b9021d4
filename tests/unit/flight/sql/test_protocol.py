"""Telling Flight SQL's Any-packed commands from Quiver's own JSON tickets, and the built-in answers."""

from __future__ import annotations

import pyarrow as pa
import pytest

from quiver.flight.sql import FlightSql, schemas, sqlinfo, xdbc
from quiver.flight.sql.protocol import ProtocolError, pack, pb, unpack


def test_packed_commands_are_recognised_and_unpacked() -> None:
    data = pack(pb.CommandStatementQuery(query="SELECT 1"))
    assert FlightSql.handles(data)
    found = unpack(data)
    assert isinstance(found, pb.CommandStatementQuery) and found.query == "SELECT 1"


@pytest.mark.parametrize("data", [b"", b'{"query": "{ orders { id } }"}', b"orders", b"\xff\xfe\x00garbage"])
def test_quiver_tickets_and_garbage_are_not_flight_sql(data: bytes) -> None:
    assert not FlightSql.handles(data)
    with pytest.raises(ProtocolError):
        unpack(data)


def test_an_unknown_flight_sql_message_is_refused() -> None:
    from google.protobuf import any_pb2

    envelope = any_pb2.Any(type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandFromTheFuture")
    with pytest.raises(ProtocolError, match="CommandFromTheFuture"):
        unpack(envelope.SerializeToString())


def test_sql_info_rows_follow_the_request_order() -> None:
    table = sqlinfo.sql_info_table("PostgreSQL 18", [pb.FLIGHT_SQL_SERVER_VERSION, pb.FLIGHT_SQL_SERVER_READ_ONLY])
    assert table.schema == schemas.SQL_INFO
    assert table.to_pylist() == [{"info_name": pb.FLIGHT_SQL_SERVER_VERSION, "value": "PostgreSQL 18"},
                                 {"info_name": pb.FLIGHT_SQL_SERVER_READ_ONLY, "value": True}]
    every = sqlinfo.sql_info_table("x", [])
    assert every.column("info_name").to_pylist() == sorted(every.column("info_name").to_pylist())


def test_xdbc_rows_fit_the_schema() -> None:
    table = xdbc.type_info(None)
    assert table.schema == schemas.XDBC_TYPE_INFO
    assert table.num_rows >= 10
    assert xdbc.type_info(pb.XDBC_BIGINT).column("type_name").to_pylist() == ["bigint"]
    assert xdbc.type_info(12345).num_rows == 0
    assert pa.types.is_int32(table.schema.field("data_type").type)
