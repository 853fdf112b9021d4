"""Queries through ADBC's Flight SQL driver give what psycopg reads from PostgreSQL itself."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import adbc_driver_manager
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from quiver.flight.sql.protocol import pack, pb

Row = tuple[Any, ...]
COLUMNS = "i, b, t, n, ts, d, flag, u, j, ints, texts"


def test_every_type_and_null_matches_psycopg(conn: Any, pg: psycopg.Connection[Row]) -> None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM fsql.typed ORDER BY i NULLS LAST")
        table: pa.Table = cur.fetch_arrow_table()
    expected = pg.execute(f"SELECT {COLUMNS} FROM fsql.typed ORDER BY i NULLS LAST").fetchall()
    assert table.schema.types == [pa.int32(), pa.int64(), pa.utf8(), pa.decimal128(12, 3), pa.timestamp("us", "UTC"),
                                  pa.date32(), pa.bool_(), pa.utf8(), pa.utf8(), pa.list_(pa.int32()),
                                  pa.list_(pa.utf8())]
    got = [tuple(row.values()) for row in table.to_pylist()]
    assert len(got) == len(expected) == 3
    for mine, theirs in zip(got, expected, strict=True):
        i, b, t, n, ts, d, flag, u, j, ints, texts = mine
        assert (i, b, t, ts, d, flag, ints, texts) == (theirs[0], theirs[1], theirs[2], theirs[4], theirs[5],
                                                       theirs[6], theirs[9], theirs[10])
        assert n == theirs[3]  # numeric(12, 3) is decimal128(12, 3), as on the Arrow plane
        assert u == (None if theirs[7] is None else str(theirs[7]))
        assert (None if j is None else json.loads(j)) == theirs[8]


def test_parameters_of_several_types_are_bound_by_postgres(conn: Any, pg: psycopg.Connection[Row]) -> None:
    moment = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    values = (7, "it's; DROP TABLE x --", 1.5, True, dt.date(2024, 1, 2), moment, 2**62)
    sql = "SELECT $1::int AS a, $2::text AS b, $3::float8 AS c, $4::bool AS d, $5::date AS e, " \
          "$6::timestamptz AS f, $7::bigint AS g"
    with conn.cursor() as cur:
        cur.execute(sql, values)
        got = cur.fetch_arrow_table().to_pylist()
    theirs = pg.execute(sql.replace("$1", "%s").replace("$2", "%s").replace("$3", "%s").replace("$4", "%s")
                        .replace("$5", "%s").replace("$6", "%s").replace("$7", "%s"), values).fetchone()
    assert theirs is not None
    assert tuple(got[0].values()) == tuple(theirs) == values


def test_a_prepared_statement_runs_again_with_new_parameters(conn: Any) -> None:
    sql = "SELECT label FROM fsql.parent WHERE code = $1 AND region = $2"
    with conn.cursor() as cur:
        cur.adbc_prepare(sql)
        cur.execute(sql, (1, "eu"))
        first = cur.fetch_arrow_table().to_pylist()
        cur.execute(sql, (2, "eu"))
        second = cur.fetch_arrow_table().to_pylist()
        cur.execute(sql, (1, "us"))
        third = cur.fetch_arrow_table().to_pylist()
    assert (first, second, third) == ([{"label": "one"}], [{"label": "two"}], [{"label": None}])


def test_prepare_reports_parameter_and_result_schemas(conn: Any) -> None:
    with conn.cursor() as cur:
        parameters = cur.adbc_prepare("SELECT $1::bigint + 1 AS x, $2::text AS y")
        result = cur.adbc_execute_schema("SELECT $1::bigint + 1 AS x, $2::text AS y")
    assert parameters is not None
    assert parameters.types == [pa.int64(), pa.utf8()]
    assert result.names == ["x", "y"] and result.types == [pa.int64(), pa.utf8()]


def test_a_large_result_arrives_whole(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT g, md5(g::text) FROM generate_series(1, 200000) g")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 200_000
    assert table.column(0).to_pylist()[-3:] == [199_998, 199_999, 200_000]


def test_bad_sql_is_invalid_argument_with_postgres_message(conn: Any) -> None:
    with conn.cursor() as cur, pytest.raises(adbc_driver_manager.ProgrammingError) as caught:
        cur.execute("SELEC 1")
    message = str(caught.value)
    assert "INVALID_ARGUMENT" in message
    assert 'syntax error at or near "SELEC"' in message and "42601" in message
    assert "Traceback" not in message


def test_unknown_table_is_invalid_argument(conn: Any) -> None:
    with conn.cursor() as cur, pytest.raises(adbc_driver_manager.ProgrammingError) as caught:
        cur.execute("SELECT * FROM fsql.nope")
    assert 'relation "fsql.nope" does not exist' in str(caught.value)


@pytest.mark.parametrize("sql", [
    "INSERT INTO fsql.parent VALUES ('xx', 9, 'nine')",
    "CREATE TABLE fsql.sneaky (a int)",
    "WITH gone AS (DELETE FROM fsql.child RETURNING id) SELECT count(*) FROM gone",
])
def test_writes_are_refused_read_only(conn: Any, pg: psycopg.Connection[Row], sql: str) -> None:
    with conn.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as caught:
        cur.execute(sql)
        cur.fetch_arrow_table()
    message = str(caught.value)
    assert "INVALID_ARGUMENT" in message
    assert "read-only" in message and "25006" in message and "Traceback" not in message
    assert pg.execute("SELECT count(*) FROM fsql.child").fetchone() == (3,)
    assert pg.execute("SELECT to_regclass('fsql.sneaky')").fetchone() == (None,)


def test_a_slow_query_times_out(conn: Any) -> None:
    with conn.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as caught:
        cur.execute("SELECT pg_sleep(5)")
        cur.fetch_arrow_table()
    message = str(caught.value)
    assert "TIMEOUT" in message and "statement timeout" in message and "Traceback" not in message


def test_the_server_keeps_answering_after_errors(conn: Any) -> None:
    for bad in ("SELEC 1", "SELECT 1/0", "SELECT pg_sleep(5)"):
        with conn.cursor() as cur, pytest.raises(adbc_driver_manager.Error):
            cur.execute(bad)
            cur.fetch_arrow_table()
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('transaction_read_only') AS ro, "
                    "current_setting('statement_timeout') AS timeout")
        assert cur.fetch_arrow_table().to_pylist() == [{"ro": "on", "timeout": "1500ms"}]


def test_an_error_after_rows_streamed_keeps_its_status(raw: flight.FlightClient) -> None:
    """PostgreSQL fails at row 300,000, after batches went out: the stream ends INVALID_ARGUMENT, cleanly."""
    sql = "SELECT 1 / (g - 300000) AS q, repeat('x', 50) AS pad FROM (SELECT generate_series(1, 400000) AS g) s"
    info = raw.get_flight_info(flight.FlightDescriptor.for_command(pack(pb.CommandStatementQuery(query=sql))))
    reader = raw.do_get(info.endpoints[0].ticket)
    assert reader.read_chunk().data.num_rows > 0
    with pytest.raises(pa.ArrowInvalid, match="division by zero") as caught:
        while True:
            reader.read_chunk()
    assert "Traceback" not in str(caught.value) and ".py" not in str(caught.value)


def test_numerics_take_the_arrow_planes_types(conn: Any) -> None:
    """numeric(p, s) is decimal128(p, s); an unconstrained numeric stays PostgreSQL's exact text."""
    with conn.cursor() as cur:
        cur.execute("SELECT 12.5::numeric(6, 2) AS fixed, 12345678901234567890.123456789::numeric AS free, "
                    "'{\"a\": 1}'::jsonb AS j")
        table = cur.fetch_arrow_table()
    assert table.schema.types == [pa.decimal128(6, 2), pa.utf8(), pa.utf8()]
    assert table.to_pylist() == [{"fixed": Decimal("12.50"), "free": "12345678901234567890.123456789",
                                  "j": '{"a": 1}'}]
    assert table.schema.field("j").metadata[b"quiver:type"] == b"json"


def test_a_numeric_nan_in_a_decimal_column_is_refused_by_name(conn: Any) -> None:
    with conn.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as caught:
        cur.execute("SELECT 'NaN'::numeric(6, 2) AS price")
        cur.fetch_arrow_table()
    message = str(caught.value)
    assert "INVALID_ARGUMENT" in message and "'price'" in message and "NaN" in message
    assert "Traceback" not in message
