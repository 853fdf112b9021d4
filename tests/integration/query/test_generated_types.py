"""Generated types (hypothesis): every supported type, special values included, answers as plain SQL on every plane.

One database holds two tables with odd names (drawn by ``QUIVER_TYPES_SEED``), a parent and a
child with a foreign key, each with a column of every type Quiver maps (int2/4/8, float4/8,
numeric and numeric(10,2), text, bool, uuid, timestamptz, timestamp, date, time, timetz,
interval, jsonb, bytea, an enum whose label order is not its text order, inet, cidr, money,
macaddr, int[], text[], date[] and timestamptz[]) and random rows full of the special values
of docs/graphql.md "Special values": ±infinity and BC dates and timestamps, float and
numeric NaN/±Infinity, 2-D arrays, NULLs. Hypothesis draws queries — filters
(eq/gt/gte/lt/lte/in on every filterable column), nesting through the foreign key both ways,
aliases, ordering, limit and offset — and each is answered by JSON over HTTP, Arrow over HTTP
and Flight, and compared with the answer assembled from plain SQL through psycopg, in the
documented forms: values a plane cannot carry must be refused with UNSUPPORTED_VALUE naming
the column, and nothing else may be. ``QUIVER_TYPES_EXAMPLES`` (default 150, ~20 s) raises the count.
"""

from __future__ import annotations

import base64
import math
import os
import random
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
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from psycopg import sql

from tests.conftest import Server, admin_url, database_url, start_server, stop_server

EXAMPLES = int(os.environ.get("QUIVER_TYPES_EXAMPLES", "150"))
SEED = int(os.environ.get("QUIVER_TYPES_SEED", "0"))
ARROW = "application/vnd.apache.arrow.stream"
ENUM_LABELS = ["zeta", "alpha", "mid"]  # enum order is not text order
TS = "CASE WHEN isfinite({c}) THEN CAST(extract(epoch FROM {c}) * 1000000 AS bigint) END"
DAYS = "CASE WHEN isfinite({c}) THEN {c} - DATE '1970-01-01' END"


@dataclass(frozen=True)
class T:
    """One column type: SQL, stored values (SQL text), how SQL gives its Arrow form, what Arrow refuses."""

    sql: str
    pool: tuple[str, ...]
    arrow: str = "{c}"  # an SQL expression of the Arrow plane's value (psycopg loads it)
    bad: str = "FALSE"  # an SQL condition: the Arrow planes must refuse the value
    json: str = "to_json({c})"  # the JSON plane's value before ``json_fix``
    ops: tuple[str, ...] = ("eq", "gt", "gte", "lt", "lte", "in")
    gql: str = "string"  # how a pool value is written as a GraphQL literal: string, number, bool, enum, none
    nested_arrow: str | None = None  # the Arrow form inside a nested selection, when it differs


