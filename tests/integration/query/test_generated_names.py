"""Generated names (hypothesis): odd database names and aliases never change a result, on any plane.

A handful of random schemas is generated (schema 0 always holds the cases of issue G: a
column ``r``, ``"order"`` beside ``orders``, ``"Order_Items"`` beside ``order_items``,
``"userId"`` beside ``user_id``). Their tables and columns take odd names — one letter
(``r``, ``n``, ``t``, ``x``, ``v``), SQL keywords, quoted mixed case, names that camelCase or
singularise to the same GraphQL name, names of Quiver's own SQL aliases (``t1``, ``changed``,
``quiver row``) and of built-in GraphQL types (``queries`` → ``Query``) — with an enum whose
type name and labels clash too, a foreign key between two of the tables and random rows.
Each schema gets its own database and one ``quiver serve`` (all started in parallel: the
server introspects at start-up). Then:

* the names: every table is exactly one GraphQL type with one list field, every column
  exactly one field, the relation is one field each way, tables and columns whose names
  clash with nothing keep their natural names; ListFlights lists every table exactly once
  and DoGet of each listed flight returns that table;
* the queries (hypothesis): random list, by-key and aggregate roots with random aliases
  (including the compiler's internal names), nested object and list relations, filters
  ``eq``/``gt``, ``orderBy`` and ``limit``, each answered by the JSON plane over HTTP, Arrow
  over HTTP and Flight DoGet, and compared — key order and JSON types included — with the
  answer assembled from plain SQL through psycopg (never through Quiver).

The tables are discovered through GraphQL introspection by their comments (each table and
column is commented with a marker), so the oracle never assumes the naming rule it tests.
``QUIVER_NAMES_SCHEMAS`` (default 3) and ``QUIVER_NAMES_QUERIES`` (queries per schema,
default 40) make a longer run; ``QUIVER_NAMES_SEED`` picks other random schemas.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import orjson
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from quiver.schema import naming
from tests.conftest import Server, admin_url, database_url, start_server, stop_server

SCHEMAS = int(os.environ.get("QUIVER_NAMES_SCHEMAS", "3"))
QUERIES = int(os.environ.get("QUIVER_NAMES_QUERIES", "40"))
SEED = int(os.environ.get("QUIVER_NAMES_SEED", "0"))
ARROW = "application/vnd.apache.arrow.stream"

# Tables: each group's names give the same (or overlapping) GraphQL names.
TABLE_GROUPS = [
    ["orders", "order", "Orders"],
    ["order_items", "Order_Items", "orderItems", "order items"],
    ["users", "user"],
    ["r", "R", "rs"],
    ["t1", "T1", "t1s"],
    ["queries", "query", "mutations"],
    ["string_filters", "big_ints", "order_directions"],
    ["order_wheres", "order_aggregates", "orders_aggregate"],
    ["x", "v", "n"],
    ["quiver row", "quiver_rows", "changed", "select"],
]
COLUMN_NAMES = ["r", "n", "t", "x", "v", "t1", "t2", "ID", "Id", "userId", "user_id", "user id", "UserId", "select",
                "from", "order", "and", "or", "not", "__typename", "_cursor", "cursor", "quiver row", "changed",
                "count", "row_to_json", "key", "value", "orders", "rs"]
KEY_NAMES = ["id", "r", "x", "t", "ID", "order"]
FK_NAMES = ["r_id", "order_id", "parent_id", "user_id", "r", "n", "t1", "parent"]
ALIASES = ["r", "t", "t1", "t2", "t3", "x", "v", "n", "q", "count", "changed", "row_to_json", "json_agg", "id",
           "userId", "order", "select", "quiver_row", "_cursor", "data", "errors", "item"]
ENUM_NAMES = ["status", "order_item", "string", "r", "query", "order_direction"]
# The labels and their documented GraphQL values (docs/graphql.md: numbered in the enum's order).
LABELS = ["in-progress", "in_progress", "ok", "true", "r"]
LABEL_VALUES = {"in-progress": "in_progress", "in_progress": "in_progress2", "ok": "ok", "true": "_true", "r": "r"}
TYPES = ["integer", "bigint", "text", "numeric", "boolean", "enum"]
VALUES: dict[str, list[Any]] = {
    "integer": [-2, 0, 1, 2, 3, 7],
    "bigint": [-(2**62), -1, 0, 2**53 + 1, 2**62],
    "text": ["", "a", "B", "r", "ü", "x y", "null", "'q'", "t1"],
    "numeric": [Decimal("-1.50"), Decimal("0.00"), Decimal("1.50"), Decimal("2.25"), Decimal("12345678.90")],
    "boolean": [True, False],
    "enum": LABELS,
}
DIRECTIONS = {"ASC": "ASC NULLS LAST", "DESC": "DESC NULLS FIRST", "ASC_NULLS_FIRST": "ASC NULLS FIRST",
              "DESC_NULLS_LAST": "DESC NULLS LAST"}


# --- the generated schemas --------------------------------------------------------------------------------


@dataclass(eq=False)
class Col:
    name: str
    type: str  # one of TYPES
    nullable: bool
    marker: str  # its comment, how introspection finds its field

    def sql_type(self, enum: str) -> sql.Composable:
        if self.type == "enum":
            return sql.Identifier("public", enum)
        return sql.SQL("numeric(10,2)" if self.type == "numeric" else self.type)


@dataclass(eq=False)
class Table:
    schema: str
    name: str
    columns: list[Col]  # columns[0] is the primary key (integer, not null)
    marker: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # column name -> value

    @property
    def key(self) -> Col:
        return self.columns[0]

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


@dataclass
class Spec:
    tables: list[Table]
    child: Table  # the foreign key: child.fk references parent's key
    fk: Col
    parent: Table
    enum: str


def generate(index: int) -> Spec:
    """Schema ``index``: 0 holds the issue's cases; the others are random (seeded)."""
    rng = random.Random(f"{SEED}-{index}")
    if index == 0:
        names = ["r", "orders", "order", "order_items", "Order_Items"]
    else:
        names = []
        for group in rng.sample(TABLE_GROUPS, rng.randint(2, 4)):
            names += rng.sample(group, rng.randint(1, min(3, len(group))))
    tables = []
    for t, name in enumerate(names):
        key = Col("id" if index == 0 else rng.choice(KEY_NAMES), "integer", False, f"column {t}.0")
        if index == 0:
            extra = {"r": ["r", "n"], "order_items": ["userId", "user_id", "x"]}.get(name, ["v"])
        else:
            extra = rng.sample([c for c in COLUMN_NAMES if c != key.name], rng.randint(1, 4))
        cols = [key] + [Col(c, "integer" if index == 0 and c in ("r", "userId") else rng.choice(TYPES),
                            rng.random() < 0.6, f"column {t}.{i + 1}") for i, c in enumerate(extra)]
        # All in `public`: `quiver serve` exposes it (its --schema option wins over QUIVER_SCHEMAS).
        tables.append(Table("public", name, cols, f"table {t}"))
    if index == 0:
        child, parent = tables[3], tables[0]  # order_items.r_id -> r
        fk_name = "r_id"
    else:
        child, parent = rng.sample(tables, 2)
        fk_name = rng.choice([n for n in FK_NAMES if n not in {c.name for c in child.columns}])
    fk = Col(fk_name, "integer", rng.random() < 0.7 or index == 0, f"column {tables.index(child)}.{len(child.columns)}")
    child.columns.append(fk)
    for table in tables:
        count = 4 if index == 0 else rng.randint(0, 6)
        for i in range(count):
            row: dict[str, Any] = {table.key.name: i + 1}
            for col in table.columns[1:]:
                if col is fk:
                    continue
                row[col.name] = None if col.nullable and rng.random() < 0.25 else rng.choice(VALUES[col.type])
            table.rows.append(row)
    keys = [row[parent.key.name] for row in parent.rows]
    fk.nullable = fk.nullable or not keys  # no parent row to reference
    for row in child.rows:
        row[fk.name] = None if (fk.nullable and rng.random() < 0.3) or not keys else rng.choice(keys)
    # A table's row type shares the enum's namespace: the enum takes a name no table has.
    enum = "status" if index == 0 else rng.choice([e for e in ENUM_NAMES if e not in {t.name for t in tables}])
    return Spec(tables, child, fk, parent, enum)


