"""Special values, one exact form per plane (docs/graphql.md "Special values").

JSON: BC dates and timestamps in ISO 8601 astronomical years, ±infinity as strings, float and
numeric NaN/±Infinity as strings, 2-D arrays as nested arrays. Arrow (HTTP and Flight): BC
dates and timestamps and float specials natively, utf8 numerics keep their text, ``time`` in
nested selections works; ±infinity dates/timestamps, NaN in a decimal128 and 2-D arrays are
refused with UNSUPPORTED_VALUE naming the column and the row.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.ipc as ipc
import pytest

from tests.conftest import Server, admin_url, database_url, start_server, stop_server

ARROW = "application/vnd.apache.arrow.stream"
SCHEMA = """
CREATE TABLE owners (id integer PRIMARY KEY, at time, atz timetz);
CREATE TABLE specials (
  id integer PRIMARY KEY, owner_id integer REFERENCES owners (id),
  d date, ts timestamp, tstz timestamptz, f float8, r real, n numeric, n2 numeric(10,2), a integer[], da date[]);
INSERT INTO owners VALUES (1, '12:00:01.5', '10:00:00+02'), (2, NULL, NULL);
INSERT INTO specials VALUES
  (1, 1, '0044-03-15 BC', '0044-03-15 10:00:01.5 BC', '0001-01-01 00:00:00+00 BC', 'NaN', 'Infinity', 'NaN', 1.50,
   '{1,2}', '{0044-03-15 BC,2024-01-01}'),
  (2, 1, '2024-01-01', '2024-01-01 00:00:00', '2024-01-01 00:00:00+00', '-Infinity', '-Infinity', 'Infinity',
   'NaN', '{{1,2},{3,4}}', '{{2024-01-01},{0001-01-01 BC}}'),
  (3, 2, 'infinity', '-infinity', 'infinity', 1.5, 2.5, '-Infinity', 2, '{}', '{infinity}');
"""


@dataclass
class Run:
    server: Server
    flight: flight.FlightClient


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    name = f"quiver_specials_{os.getpid()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(database_url(name)) as conn:
        conn.execute(SCHEMA)
    server = start_server(database_url(name))
    client = flight.connect(server.flight_url)
    try:
        yield Run(server, client)
    finally:
        client.close()
        stop_server(server)
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def json_rows(run: Run, selection: str) -> list[dict[str, Any]]:
    with run.server.client() as client:
        body = orjson.loads(client.post("/graphql", json={"query": f"{{ specials(orderBy: [{{id: ASC}}]) "
                                                                     f"{{ {selection} }} }}"}).content)
    assert "errors" not in body, body
    rows: list[dict[str, Any]] = body["data"]["specials"]
    return rows


def arrow(run: Run, query: str) -> tuple[httpx.Response, pa.Table | Exception]:
    with run.server.client() as client:
        response = client.post("/graphql", json={"query": query}, headers={"accept": ARROW})
    try:
        table: pa.Table | Exception = run.flight.do_get(flight.Ticket(orjson.dumps({"kind": "graphql",
                                                                                     "query": query}))).read_all()
    except pa.ArrowException as error:  # INVALID_ARGUMENT arrives as ArrowInvalid
        table = error
    return response, table


def test_json_dates_and_timestamps_are_iso_8601_with_astronomical_years(run: Run) -> None:
    rows = json_rows(run, "d ts tstz da")
    assert rows[0] == {"d": "-0043-03-15", "ts": "-0043-03-15T10:00:01.5", "tstz": "0000-01-01T00:00:00+00:00",
                       "da": ["-0043-03-15", "2024-01-01"]}
    assert rows[1]["da"] == [["2024-01-01"], ["0000-01-01"]]  # 2-D arrays stay nested
    assert (rows[2]["d"], rows[2]["ts"], rows[2]["tstz"], rows[2]["da"]) == ("infinity", "-infinity", "infinity",
                                                                             ["infinity"])


def test_json_float_and_numeric_specials_are_strings_and_2d_arrays_nest(run: Run) -> None:
    rows = json_rows(run, "f r n n2 a")
    assert [(r["f"], r["r"], r["n"], r["n2"]) for r in rows] == [
        ("NaN", "Infinity", "NaN", "1.50"), ("-Infinity", "-Infinity", "Infinity", "NaN"),
        (1.5, 2.5, "-Infinity", "2.00")]
    assert [r["a"] for r in rows] == [[1, 2], [[1, 2], [3, 4]], []]


def test_arrow_carries_bc_dates_float_specials_and_numeric_text_natively(run: Run) -> None:
    query = "{ specials(where: {id: {eq: 1}}) { id d ts tstz f r n da } }"
    response, table = arrow(run, query)
    assert response.status_code == 200, response.text
    for result in (ipc.open_stream(response.content).read_all(), table):
        assert isinstance(result, pa.Table)
        assert result.column("d").cast(pa.int32()).to_pylist() == [-735160]  # 15 March 44 BC, days from 1970
        assert result.column("ts").cast(pa.int64()).to_pylist() == [-63517787998500000]
        assert result.column("tstz").cast(pa.int64()).to_pylist() == [-62167219200000000]
        assert math.isnan(result.column("f")[0].as_py()) and result.column("r")[0].as_py() == math.inf
        assert result.column("n").to_pylist() == ["NaN"]  # unconstrained numeric is utf8: its exact text
        assert result.column("da").cast(pa.list_(pa.int32())).to_pylist() == [[-735160, 19723]]


def test_arrow_reads_time_in_a_nested_selection(run: Run) -> None:
    query = "{ specials(orderBy: [{id: ASC}]) { id owner { at atz } } }"
    response, table = arrow(run, query)
    assert response.status_code == 200, response.text
    for result in (ipc.open_stream(response.content).read_all(), table):
        assert isinstance(result, pa.Table)
        owners = result.column("owner").to_pylist()
        assert [o["at"].isoformat() if o["at"] else None for o in owners] == ["12:00:01.500000"] * 2 + [None]
        assert [o["atz"] for o in owners] == ["10:00:00+02", "10:00:00+02", None]


@pytest.mark.parametrize(("query", "column", "row"), [
    ("{ specials(orderBy: [{id: ASC}]) { id d } }", "d", 2),
    ("{ specials(orderBy: [{id: DESC}]) { ts } }", "ts", 0),
    ("{ specials(orderBy: [{id: ASC}]) { n2 } }", "n2", 1),
    ("{ specials(orderBy: [{id: ASC}]) { a } }", "a", 1),
    ("{ specials(where: {id: {eq: 3}}) { da } }", "da", 0),
    ("{ owners(orderBy: [{id: ASC}]) { id specials(orderBy: [{id: ASC}]) { id tstz } } }", "specials.tstz", 1),
    ("{ owners(orderBy: [{id: ASC}]) { specials(orderBy: [{id: ASC}]) { a } } }", "specials.a", 0),
])
def test_arrow_refuses_what_it_cannot_carry_naming_column_and_row(run: Run, query: str, column: str,
                                                                   row: int) -> None:
    response, table = arrow(run, query)
    error = orjson.loads(response.content)["errors"][0]
    assert error["extensions"]["code"] == "UNSUPPORTED_VALUE", error
    assert f"column {column!r}, row {row}:" in error["message"], error
    assert isinstance(table, pa.ArrowInvalid), table
    assert f"column {column!r}, row {row}:" in str(table), str(table)


def test_an_unsupported_value_answers_http_422(run: Run) -> None:
    response, _ = arrow(run, "{ specials { d } }")
    assert response.status_code == 422, (response.status_code, response.text)