TEXT = "CAST({c} AS text)"
ELEMENTS = "CASE WHEN {c} IS NOT NULL THEN ARRAY(SELECT {e} FROM unnest({c}) WITH ORDINALITY AS u(x, i) ORDER BY i) END"
TYPES: dict[str, T] = {
    "int2": T("smallint", ("-3", "0", "7"), gql="number"),
    "int4": T("integer", ("-2", "10", "9"), gql="number"),
    "int8": T("bigint", ("9007199254740993", "-1", "10"), json="to_json(CAST({c} AS text))"),
    "float4": T("real", ("1.5", "-2.25", "NaN", "Infinity", "-Infinity"), gql="number"),
    "float8": T("double precision", ("0.1", "-1e300", "NaN", "Infinity", "-Infinity"), gql="number"),
    "numeric": T("numeric", ("1.50", "-3", "10", "9", "NaN", "Infinity", "-Infinity"), arrow=TEXT,
                 json="to_json(CAST({c} AS text))"),
    "numeric_10_2": T("numeric(10,2)", ("1.50", "-3.00", "10.00", "9.25", "NaN"),
                      bad="{c} = 'NaN'", json="to_json(CAST({c} AS text))"),
    "text": T("text", ("b", "B", "é", "10", "9")),
    "bool": T("boolean", ("true", "false"), ops=("eq",), gql="bool"),
    "uuid": T("uuid", ("00000000-0000-0000-0000-00000000000a", "ffffffff-0000-0000-0000-000000000000",
                       "10000000-0000-0000-0000-000000000000"), arrow=TEXT),
    "timestamptz": T("timestamptz", ("infinity", "-infinity", "0044-03-15 10:00:01.5+00 BC",
                                     "2024-05-01 10:00:00.123456+00", "0001-01-01 00:00:00+00 BC",
                                     "1969-12-31 23:59:59+00"), arrow=TS, bad="NOT isfinite({c})"),
    "timestamp": T("timestamp", ("infinity", "-infinity", "0044-03-15 10:00:01.5 BC", "2024-05-01 10:00:00",
                                 "9999-12-31 23:59:59.999999"), arrow=TS, bad="NOT isfinite({c})"),
    "date": T("date", ("infinity", "-infinity", "0001-03-15 BC", "0044-03-15 BC", "2024-01-01", "0001-01-01"),
              arrow=DAYS, bad="NOT isfinite({c})"),
    "time": T("time", ("12:00:01.5", "00:00:00", "23:59:59.999999"),
              arrow="CAST(extract(epoch FROM {c}) * 1000000 AS bigint)"),
    "timetz": T("timetz", ("10:00:00+02", "09:00:00-05", "23:00:00+00"), arrow=TEXT),
    "interval": T("interval", ("P1D", "PT25H", "P1M", "P-1D", "PT0.5S"),
                  arrow="CASE WHEN {c} IS NOT NULL THEN ARRAY["
                        "CAST(extract(year FROM {c}) * 12 + extract(month FROM {c}) AS bigint), "
                        "CAST(extract(day FROM {c}) AS bigint), CAST((extract(hour FROM {c}) * 3600 + "
                        "extract(minute FROM {c}) * 60) * 1000000000 + extract(microseconds FROM {c}) * 1000 "
                        "AS bigint)] END", nested_arrow=TEXT),
    "jsonb": T("jsonb", ('{"a": 1}', '[1, "x", null]', '"s"'), arrow=TEXT, ops=(), gql="none"),
    "bytea": T("bytea", ("\\x00ff", "\\x", "\\x41"), ops=("eq",), json="{c}", gql="bytes"),
    "enum": T("quiver_mood", tuple(ENUM_LABELS), arrow=TEXT, gql="enum"),
    "inet": T("inet", ("10.0.0.9", "10.0.0.10", "9.0.0.1", "::1", "10.0.0.0/8"), arrow=TEXT, json=TEXT),
    "cidr": T("cidr", ("10.0.0.0/8", "9.0.0.0/8", "10.0.0.0/16", "192.168.0.0/24"), arrow=TEXT, json=TEXT),
    "money": T("money", ("$9.00", "$10.00", "-$1.00", "$100.50"), arrow=TEXT, json=TEXT),
    "macaddr": T("macaddr", ("08:00:2b:01:02:0a", "08:00:2b:01:02:09", "8:00:2b:01:02:10"), arrow=TEXT, json=TEXT),
    "int4_array": T("integer[]", ("{1,2}", "{{1,2},{3,4}}", "{}", "{NULL,10}"), bad="array_ndims({c}) > 1",
                    ops=(), gql="none"),
    "text_array": T("text[]", ('{"b","B"}', '{{"a","b"},{"c","d"}}', '{NULL}'), bad="array_ndims({c}) > 1",
                    ops=(), gql="none"),
    "date_array": T("date[]", ("{2024-01-01,0044-03-15 BC}", "{infinity}", "{{2024-01-01},{0002-01-01 BC}}", "{}"),
                    arrow=ELEMENTS.format(e=DAYS.format(c="x"), c="{c}"), ops=(), gql="none",
                    bad="array_ndims({c}) > 1 OR EXISTS (SELECT FROM unnest({c}) AS x WHERE NOT isfinite(x))"),
    "timestamptz_array": T("timestamptz[]", ("{2024-01-01 00:00:00+00,0044-03-15 10:00:00+00 BC}", "{-infinity}"),
                           arrow=ELEMENTS.format(e=TS.format(c="x"), c="{c}"), ops=(), gql="none",
                           bad="EXISTS (SELECT FROM unnest({c}) AS x WHERE NOT isfinite(x))"),
}
SORTABLE = [k for k, t in TYPES.items() if not t.sql.endswith("[]") and k != "jsonb"]
TABLE_NAMES = ["Odd Parent", "r", "order", "t1", "quiver row", "select", "Mixed_Case"]
COLUMN_PREFIXES = ["", "x ", "Col", "t1_", "order_"]
DIRECTIONS = {"ASC": "ASC NULLS LAST", "DESC": "DESC NULLS FIRST", "ASC_NULLS_FIRST": "ASC NULLS FIRST",
              "DESC_NULLS_LAST": "DESC NULLS LAST"}