def create(conn: psycopg.Connection[Any], spec: Spec) -> None:
    conn.execute(sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
        sql.Identifier("public", spec.enum), sql.SQL(", ").join(sql.Literal(label) for label in LABELS)))
    for table in spec.tables:
        columns = [sql.SQL("{} {}{}").format(sql.Identifier(c.name), c.sql_type(spec.enum),
                                             sql.SQL("" if c.nullable else " NOT NULL")) for c in table.columns]
        conn.execute(sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
            table.ident, sql.SQL(", ").join(columns), sql.Identifier(table.key.name)))
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(table.ident, sql.Literal(table.marker)))
        for c in table.columns:
            conn.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                table.ident, sql.Identifier(c.name), sql.Literal(c.marker)))
    conn.execute(sql.SQL("ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({})").format(
        spec.child.ident, sql.Identifier(spec.fk.name), spec.parent.ident, sql.Identifier(spec.parent.key.name)))
    for table in [spec.parent] + [t for t in spec.tables if t is not spec.parent]:
        for row in table.rows:
            conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                table.ident, sql.SQL(", ").join(sql.Identifier(c) for c in row),
                sql.SQL(", ").join(sql.Placeholder() * len(row))), list(row.values()))


# --- what the server named them, read through introspection ----------------------------------------------

