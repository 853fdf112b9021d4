"""Parameters bound as strings compare as the column's own type, whatever the type, name or schema.

ADBC sends a string parameter as ``text``; Quiver casts it to the type PostgreSQL inferred at prepare.
The oracle is psycopg, which sends strings untyped so PostgreSQL infers the type itself. Each example
draws a column (numeric, uuid, jsonb, inet, interval, dates, times, enums with awkward names, one in a
schema off the search path, ...), an operator and a value; the ids the ADBC Flight SQL driver gets
through Quiver must equal psycopg's.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.flight.sql.server import SqlOnlyServer

Row = tuple[Any, ...]
LABELS = ["Happy face", "sad", "ÜBER", "it's"]
COLUMNS: dict[str, tuple[str, st.SearchStrategy[str]]] = {
    "n": ("numeric(14,4)", st.decimals(-10**9, 10**9, places=4, allow_nan=False).map(str)),
    "i8": ("bigint", st.integers(-(2**63), 2**63 - 1).map(str)),
    "u": ("uuid", st.uuids().map(str)),
    "j": ("jsonb", st.dictionaries(st.sampled_from("abc"), st.integers(-3, 3), max_size=2).map(json.dumps)),
    "ip": ("inet", st.ip_addresses(v=4).map(str) | st.ip_addresses(v=6).map(str)),
    "iv": ("interval", st.tuples(st.integers(-400, 400), st.integers(0, 86399)).map(lambda p: f"{p[0]} days {p[1]} s")),
    "d": ("date", st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)).map(str)),
    "ts": ("timestamptz", st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2040, 1, 1),
                                       timezones=st.just(dt.UTC)).map(lambda t: t.isoformat())),
    "tm": ("time", st.times().map(str)),
    "b": ("boolean", st.sampled_from(["true", "false", "t", "f", "yes", "off"])),
    "mood": ('"Odd ""Mood"" type"', st.sampled_from(LABELS)),
    "hidden": ("fsql_hidden.mood", st.sampled_from(LABELS)),
    "t": ("text", st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=8)),
    "vc": ("varchar(20)", st.text("abcxyz", max_size=5)),
}
# The stored rows: the same kinds of value as the strategies, from a seeded generator.
ROW_VALUES: dict[str, Any] = {
    "n": lambda r: str(Decimal(r.randint(-10**13, 10**13)) / 10000),
    "i8": lambda r: str(r.randint(-(2**63), 2**63 - 1)),
    "u": lambda r: str(uuid.UUID(int=r.getrandbits(128))),
    "j": lambda r: json.dumps({k: r.randint(-3, 3) for k in r.sample("abc", r.randint(0, 2))}),
    "ip": lambda r: str(ipaddress.ip_address(r.getrandbits(32) if r.random() < 0.5 else r.getrandbits(128))),
    "iv": lambda r: f"{r.randint(-400, 400)} days {r.randint(0, 86399)} s",
    "d": lambda r: str(dt.date(1900, 1, 1) + dt.timedelta(days=r.randint(0, 73000))),
    "ts": lambda r: (dt.datetime(1990, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=r.randint(0, 10**9))).isoformat(),
    "tm": lambda r: str(dt.time(r.randint(0, 23), r.randint(0, 59), r.randint(0, 59), r.randint(0, 999999))),
    "b": lambda r: r.choice(["true", "false"]),
    "mood": lambda r: r.choice(LABELS),
    "hidden": lambda r: r.choice(LABELS),
    "t": lambda r: "".join(r.choice("aé z'$1") for _ in range(r.randint(0, 6))),
    "vc": lambda r: "".join(r.choice("abcxyz") for _ in range(r.randint(0, 5))),
}
OPERATORS = ["{c} = $1", "{c} > $1", "$1 <= {c}", "{c} IN ($1, $1)", "coalesce({c}, $1) = $1",
             "{c} IS DISTINCT FROM $1"]


@pytest.fixture(scope="module")
def table(sql_url: str) -> Iterator[str]:
    """fsql.params: 60 rows of seeded random values (and NULLs) in every column, made with psycopg."""
    rng = random.Random(7)
    drawn = [tuple(None if rng.random() < 0.15 else make(rng) for make in ROW_VALUES.values()) for _ in range(60)]
    with psycopg.connect(sql_url, autocommit=True) as pg:
        labels = ", ".join("'" + label.replace("'", "''") + "'" for label in LABELS)
        pg.execute(f"CREATE TYPE \"Odd \"\"Mood\"\" type\" AS ENUM ({labels})")
        pg.execute("CREATE SCHEMA fsql_hidden")
        pg.execute(f"CREATE TYPE fsql_hidden.mood AS ENUM ({labels})")
        columns = ", ".join(f"{name} {sql_type}" for name, (sql_type, _) in COLUMNS.items())
        pg.execute(f"CREATE TABLE fsql.params (id int PRIMARY KEY, {columns})")
        marks = ", ".join(["%s"] * (len(COLUMNS) + 1))
        with pg.cursor() as cur:
            cur.executemany(f"INSERT INTO fsql.params VALUES ({marks})", [(n, *row) for n, row in enumerate(drawn)])
    yield "fsql.params"


@pytest.fixture(scope="module")
def adbc_conn(sql_server: SqlOnlyServer) -> Iterator[Any]:
    with flightsql.connect(sql_server.url, autocommit=True) as connection:
        yield connection


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_string_parameters_compare_in_the_columns_type(table: str, adbc_conn: Any, sql_url: str,
                                                       data: st.DataObject) -> None:
    column = data.draw(st.sampled_from(sorted(COLUMNS)))
    where = data.draw(st.sampled_from(OPERATORS)).format(c=column)
    value = data.draw(COLUMNS[column][1])
    sql = f"SELECT id FROM {table} WHERE {where} ORDER BY id"
    with psycopg.connect(sql_url) as pg:
        expected = [row[0] for row in pg.execute(sql.replace("$1", "%(v)s"), {"v": value})]
    with adbc_conn.cursor() as cur:
        cur.execute(sql, (value,))
        got = cur.fetch_arrow_table().column("id").to_pylist()
    assert got == expected, (sql, value)


def test_the_oracle_sees_real_matches(table: str, adbc_conn: Any, sql_url: str) -> None:
    """Not every comparison is empty: a value taken from the table finds its row, in every column."""
    with psycopg.connect(sql_url) as pg:
        for column in COLUMNS:
            row = pg.execute(f"SELECT id, {column}::text FROM {table} WHERE {column} IS NOT NULL "
                             "ORDER BY id LIMIT 1").fetchone()
            assert row is not None
            with adbc_conn.cursor() as cur:
                cur.execute(f"SELECT id FROM {table} WHERE {column} = $1 AND id = $2", (row[1], row[0]))
                assert cur.fetch_arrow_table().column("id").to_pylist() == [row[0]], column