ALIASES = ["r", "t1", "x", "v", "count", "id", "data", "quiver_row"]


# --- the schema and its rows --------------------------------------------------------------------------------


@dataclass
class Table:
    name: str
    columns: dict[str, str]  # type key -> column name (the key column is "id", the child also has "parent_ref")

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier("public", self.name)


def make_tables(rng: random.Random) -> tuple[Table, Table]:
    parent_name, child_name = rng.sample(TABLE_NAMES, 2)
    tables = []
    for name in (parent_name, child_name):
        prefix = rng.choice(COLUMN_PREFIXES)
        tables.append(Table(name, {k: f"{prefix}{k}" for k in TYPES}))
    return tables[0], tables[1]


def special(value: str) -> bool:
    """±infinity, NaN, 2-D arrays: rarer in the data, so that most Arrow answers are values, not refusals."""
    return any(word in value for word in ("infinity", "NaN", "Infinity", "{{"))


def create(conn: psycopg.Connection[Any], parent: Table, child: Table, rng: random.Random) -> None:
    labels = sql.SQL(", ").join(sql.Literal(label) for label in ENUM_LABELS)
    conn.execute(sql.SQL("CREATE TYPE quiver_mood AS ENUM ({})").format(labels))
    for table in (parent, child):
        columns = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(TYPES[k].sql)) for k, n in table.columns.items()]
        if table is child:
            columns.append(sql.SQL("parent_ref integer REFERENCES {} (id)").format(parent.ident))
        conn.execute(sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, {})").format(
            table.ident, sql.SQL(", ").join(columns)))
    for table, count in ((parent, 6), (child, 10)):
        for i in range(count):
            values: dict[str, str | int | None] = {"id": i + 1}
            for k, name in table.columns.items():
                pool = TYPES[k].pool
                ordinary = [v for v in pool if not special(v)] or list(pool)
                values[name] = None if rng.random() < 0.15 else rng.choice(pool if rng.random() < 0.12 else ordinary)
            if table is child:
                values["parent_ref"] = None if rng.random() < 0.2 else rng.randint(1, 6)
            casts = [sql.SQL("CAST(%s AS {})").format(sql.SQL(TYPES[k].sql)) for k in table.columns]
            conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, {}{})").format(
                table.ident, sql.SQL(", ").join(casts), sql.SQL(", %s") if table is child else sql.SQL("")),
                list(values.values()))
    conn.commit()