INTROSPECTION = """
{ __schema { queryType { fields { name type { ...T } } }
             types { name kind description fields { name description type { ...T } } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
"""


def _shape(t: dict[str, Any]) -> str:
    """``[Order!]!`` style text of an introspected type."""
    if t["kind"] == "NON_NULL":
        return _shape(t["ofType"]) + "!"
    if t["kind"] == "LIST":
        return "[" + _shape(t["ofType"]) + "]"
    return str(t["name"])


@dataclass
class Names:
    types: dict[int, str]  # table index -> GraphQL type
    lists: dict[int, str]  # table index -> root list field
    ones: dict[int, str]
    aggregates: dict[int, str]
    columns: dict[tuple[int, int], str]  # (table, column) -> field
    forward: str  # the child's field holding its parent
    backward: str  # the parent's field listing its children
    fields: dict[int, list[str]]  # every field of each type


def discover(server: Server, spec: Spec) -> Names:
    with server.client() as client:
        body = orjson.loads(client.post("/graphql", json={"query": INTROSPECTION}).content)
    assert "errors" not in body, body
    schema = body["data"]["__schema"]
    by_marker: dict[str, list[str]] = {}
    types = {t["name"]: t for t in schema["types"]}
    for t in schema["types"]:
        if t["kind"] == "OBJECT" and t["description"]:
            by_marker.setdefault(t["description"], []).append(t["name"])
    names = Names({}, {}, {}, {}, {}, "", "", {})
    roots = {f["name"]: _shape(f["type"]) for f in schema["queryType"]["fields"]}
    for i, table in enumerate(spec.tables):
        found = by_marker.get(table.marker, [])
        assert len(found) == 1, f"{table.schema}.{table.name} is {len(found)} GraphQL types: {found}"
        type_name = names.types[i] = found[0]
        lists = [name for name, shape in roots.items() if shape == f"[{type_name}!]!"]
        ones = [name for name, shape in roots.items() if shape == type_name]
        assert len(lists) == 1 and len(ones) == 1, (table.name, lists, ones)
        names.lists[i], names.ones[i] = lists[0], ones[0]
        names.aggregates[i] = lists[0] + "Aggregate"
        assert roots.get(names.aggregates[i]) == f"{type_name}Aggregate!", (table.name, roots.get(names.aggregates[i]))
        fields = types[type_name]["fields"]
        names.fields[i] = [f["name"] for f in fields]
        for j, col in enumerate(table.columns):
            matching = [f["name"] for f in fields if f["description"] == col.marker]
            assert len(matching) == 1, f"column {col.name!r} of {table.name!r} is {len(matching)} fields: {matching}"
            names.columns[(i, j)] = matching[0]
    child, parent = spec.tables.index(spec.child), spec.tables.index(spec.parent)
    forward = [f["name"] for f in types[names.types[child]]["fields"] if _shape(f["type"]).rstrip("!")
               == names.types[parent]]
    backward = [f["name"] for f in types[names.types[parent]]["fields"]
                if _shape(f["type"]) == f"[{names.types[child]}!]!"]
    assert len(forward) == 1 and len(backward) == 1, (forward, backward)
    names.forward, names.backward = forward[0], backward[0]
    return names


