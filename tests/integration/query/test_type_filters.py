"""Filters compare in the column's own type, never its text form (issue G).

For every filterable type, values whose text order differs from the type's order ('10.0.0.10'
sorts before '10.0.0.9' as text, '$10.00' before '$9.00', 'P1M' before 'PT25H', enum labels
not in alphabetical order, ...), and each of eq/gt/gte/lt/lte/in against one of them: the ids
the JSON plane and Flight return must be those plain SQL (psycopg) returns.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import psycopg
import pyarrow.flight as flight
import pytest
from psycopg import sql

from tests.conftest import Server, admin_url, database_url, start_server, stop_server

# column -> (SQL type, stored values, the GraphQL literal of each value)
COLUMNS: dict[str, tuple[str, list[str], list[str]]] = {
    "inet_v": ("inet", ["10.0.0.9", "10.0.0.10", "9.0.0.1", "::1"], []),
    "cidr_v": ("cidr", ["10.0.0.0/8", "9.0.0.0/8", "10.0.0.0/16"], []),
    "money_v": ("money", ["$9.00", "$10.00", "-$1.00"], []),
    "macaddr_v": ("macaddr", ["08:00:2b:01:02:0a", "08:00:2b:01:02:09", "08:00:2b:01:02:10"], []),
    "interval_v": ("interval", ["P1M", "PT25H", "P1D", "P-1D"], []),
    "uuid_v": ("uuid", ["00000000-0000-0000-0000-00000000000a", "ffffffff-0000-0000-0000-000000000000",
                        "10000000-0000-0000-0000-000000000000"], []),
    "numeric_v": ("numeric", ["10", "9", "-3", "1.50"], []),
    "int8_v": ("bigint", ["10", "9", "-3"], ["10", "9", "-3"]),
    "int4_v": ("integer", ["10", "9", "-3"], ["10", "9", "-3"]),
    "float_v": ("double precision", ["10", "9.5", "-3"], ["10", "9.5", "-3"]),
    "timetz_v": ("timetz", ["10:00:00+02", "09:00:00-05", "23:00:00+00"], []),
    "time_v": ("time", ["10:00:00", "09:00:00", "23:00:00"], []),
    "date_v": ("date", ["2024-01-10", "2024-01-09", "infinity", "-infinity"], []),
    "ts_v": ("timestamptz", ["2024-01-10 00:00:00+00", "2024-01-09 23:00:00-05", "infinity"], []),
    "enum_v": ("filter_mood", ["zeta", "alpha", "mid"], ["zeta", "alpha", "mid"]),
    "text_v": ("text", ["b", "B", "a"], []),
    "bytea_v": ("bytea", ["\\x00ff", "\\x41", "\\x"], ['"AP8="', '"QQ=="', '""']),
}
ORDERED = ("eq", "gt", "gte", "lt", "lte", "in")
SIGNS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def gql_literal(column: str, index: int) -> str:
    sql_type, values, literals = COLUMNS[column]
    if literals:
        return literals[index]
    value = values[index]
    if sql_type == "timestamptz" and value != "infinity":
        value = value.replace(" ", "T") + ":00"
    if sql_type == "timetz":
        value += ":00"
    return orjson.dumps(value).decode()


def cases() -> list[tuple[str, str, int]]:
    result = []
    for column, (sql_type, values, _) in COLUMNS.items():
        ops = ("eq",) if sql_type == "bytea" else ORDERED  # Bytes filters have eq/neq only
        result += [(column, op, i) for op in ops for i in range(len(values))]
    return result


@dataclass
class Db:
    url: str
    server: Server
    flight: flight.FlightClient


@pytest.fixture(scope="module")
def db() -> Iterator[Db]:
    name = f"quiver_filters_{os.getpid()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TYPE filter_mood AS ENUM ('zeta', 'alpha', 'mid')")
        columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                                     for c, (t, _, _) in COLUMNS.items())
        conn.execute(sql.SQL("CREATE TABLE typed_rows (id integer PRIMARY KEY, {})").format(columns))
        rows = max(len(v) for _, v, _ in COLUMNS.values()) + 1  # the last row is all NULL
        for i in range(rows):
            values = [v[i] if i < len(v) else None for _, v, _ in COLUMNS.values()]
            casts = sql.SQL(", ").join(sql.SQL("CAST(%s AS {})").format(sql.SQL(t)) for t, _, _ in COLUMNS.values())
            conn.execute(sql.SQL("INSERT INTO typed_rows VALUES (%s, {})").format(casts), [i + 1, *values])
        conn.commit()
    server = start_server(url)
    client = flight.connect(server.flight_url)
    try:
        yield Db(url, server, client)
    finally:
        client.close()
        stop_server(server)
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def field(column: str) -> str:
    head, *rest = column.split("_")
    return head + "".join(p.title() for p in rest)


@pytest.mark.parametrize(("column", "op", "index"), cases())
def test_filter_compares_in_the_columns_type(db: Db, column: str, op: str, index: int) -> None:
    sql_type, values, _ = COLUMNS[column]
    with psycopg.connect(db.url) as conn:
        if op == "in":
            condition = sql.SQL("{} = ANY(CAST(%s AS {}[]))").format(sql.Identifier(column), sql.SQL(sql_type))
            param: object = [values[index], values[0]]
        else:
            condition = sql.SQL("{} {} CAST(%s AS {})").format(sql.Identifier(column), sql.SQL(SIGNS[op]),
                                                               sql.SQL(sql_type))
            param = values[index]
        query = sql.SQL("SELECT id FROM typed_rows WHERE {} ORDER BY id").format(condition)
        expected = [r[0] for r in conn.execute(query, [param]).fetchall()]
    operand = f"[{gql_literal(column, index)}, {gql_literal(column, 0)}]" if op == "in" else gql_literal(column, index)
    text = f"{{ typedRows(where: {{{field(column)}: {{{op}: {operand}}}}}, orderBy: [{{id: ASC}}]) {{ id }} }}"
    with db.server.client() as client:
        body = orjson.loads(client.post("/graphql", json={"query": text}).content)
    assert "errors" not in body, (text, body)
    assert [r["id"] for r in body["data"]["typedRows"]] == expected, text
    table = db.flight.do_get(flight.Ticket(orjson.dumps({"kind": "graphql", "query": text}))).read_all()
    assert table.column("id").to_pylist() == expected, text