@dataclass
class Running:
    server: Server
    url: str
    parent: Table
    child: Table
    fields: dict[tuple[str, str], str]  # (table, column) -> GraphQL field
    names: dict[str, tuple[str, str, str]]  # table -> (list field, forward relation, backward relation)
    flight: flight.FlightClient


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    rng = random.Random(f"types-{SEED}")
    parent, child = make_tables(rng)
    db = f"quiver_types_{os.getpid()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{db}"')
    url = database_url(db)
    with psycopg.connect(url) as conn:
        create(conn, parent, child, rng)
        for table in (parent, child):
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(table.ident, sql.Literal(f"table {table.name}")))
            for name in [*table.columns.values(), "id"] + (["parent_ref"] if table is child else []):
                conn.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                    table.ident, sql.Identifier(name), sql.Literal(f"column {name}")))
        conn.commit()
    server = start_server(url)
    try:
        with server.client() as client:
            body = orjson.loads(client.post("/graphql", json={"query": INTROSPECTION}).content)
        fields, names = read_names(body["data"]["__schema"], parent, child)
        client_ = flight.connect(server.flight_url)
        yield Running(server, url, parent, child, fields, names, client_)
        client_.close()
    finally:
        stop_server(server)
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


INTROSPECTION = """{ __schema { queryType { fields { name type { kind name ofType { kind name ofType { kind name
  ofType { kind name } } } } } } types { name description fields { name description type { kind name ofType {
  kind name ofType { kind name ofType { kind name } } } } } } } }"""


def _base(t: dict[str, Any]) -> tuple[bool, str]:
    """(is a list, named type) of an introspected type."""
    listed = False
    while t["name"] is None:
        listed = listed or t["kind"] == "LIST"
        t = t["ofType"]
    return listed, str(t["name"])


def read_names(schema: dict[str, Any], parent: Table, child: Table) -> tuple[dict[tuple[str, str], str],
                                                                            dict[str, tuple[str, str, str]]]:
    fields: dict[tuple[str, str], str] = {}
    types = {}
    for table in (parent, child):
        type_ = next(t for t in schema["types"] if t["description"] == f"table {table.name}")
        types[table.name] = type_
        for f in type_["fields"]:
            if (f["description"] or "").startswith("column "):
                fields[(table.name, f["description"][7:])] = f["name"]
    names = {}
    for table, other in ((parent, child), (child, parent)):
        type_ = types[table.name]
        roots = [f["name"] for f in schema["queryType"]["fields"] if _base(f["type"]) == (True, type_["name"])]
        relation = next(f["name"] for f in type_["fields"] if _base(f["type"])[1] == types[other.name]["name"])
        names[table.name] = (roots[0], relation, "")
    return fields, names


# --- queries ------------------------------------------------------------------------------------------------


@dataclass
class Sel:
    key: str
    column: str | None = None  # type key, or "id"
    nested: Q | None = None  # a relation


@dataclass
class Q:
    table: Table
    items: list[Sel]
    where: tuple[str, str, Any] | None = None  # (type key, op, pool value or list of them)
    order: list[tuple[str, str]] | None = None
    limit: int | None = None
    offset: int | None = None
    forward: bool = False  # a nested many-to-one object (else a list)


def draw_query(data: st.DataObject, run: Running, table: Table, depth: int) -> Q:
    keys = data.draw(st.lists(st.sampled_from(["id", *TYPES]), min_size=1, max_size=8, unique=True))
    items: list[Sel] = []
    for k in keys:
        name = run.fields[(table.name, table.columns.get(k, "id"))]
        key = data.draw(st.one_of(st.none(), st.sampled_from(ALIASES))) or name
        if key not in {i.key for i in items}:
            items.append(Sel(key, k))
    if depth < 2 and data.draw(st.integers(0, 9)) < 7:  # most queries nest: nested leaves take another path
        other = run.child if table is run.parent else run.parent
        nested = draw_query(data, run, other, depth + 1)
        nested.forward = table is run.child
        if nested.forward:
            nested.where = nested.order = nested.limit = nested.offset = None
        relation = run.names[table.name][1]
        if relation not in {i.key for i in items}:
            items.append(Sel(relation, None, nested))
    q = Q(table, items or [Sel("id", "id")])
    filterable = [k for k, t in TYPES.items() if t.ops and t.gql != "none"]
    if data.draw(st.booleans()):
        k = data.draw(st.sampled_from(filterable))
        op = data.draw(st.sampled_from(TYPES[k].ops))
        usable = [v for v in TYPES[k].pool if literal(k, v) is not None]
        if usable:
            value: Any = data.draw(st.lists(st.sampled_from(usable), min_size=1, max_size=3)) if op == "in" \
                else data.draw(st.sampled_from(usable))
            q.where = (k, op, value)
    if data.draw(st.booleans()):
        q.order = data.draw(st.lists(st.tuples(st.sampled_from(SORTABLE), st.sampled_from(list(DIRECTIONS))),
                                     max_size=2, unique_by=lambda o: o[0])) + [("id", "ASC")]
        q.limit = data.draw(st.one_of(st.none(), st.integers(0, 5)))
        q.offset = data.draw(st.one_of(st.none(), st.integers(0, 3)))
    return q