# --- the servers ------------------------------------------------------------------------------------------


@dataclass
class Running:
    spec: Spec
    server: Server
    url: str
    names: Names
    flight: flight.FlightClient


def _prepare(index: int) -> tuple[Spec, str]:
    spec = generate(index)
    name = f"quiver_names_{os.getpid()}_{index}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    with psycopg.connect(url) as conn:
        create(conn, spec)
    return spec, url


@pytest.fixture(scope="module")
def running() -> Iterator[list[Running]]:
    servers: list[Server] = []
    result: list[Running] = []
    try:
        # Start-up is mostly CPU (imports, introspection): more servers at once than cores only slows each.
        with ThreadPoolExecutor(max_workers=min(SCHEMAS, os.cpu_count() or 2)) as pool:
            prepared = list(pool.map(_prepare, range(SCHEMAS)))
            started = [pool.submit(start_server, url) for _, url in prepared]
            for future in started:  # every server that started is stopped below, even if another failed
                with contextlib.suppress(Exception):
                    servers.append(future.result())
        assert len(servers) == SCHEMAS, [f.exception() for f in started]
        for (spec, url), server in zip(prepared, servers, strict=True):
            result.append(Running(spec, server, url, discover(server, spec), flight.connect(server.flight_url)))
        yield result
    finally:
        for r in result:
            r.flight.close()
        for server in servers:
            stop_server(server)
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            for index in range(SCHEMAS):
                admin.execute(f'DROP DATABASE IF EXISTS "quiver_names_{os.getpid()}_{index}" WITH (FORCE)')


# --- the names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(SCHEMAS))
def test_every_table_and_column_keeps_exactly_one_name(running: list[Running], index: int) -> None:
    spec, names = running[index].spec, running[index].names
    for i, table in enumerate(spec.tables):
        columns = [names.columns[(i, j)] for j in range(len(table.columns))]
        relations = [n for n in names.fields[i] if n not in columns and n != "_cursor"]
        assert len(relations) == (1 if table in (spec.child, spec.parent) else 0), (table.name, relations)
        assert "_cursor" in names.fields[i]
        # A column whose field name clashes with nothing keeps its camelCase name.
        bases = [naming.camel(c.name) for c in table.columns]
        for j, base in enumerate(bases):
            if bases.count(base) == 1 and base not in naming.RESERVED_FIELDS:
                assert columns[j] == base, (table.name, table.columns[j].name, columns[j])
    # A table whose names clash with no other table's (nor a built-in type) keeps its natural names.
    claims = [naming.entity_claims(naming.type_name(t.name), naming.camel(t.name), has_key=True, writable=True)
              for t in spec.tables]
    reserved = {"type:" + t for t in naming.RESERVED_TYPES}
    for i, table in enumerate(spec.tables):
        others = set().union(*(c for k, c in enumerate(claims) if k != i))
        if not claims[i] & (others | reserved):
            assert (names.types[i], names.lists[i]) == (naming.type_name(table.name), naming.camel(table.name))
    if index == 0:  # the cases, named as docs/graphql.md says
        assert [names.types[i] for i in range(5)] == ["R", "Order", "Order2", "OrderItem", "OrderItem2"]
        assert [names.lists[i] for i in range(5)] == ["r", "orders", "order2", "orderItems", "orderItems2"]
        assert [names.columns[(3, j)] for j in range(1, 4)] == ["userId", "userId2", "x"]
        assert (names.forward, names.backward) == ("r", "orderItems")


@pytest.mark.parametrize("index", range(SCHEMAS))
def test_list_flights_lists_every_table_once(running: list[Running], index: int) -> None:
    run = running[index]
    spec, names = run.spec, run.names
    infos = list(run.flight.list_flights())
    paths = [info.descriptor.path[0].decode() for info in infos]
    assert sorted(paths) == sorted(names.lists.values()), paths
    for info in infos:
        i = next(k for k, v in names.lists.items() if v == info.descriptor.path[0].decode())
        table = spec.tables[i]
        fields = [names.columns[(i, j)] for j in range(len(table.columns))]
        assert info.schema.names == fields, (table.name, info.schema.names)
        expected = sorted((arrow_row(table, names, i, row) for row in oracle_rows(run.url, table)),
                          key=lambda r: r[fields[0]])
        for endpoints in (info.endpoints, run.flight.get_flight_info(info.descriptor).endpoints):
            got = pa.concat_tables([run.flight.do_get(e.ticket).read_all() for e in endpoints])
            assert got.schema.names == fields
            assert sorted(got.to_pylist(), key=lambda r: r[fields[0]]) == expected, table.name


def oracle_rows(url: str, table: Table) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        cols = sql.SQL(", ").join(sql.SQL("q.{}").format(sql.Identifier(c.name)) for c in table.columns)
        cursor = conn.execute(sql.SQL("SELECT {} FROM {} AS q").format(cols, table.ident))
        return [dict(zip([c.name for c in table.columns], row, strict=True)) for row in cursor.fetchall()]


def arrow_row(table: Table, names: Names, i: int, row: dict[str, Any]) -> dict[str, Any]:
    return {names.columns[(i, j)]: row[c.name] for j, c in enumerate(table.columns)}


# --- random queries ---------------------------------------------------------------------------------------


@dataclass
class Item:
    """One selected field under its response key."""

    key: str
    kind: str  # column, typename, forward, backward
    column: Col | None = None
    selection: list[Item] = field(default_factory=list)  # forward
    query: ListQ | None = None  # backward


@dataclass
class ListQ:
    table: Table
    selection: list[Item]
    where: tuple[Col, str, Any] | None
    order: list[tuple[Col, str]]
    limit: int | None


@dataclass
class Query:
    kind: str  # list, one, aggregate
    table: Table
    query: ListQ | None = None  # list
    selection: list[Item] = field(default_factory=list)  # one
    key: Any = None  # one
    where: tuple[Col, str, Any] | None = None  # aggregate
    outputs: list[tuple[str, str]] = field(default_factory=list)  # aggregate: (key, count | __typename)
    root_key: str = ""