def literal(k: str, value: str) -> str | None:
    """A pool value as a GraphQL input literal in the scalar's documented input form (None: not writable)."""
    kind = TYPES[k].gql
    if kind == "number":
        number = float(value)
        return None if math.isnan(number) or math.isinf(number) else value
    if kind == "bool":
        return value
    if kind == "enum":
        return value
    if kind == "bytes":
        return orjson.dumps(base64.b64encode(bytes.fromhex(value[2:])).decode()).decode()
    if kind != "string":
        return None
    if k in ("numeric", "numeric_10_2") and value in ("NaN", "Infinity", "-Infinity"):
        return None
    if k in ("timestamptz", "timestamp", "date") and "BC" in value:
        return None
    if k == "timestamptz" and value not in ("infinity", "-infinity"):
        value = value.replace(" ", "T").replace("+00", "+00:00")
    if k == "timestamp" and value not in ("infinity", "-infinity"):
        value = value.replace(" ", "T")
    if k == "timetz":
        value = value[:-3] + value[-3:] + ":00"
    return orjson.dumps(value).decode()


def graphql(run: Running, q: Q) -> str:
    def args(q: Q) -> str:
        parts = []
        if q.where is not None:
            k, op, value = q.where
            field = run.fields[(q.table.name, q.table.columns[k])]
            text = "[" + ", ".join(str(literal(k, v)) for v in value) + "]" if op == "in" else literal(k, value)
            parts.append(f"where: {{{field}: {{{op}: {text}}}}}")
        if q.order:
            parts.append("orderBy: [" + ", ".join(
                f"{{{run.fields[(q.table.name, q.table.columns.get(k, 'id'))]}: {d}}}" for k, d in q.order) + "]")
        if q.limit is not None:
            parts.append(f"limit: {q.limit}")
        if q.offset is not None:
            parts.append(f"offset: {q.offset}")
        return f"({', '.join(parts)})" if parts else ""

    def body(q: Q) -> str:
        out = []
        for item in q.items:
            if item.nested is not None:
                name = run.names[q.table.name][1]
                head = name if item.key == name else f"{item.key}: {name}"
                out.append(f"{head}{args(item.nested)} {body(item.nested)}")
            else:
                name = run.fields[(q.table.name, q.table.columns.get(item.column or "id", "id"))]
                out.append(name if item.key == name else f"{item.key}: {name}")
        return "{ " + " ".join(out) + " }"

    return f"{{ {run.names[q.table.name][0]}{args(q)} {body(q)} }}"


# --- the oracle: plain SQL through psycopg ------------------------------------------------------------------


class Unordered(list[Any]):
    """Rows of a list without orderBy: compared as a multiset."""


def iso_year(value: Any) -> Any:
    """PostgreSQL's ``0044-03-15 BC`` as ISO 8601's astronomical ``-0043-03-15`` (1 BC is 0000), in lists too."""
    if isinstance(value, list):
        return [iso_year(v) for v in value]
    if isinstance(value, str) and value.endswith(" BC"):
        astro = 1 - int(value[:4])
        return ("0000" if astro == 0 else f"-{-astro:04d}") + value[4:-3]
    return value