class Drawer:
    """Draws random queries over one schema and renders them as GraphQL."""

    def __init__(self, data: st.DataObject, spec: Spec, names: Names) -> None:
        self.data, self.spec, self.names = data, spec, names

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self.data.draw(strategy)

    def index(self, table: Table) -> int:
        return self.spec.tables.index(table)

    def selection(self, table: Table, depth: int) -> list[Item]:
        options: list[tuple[str, Col | None]] = [("column", c) for c in table.columns] + [("typename", None)]
        if depth < 3 and table is self.spec.child:
            options.append(("forward", None))
        if depth < 3 and table is self.spec.parent:
            options.append(("backward", None))
        picks = self.draw(st.lists(st.sampled_from(options), min_size=1, max_size=6))
        items: list[Item] = []
        used: set[str] = set()
        i = self.index(table)
        for kind, column in picks:
            name = {"column": self.names.columns[(i, table.columns.index(column))] if column else "",
                    "typename": "__typename", "forward": self.names.forward, "backward": self.names.backward}[kind]
            key = self.draw(st.one_of(st.none(), st.sampled_from(ALIASES + self.names.fields[i]))) or name
            if key in used or (key == "__typename" and kind != "typename"):
                continue
            used.add(key)
            item = Item(key, kind, column)
            if kind == "forward":
                item.selection = self.selection(self.spec.parent, depth + 1)
            elif kind == "backward":
                item.query = self.list_query(self.spec.child, depth + 1)
            items.append(item)
        return items or [Item(self.names.columns[(i, 0)], "column", table.key)]

    def condition(self, table: Table) -> tuple[Col, str, Any] | None:
        if not self.draw(st.booleans()):
            return None
        column = self.draw(st.sampled_from(table.columns))
        ops = ["eq"] if column.type == "boolean" else ["eq", "gt"]
        values = VALUES[column.type] if column is not table.key else [0, 1, 2, 3]
        return column, self.draw(st.sampled_from(ops)), self.draw(st.sampled_from(values))

    def list_query(self, table: Table, depth: int) -> ListQ:
        order = self.draw(st.lists(st.tuples(st.sampled_from(table.columns), st.sampled_from(list(DIRECTIONS))),
                                   max_size=2, unique_by=lambda o: id(o[0])))
        limit = self.draw(st.one_of(st.none(), st.integers(0, 4)))
        if (order or limit is not None) and table.key not in [c for c, _ in order]:
            order.append((table.key, "ASC"))  # a total order: ties would make the comparison flaky
        return ListQ(table, self.selection(table, depth), self.condition(table), order, limit)

    def query(self) -> Query:
        table = self.draw(st.sampled_from(self.spec.tables))
        kind = self.draw(st.sampled_from(["list", "list", "list", "one", "aggregate"]))
        root_key = self.draw(st.one_of(st.none(), st.sampled_from(ALIASES)))
        i = self.index(table)
        if kind == "list":
            q = Query("list", table, query=self.list_query(table, 1))
            q.root_key = root_key or self.names.lists[i]
        elif kind == "one":
            q = Query("one", table, selection=self.selection(table, 1), key=self.draw(st.integers(0, 5)))
            q.root_key = root_key or self.names.ones[i]
        else:
            keys = self.draw(st.lists(st.sampled_from(ALIASES + ["count", "__typename"]), min_size=1, max_size=3,
                                      unique=True))
            outputs = [(k, "__typename" if k == "__typename" else self.draw(st.sampled_from(["count", "__typename"])))
                       for k in keys]
            q = Query("aggregate", table, where=self.condition(table), outputs=outputs)
            q.root_key = root_key or self.names.aggregates[i]
        return q

    # -- GraphQL text --------------------------------------------------------------------------------------
    def literal(self, column: Col, value: Any) -> str:
        if column.type == "enum":
            return LABEL_VALUES[value]
        if column.type in ("bigint", "numeric"):
            return f'"{value}"'
        if column.type == "boolean":
            return "true" if value else "false"
        if column.type == "text":
            return orjson.dumps(value).decode()
        return str(value)

    def where_text(self, table: Table, where: tuple[Col, str, Any] | None) -> str:
        if where is None:
            return ""
        column, op, value = where
        name = self.names.columns[(self.index(table), table.columns.index(column))]
        return f"where: {{{name}: {{{op}: {self.literal(column, value)}}}}}"

    def list_args(self, q: ListQ) -> str:
        i = self.index(q.table)
        args = [self.where_text(q.table, q.where)]
        if q.order:
            args.append("orderBy: [" + ", ".join(f"{{{self.names.columns[(i, q.table.columns.index(c))]}: {d}}}"
                                                 for c, d in q.order) + "]")
        if q.limit is not None:
            args.append(f"limit: {q.limit}")
        args = [a for a in args if a]
        return f"({', '.join(args)})" if args else ""

    def selection_text(self, table: Table, items: list[Item]) -> str:
        i = self.index(table)
        parts = []
        for item in items:
            if item.kind == "column":
                assert item.column is not None
                name = self.names.columns[(i, table.columns.index(item.column))]
                parts.append(name if item.key == name else f"{item.key}: {name}")
            elif item.kind == "typename":
                parts.append("__typename" if item.key == "__typename" else f"{item.key}: __typename")
            elif item.kind == "forward":
                head = self.names.forward if item.key == self.names.forward else f"{item.key}: {self.names.forward}"
                parts.append(f"{head} {self.selection_text(self.spec.parent, item.selection)}")
            else:
                assert item.query is not None
                name = self.names.backward
                head = name if item.key == name else f"{item.key}: {name}"
                parts.append(f"{head}{self.list_args(item.query)} "
                             f"{self.selection_text(self.spec.child, item.query.selection)}")
        return "{ " + " ".join(parts) + " }"

    def text(self, q: Query) -> str:
        i = self.index(q.table)
        if q.kind == "list":
            assert q.query is not None
            field_name, args, body = self.names.lists[i], self.list_args(q.query), self.selection_text(
                q.table, q.query.selection)
        elif q.kind == "one":
            key_field = self.names.columns[(i, 0)]
            field_name, args, body = self.names.ones[i], f"({key_field}: {q.key})", self.selection_text(
                q.table, q.selection)
        else:
            field_name, args = self.names.aggregates[i], self.where_text(q.table, q.where)
            args = f"({args})" if args else ""
            body = "{ " + " ".join(k if k == w else f"{k}: {w}" for k, w in q.outputs) + " }"
        head = field_name if q.root_key == field_name else f"{q.root_key}: {field_name}"
        return f"{{ {head}{args} {body} }}"