def json_fix(k: str, value: Any) -> Any:
    if value is None:
        return None
    if k in ("date", "timestamp", "timestamptz", "date_array", "timestamptz_array"):
        return iso_year(value)
    if k == "bytea":
        return base64.b64encode(value).decode()
    return value


class Oracle:
    def __init__(self, conn: psycopg.Connection[Any], run: Running) -> None:
        self.conn, self.run = conn, run
        self.bad: list[str] = []  # column paths of values the Arrow planes must refuse
        self.seen: set[str] = set()  # the columns compared (``nested `` ones inside a relation), for statistics

    def rows(self, q: Q, join: tuple[str, Any] | None, path: str, nested: bool) -> tuple[list[Any], list[Any]]:
        """(JSON plane rows, Arrow plane rows) of one list or relation level."""
        parts: list[sql.Composable] = [sql.SQL("q.id")]
        if q.table is self.run.child:
            parts.append(sql.SQL("q.parent_ref"))
        scalars = [i for i in q.items if i.nested is None]
        for item in scalars:
            column = sql.SQL("q.{}").format(sql.Identifier(q.table.columns.get(item.column or "id", "id")))
            t = TYPES.get(item.column or "", T("integer", ()))
            arrow = t.nested_arrow if nested and t.nested_arrow else t.arrow
            self.seen.add(f"{'nested ' if nested else ''}{item.column}")
            for template in (t.json, arrow, t.bad):
                parts.append(sql.SQL(template).format(c=column))
        query = sql.SQL("SELECT {} FROM {} AS q").format(sql.SQL(", ").join(parts), q.table.ident)
        params: list[Any] = []
        conditions: list[sql.Composable] = []
        if join is not None:
            conditions.append(sql.SQL("q.{} = %s").format(sql.Identifier(join[0])))
            params.append(join[1])
        if q.where is not None:
            k, op, value = q.where
            ident = sql.Identifier(q.table.columns[k])
            if op == "in":
                conditions.append(sql.SQL("q.{} = ANY(CAST(%s AS {}[]))").format(ident, sql.SQL(TYPES[k].sql)))
            else:
                sign = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
                conditions.append(sql.SQL("q.{} {} CAST(%s AS {})").format(ident, sql.SQL(sign),
                                                                          sql.SQL(TYPES[k].sql)))
            params.append(value)
        if conditions:
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
        if q.order:
            query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
                sql.SQL("q.{} {}").format(sql.Identifier(q.table.columns.get(k, "id")), sql.SQL(DIRECTIONS[d]))
                for k, d in q.order)
        if q.limit is not None:
            query += sql.SQL(" LIMIT {}").format(sql.Literal(q.limit))
        if q.offset is not None:
            query += sql.SQL(" OFFSET {}").format(sql.Literal(q.offset))
        json_rows, arrow_rows = [], []
        for row in self.conn.execute(query, params).fetchall():
            key, parent_ref = row[0], row[1] if q.table is self.run.child else None
            values = iter(row[2 if q.table is self.run.child else 1:])
            j: dict[str, Any] = {}
            a: dict[str, Any] = {}
            for item in q.items:
                if item.nested is None:
                    jv, av, bad = next(values), next(values), next(values)
                    j[item.key] = json_fix(item.column or "", jv)
                    a[item.key] = av
                    if bad:
                        self.bad.append(f"{path}{item.key}")
                elif item.nested.forward:
                    if parent_ref is None:
                        j[item.key] = a[item.key] = None
                    else:
                        jj, aa = self.rows(item.nested, ("id", parent_ref), f"{path}{item.key}.", True)
                        j[item.key], a[item.key] = jj[0], aa[0]
                else:
                    j[item.key], a[item.key] = self.rows(item.nested, ("parent_ref", key), f"{path}{item.key}.", True)
            json_rows.append(j)
            arrow_rows.append(a)
        if not q.order:
            return Unordered(json_rows), Unordered(arrow_rows)
        return json_rows, arrow_rows