# --- the oracle: plain SQL through psycopg ------------------------------------------------------------------


class Unordered(list[Any]):
    """A list whose order the query leaves unspecified (no orderBy): compared as a multiset."""


class Oracle:
    """The expected answer, from SQL over the tables; ``arrow`` picks the Arrow forms of values."""

    def __init__(self, conn: psycopg.Connection[Any], spec: Spec, names: Names, arrow: bool) -> None:
        self.conn, self.spec, self.names, self.arrow = conn, spec, names, arrow

    def rows(self, table: Table, where: Sequence[tuple[Col, str, Any]], order: Sequence[tuple[Col, str]] = (),
             limit: int | None = None) -> list[dict[str, tuple[Any, str | None]]]:
        """Rows as column name -> (value, its PostgreSQL text form)."""
        cols = sql.SQL(", ").join(sql.SQL("q.{c}, CAST(q.{c} AS text)").format(c=sql.Identifier(c.name))
                                  for c in table.columns)
        query = sql.SQL("SELECT {} FROM {} AS q").format(cols, table.ident)
        params = []
        if where:
            conditions = []
            for column, op, value in where:
                conditions.append(sql.SQL("q.{} {} CAST(%s AS {})").format(
                    sql.Identifier(column.name), sql.SQL({"eq": "=", "gt": ">"}[op]), column.sql_type(self.spec.enum)))
                params.append(value)
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
        if order:
            query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
                sql.SQL("q.{} {}").format(sql.Identifier(c.name), sql.SQL(DIRECTIONS[d])) for c, d in order)
        if limit is not None:
            query += sql.SQL(" LIMIT {}").format(sql.Literal(limit))
        result = []
        for row in self.conn.execute(query, params).fetchall():
            result.append({c.name: (row[2 * k], row[2 * k + 1]) for k, c in enumerate(table.columns)})
        return result

    def leaf(self, column: Col, value: Any, text: str | None) -> Any:
        if value is None or self.arrow:
            return value
        if column.type in ("bigint", "numeric"):
            return text  # BigInt and Decimal travel as PostgreSQL's text
        if column.type == "enum":
            return LABEL_VALUES[value]
        return value

    def project(self, table: Table, items: list[Item], row: dict[str, tuple[Any, str | None]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in items:
            if item.kind == "column":
                assert item.column is not None
                out[item.key] = self.leaf(item.column, *row[item.column.name])
            elif item.kind == "typename":
                out[item.key] = self.names.types[self.spec.tables.index(table)]
            elif item.kind == "forward":
                value = row[self.spec.fk.name][0]
                parents = [] if value is None else self.rows(self.spec.parent, [(self.spec.parent.key, "eq", value)])
                out[item.key] = self.project(self.spec.parent, item.selection, parents[0]) if parents else None
            else:
                assert item.query is not None
                out[item.key] = self.list_rows(item.query, (self.spec.fk, "eq", row[self.spec.parent.key.name][0]))
        return out

    def list_rows(self, q: ListQ, join: tuple[Col, str, Any] | None = None) -> list[Any]:
        where = [w for w in (join, q.where) if w is not None]
        rows = [self.project(q.table, q.selection, r) for r in self.rows(q.table, where, q.order, q.limit)]
        return rows if q.order else Unordered(rows)

    def answer(self, q: Query) -> Any:
        """The JSON plane's value of the root field (the Arrow planes: the rows, see ``as_rows``)."""
        if q.kind == "list":
            assert q.query is not None
            return self.list_rows(q.query)
        if q.kind == "one":
            rows = self.rows(q.table, [(q.table.key, "eq", q.key)])
            return self.project(q.table, q.selection, rows[0]) if rows else None
        count = len(self.rows(q.table, [q.where] if q.where else []))
        type_name = self.names.types[self.spec.tables.index(q.table)] + "Aggregate"
        return {k: count if what == "count" else type_name for k, what in q.outputs}


def as_rows(q: Query, value: Any) -> Any:
    """An Arrow result has rows: a list's items, a by-key row (or none), an aggregate's one row."""
    if q.kind == "list":
        return value
    return [] if value is None else [value]


def canon(value: Any, like: Any) -> Any:
    """A comparable form keeping key order and JSON types; lists the oracle marks Unordered are sorted."""
    if isinstance(value, dict):
        shape = like if isinstance(like, dict) else {}
        return ("object", tuple((k, canon(v, shape.get(k))) for k, v in value.items()))
    if isinstance(value, list):
        template = like[0] if isinstance(like, list) and like else None
        items = [canon(v, template) for v in value]
        if isinstance(like, Unordered):
            items.sort(key=repr)
        return ("list", tuple(items))
    return (type(value).__name__, value)


def same(got: Any, expected: Any, plane: str, text: str) -> None:
    assert canon(got, expected) == canon(expected, expected), (
        f"{plane} differs from SQL for\n{text}\n got: {got!r}\nwant: {expected!r}")


@pytest.mark.parametrize("index", range(SCHEMAS))
@settings(max_examples=QUERIES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_queries_answer_as_plain_sql_on_every_plane(running: list[Running], index: int,
                                                            data: st.DataObject) -> None:
    run = running[index]
    drawer = Drawer(data, run.spec, run.names)
    q = drawer.query()
    text = drawer.text(q)
    with psycopg.connect(run.url) as conn:
        expected_json = Oracle(conn, run.spec, run.names, arrow=False).answer(q)
        expected_arrow = as_rows(q, Oracle(conn, run.spec, run.names, arrow=True).answer(q))
    with httpx.Client(base_url=run.server.url, timeout=60) as client:
        body = orjson.loads(client.post("/graphql", json={"query": text}).content)
        assert "errors" not in body, f"{text}\n{body}"
        assert list(body["data"]) == [q.root_key]
        same(body["data"][q.root_key], expected_json, "the JSON plane", text)

        response = client.post("/graphql", json={"query": text}, headers={"accept": ARROW})
        assert response.status_code == 200, f"{text}\n{response.text}"
        over_http = ipc.open_stream(response.content).read_all()
    ticket = orjson.dumps({"kind": "graphql", "query": text})
    over_flight = run.flight.do_get(flight.Ticket(ticket)).read_all()
    schema = run.flight.get_schema(flight.FlightDescriptor.for_command(ticket)).schema
    assert over_http.schema.equals(schema, check_metadata=True) and over_flight.schema.equals(schema), text
    same(over_http.to_pylist(), expected_arrow, "Arrow over HTTP", text)
    same(over_flight.to_pylist(), expected_arrow, "Arrow Flight", text)