def canon(value: Any, like: Any) -> Any:
    """Comparable: NaN equal to NaN, Arrow intervals as lists, lists the oracle marks Unordered sorted."""
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if isinstance(value, pa.MonthDayNano):
        return ("list", (("number", value.months), ("number", value.days), ("number", value.nanoseconds)))
    if isinstance(value, dict):
        shape = like if isinstance(like, dict) else {}
        return ("object", tuple((k, canon(v, shape.get(k))) for k, v in value.items()))
    if isinstance(value, list):
        template = like[0] if isinstance(like, list) and like else None
        items = [canon(v, template) for v in value]
        if isinstance(like, Unordered):
            items.sort(key=repr)
        return ("list", tuple(items))
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", value)
    return (type(value).__name__, value)


def plain(t: pa.DataType) -> pa.DataType:
    """Arrow types Python can hold for any value (BC dates are not ``datetime``): epoch counts."""
    if pa.types.is_timestamp(t) or pa.types.is_time64(t):
        return pa.int64()
    if pa.types.is_date32(t):
        return pa.int32()
    if pa.types.is_dictionary(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, plain(f.type)) for f in t])  # nullable: a NULL struct has NULL fields
    if pa.types.is_list(t):
        return pa.list_(pa.field("item", plain(t.value_type)))
    return t


def arrow_rows(table: pa.Table) -> list[Any]:
    schema = pa.schema([pa.field(f.name, plain(f.type)) for f in table.schema])
    rows: list[Any] = table.cast(schema).to_pylist()
    return rows


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_type_answers_as_plain_sql_on_every_plane(running: Running, data: st.DataObject) -> None:
    run = running
    table = data.draw(st.sampled_from([run.parent, run.child]))
    q = draw_query(data, run, table, 1)
    text = graphql(run, q)
    with psycopg.connect(run.url) as conn:
        conn.execute("SET TimeZone = 'UTC'; SET IntervalStyle = 'iso_8601'; SET DateStyle = 'ISO, YMD'")
        oracle = Oracle(conn, run)
        want_json, want_arrow = oracle.rows(q, None, "", False)
    root = run.names[q.table.name][0]
    note(text)
    for seen in oracle.seen:
        event(f"JSON compared: {seen}")
    with httpx.Client(base_url=run.server.url, timeout=30) as client:
        body = orjson.loads(client.post("/graphql", json={"query": text}).content)
        assert "errors" not in body, f"{text}\n{body}"
        got = body["data"][root]
        assert canon(got, want_json) == canon(want_json, want_json), f"JSON plane\n{text}\n got {got}\nwant {want_json}"
        response = client.post("/graphql", json={"query": text}, headers={"accept": ARROW})
    ticket = flight.Ticket(orjson.dumps({"kind": "graphql", "query": text}))
    if oracle.bad:
        event("refused by the Arrow planes")
        assert not response.headers["content-type"].startswith(ARROW), f"{text}\nArrow sent values it must refuse"
        error = orjson.loads(response.content)["errors"][0]
        assert error["extensions"]["code"] == "UNSUPPORTED_VALUE", f"{text}\n{error}"
        assert any(repr(path) in error["message"] for path in oracle.bad), (text, error, oracle.bad)
        with pytest.raises(pa.ArrowInvalid) as refused:  # Flight INVALID_ARGUMENT
            run.flight.do_get(ticket).read_all()
        assert any(f"column {p!r}, row " in str(refused.value) for p in oracle.bad), (text, str(refused.value))
        return
    assert response.status_code == 200, f"{text}\n{response.text}"
    for plane, result in (("Arrow over HTTP", ipc.open_stream(response.content).read_all()),
                          ("Flight", run.flight.do_get(ticket).read_all())):
        got = arrow_rows(result)
        assert canon(got, want_arrow) == canon(want_arrow, want_arrow), \
            f"{plane}\n{text}\n got {got}\nwant {want_arrow}"
    for seen in oracle.seen:
        event(f"Arrow compared: {seen}")
