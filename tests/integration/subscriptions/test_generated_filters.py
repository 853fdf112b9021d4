"""Generated subscriptions (hypothesis): random names, types, filters and DML, against plain SQL over the outbox.

One captured table with an odd name (drawn by ``QUIVER_SUBS_SEED``: ``r``, ``order``, ``quiver row``,
...) and odd column names holds a column of each filterable kind (int4, int8, numeric, float8,
text, bool, date, timestamptz, uuid, an enum whose label order is not its text order), with
NULLs, NaN and ±Infinity among the values. Each example opens several subscriptions at once on
one WebSocket, each with a random ``where`` (every operator of every kind, nested and/or/not),
all ``from`` the next ``seq``; then random DML runs in a few transactions: inserts, upserts,
updates of one or many rows, no-op updates, key changes, deletes, TRUNCATE. A final TRUNCATE is
the sentinel: every subscription receives it, and since delivery is in ``seq`` order, anything
missing or extra before it is seen.

The oracle is plain SQL over the outbox rows (``CAST(data ->> 'column' AS type)``, the documented
operator semantics), never Quiver's evaluator; each delivered row is compared, column by column,
with the image's JSON form. ``QUIVER_SUBS_EXAMPLES`` (default 100, ~10 s) raises the count.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from psycopg import sql

from quiver.schema.naming import enum_value_name
from tests.conftest import Server, start_server, stop_server
from tests.integration.subscriptions.conftest import Client
from tests.support.pipeline import Pipeline, nats_url
from tests.support.scratch import comment_names, drop_database, fresh_database

EXAMPLES = int(os.environ.get("QUIVER_SUBS_EXAMPLES", "100"))
SEED = int(os.environ.get("QUIVER_SUBS_SEED", "0"))
ENUM_LABELS = ["zeta", "alpha", "mid"]  # enum order is not text order
ORDERED = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "isNull")
SQL_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE", "ilike": "ILIKE"}
KEYS = 25  # ids 1..KEYS are written; a key change moves a row to id + KEYS


@dataclass(frozen=True)
class Kind:
    """A column type: its SQL, the values stored (SQL text), those a filter compares with, and forms."""

    sql: str
    data: tuple[str, ...]
    filters: tuple[str, ...]
    literal: str = "string"  # how a filter value is written in GraphQL: string, number, bool, enum
    json: str = "to_json({v})"  # the JSON plane's form of the value ``{v}``
    ops: tuple[str, ...] = ORDERED


KINDS: dict[str, Kind] = {
    "int4": Kind("integer", ("-2", "0", "7", "10"), ("-2", "0", "7", "10", "8"), literal="number"),
    "int8": Kind("bigint", ("9007199254740993", "-1", "10"), ("9007199254740993", "-1", "10", "9"),
                 json="to_json(CAST({v} AS text))"),
    "numeric": Kind("numeric", ("1.50", "-3", "10", "9.25", "NaN"), ("1.5", "-3", "10", "9.250"),
                    json="to_json(CAST({v} AS text))"),
    "float8": Kind("double precision", ("0.5", "-1.25", "10", "Infinity", "-Infinity", "NaN"),
                   ("0.5", "-1.25", "10", "3"), literal="number"),
    "text": Kind("text", ("b", "B", "é", "10", "9", "a%b"), ("b", "B", "é", "10", "9", "a%b", "a"),
                 ops=(*ORDERED, "like", "ilike")),
    "bool": Kind("boolean", ("true", "false"), ("true", "false"), literal="bool", ops=("eq", "neq", "isNull")),
    "date": Kind("date", ("2024-01-01", "0001-01-01", "1999-12-31", "infinity"),
                 ("2024-01-01", "0001-01-01", "1999-12-31", "2000-06-01")),
    "timestamptz": Kind("timestamptz", ("2024-05-01T10:00:00+00:00", "1969-12-31T23:59:59+00:00",
                                        "2024-05-01T10:00:00.5+02:00", "-infinity"),
                        ("2024-05-01T10:00:00+00:00", "1969-12-31T23:59:59+00:00", "2024-05-01T08:00:00.5+00:00")),
    "uuid": Kind("uuid", ("00000000-0000-0000-0000-00000000000a", "ffffffff-0000-0000-0000-000000000000"),
                 ("00000000-0000-0000-0000-00000000000a", "ffffffff-0000-0000-0000-000000000000",
                  "10000000-0000-0000-0000-000000000000")),
    "enum": Kind("quiver_mood", tuple(ENUM_LABELS), tuple(ENUM_LABELS), literal="enum"),
}
LIKE_PATTERNS = ("b%", "%", "_", "a\\%b", "%0", "B")
TABLE_NAMES = ["r", "order", "quiver row", "select", "Mixed_Case", "t1", "events"]
COLUMN_PREFIXES = ["", "x ", "Col", "t1_", "order_", "data_"]


@dataclass
class Setup:
    url: str
    table: str
    columns: dict[str, str]  # kind -> column name
    fields: dict[str, str]  # column name (and "id") -> GraphQL field
    root: str  # the subscription field
    server: Server
    pipeline: Pipeline

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier("public", self.table)

    @property
    def ws_url(self) -> str:
        return self.server.url.replace("http://", "ws://") + "/graphql"


INTROSPECTION = """{ __schema { subscriptionType { fields { name type { name ofType { name ofType { name } } } } }
  types { name description fields { name description } } } }"""


def _named(t: dict[str, Any] | None) -> str | None:
    while t is not None and t["name"] is None:
        t = t.get("ofType")
    return None if t is None else str(t["name"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    rng = random.Random(f"subscriptions-{SEED}")
    table = rng.choice(TABLE_NAMES)
    prefix = rng.choice(COLUMN_PREFIXES)
    columns = {k: f"{prefix}{k}" for k in KINDS}
    db = f"quiver_subs_gen_{os.getpid()}"
    url = fresh_database(db)
    ident = sql.Identifier("public", table)
    with psycopg.connect(url) as conn:
        labels = sql.SQL(", ").join(sql.Literal(label) for label in ENUM_LABELS)
        conn.execute(sql.SQL("CREATE TYPE quiver_mood AS ENUM ({})").format(labels))
        defs = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(KINDS[k].sql))
                                  for k, n in columns.items())
        conn.execute(sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, {})").format(ident, defs))
        comment_names(conn, ident, table, ["id", *columns.values()])
    namespace = f"subgen{time.monotonic_ns() % 10**12}"
    pipeline = Pipeline(url, Path(tmp_path_factory.mktemp("subgen")), namespace, sinks=())
    server = None
    try:
        pipeline.cli("install")
        pipeline.start("relay")
        server = start_server(url, QUIVER_NATS_URL=nats_url(), QUIVER_EVENTS_NAMESPACE=namespace)
        with server.client() as client:
            schema = orjson.loads(client.post("/graphql", json={"query": INTROSPECTION}).content)["data"]["__schema"]
        type_ = next(t for t in schema["types"] if t["description"] == f"table {table}")
        fields = {f["description"][7:]: f["name"] for f in type_["fields"]
                  if (f["description"] or "").startswith("column ")}
        root = next(f["name"] for f in schema["subscriptionType"]["fields"] if _named(f["type"]) == type_["name"])
        yield Setup(url, table, columns, fields, root, server, pipeline)
    finally:
        if server is not None:
            stop_server(server)
        pipeline.stop_all()
        drop_database(db)


# --- filters: a tree, written as GraphQL and as plain SQL over the outbox row ``o`` -------------------------

Cond = tuple[Any, ...]  # ("col", kind, op, value) | ("and", [Cond]) | ("or", [Cond]) | ("not", Cond)


def _leaf() -> st.SearchStrategy[Cond]:
    def for_kind(k: str) -> st.SearchStrategy[Cond]:
        kind = KINDS[k]
        ops = st.sampled_from(kind.ops)

        def value(op: str) -> st.SearchStrategy[Any]:
            if op == "isNull":
                return st.booleans()
            if op in ("in", "nin"):
                return st.lists(st.sampled_from(kind.filters), max_size=3)
            if op in ("like", "ilike"):
                return st.sampled_from(LIKE_PATTERNS)
            return st.sampled_from(kind.filters)

        return ops.flatmap(lambda op: value(op).map(lambda v: ("col", k, op, v)))

    return st.sampled_from(sorted(KINDS)).flatmap(for_kind)


CONDS: st.SearchStrategy[Cond] = st.recursive(
    _leaf(),
    lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=3).map(lambda c: ("and", c)),
                            st.lists(inner, min_size=1, max_size=3).map(lambda c: ("or", c)),
                            inner.map(lambda c: ("not", c))),
    max_leaves=4)


def _gql_value(kind: Kind, value: str) -> str:
    if kind.literal in ("number", "bool"):
        return value
    if kind.literal == "enum":
        return enum_value_name(value)
    return json.dumps(value, ensure_ascii=False)


def to_graphql(cond: Cond, s: Setup) -> str:
    tag = cond[0]
    if tag == "col":
        _, k, op, value = cond
        kind = KINDS[k]
        if op == "isNull":
            literal = "true" if value else "false"
        elif op in ("in", "nin"):
            literal = "[" + ", ".join(_gql_value(kind, v) for v in value) + "]"
        elif op in ("like", "ilike"):
            literal = json.dumps(value)
        else:
            literal = _gql_value(kind, value)
        return f"{{{s.fields[s.columns[k]]}: {{{op}: {literal}}}}}"
    if tag == "not":
        return f"{{not: {to_graphql(cond[1], s)}}}"
    return f"{{{tag}: [{', '.join(to_graphql(c, s) for c in cond[1])}]}}"


def to_sql(cond: Cond, s: Setup) -> sql.Composable:
    """The documented meaning: SQL comparisons (NULL never matches, ``nin`` neither), and/or/not as in SQL."""
    tag = cond[0]
    if tag == "col":
        _, k, op, value = cond
        kind = KINDS[k]
        column = sql.SQL("CAST(o.data ->> {} AS {})").format(sql.Literal(s.columns[k]), sql.SQL(kind.sql))
        if op == "isNull":
            return sql.SQL("({} IS NULL)" if value else "({} IS NOT NULL)").format(column)
        if op in ("in", "nin"):
            items = sql.SQL("CAST({} AS {}[])").format(sql.Literal(list(value)), sql.SQL(kind.sql))
            form = "({c} = ANY({a}))" if op == "in" else "({c} IS NOT NULL AND NOT ({c} = ANY({a})))"
            return sql.SQL(form).format(c=column, a=items)
        right = sql.Literal(value) if op in ("like", "ilike") else sql.SQL("CAST({} AS {})").format(
            sql.Literal(value), sql.SQL(kind.sql))
        return sql.SQL("({} {} {})").format(column, sql.SQL(SQL_OPS[op]), right)
    if tag == "not":
        return sql.SQL("(NOT {})").format(to_sql(cond[1], s))
    joiner = sql.SQL(" AND " if tag == "and" else " OR ")
    return sql.SQL("({})").format(joiner.join(to_sql(c, s) for c in cond[1]))


# --- writes -------------------------------------------------------------------------------------------------


def _value(rng: random.Random, k: str) -> sql.Composable:
    if rng.random() < 0.2:
        return sql.SQL("NULL")
    return sql.SQL("CAST({} AS {})").format(sql.Literal(rng.choice(KINDS[k].data)), sql.SQL(KINDS[k].sql))


def random_writes(s: Setup, seed: int, count: int) -> list[sql.Composed]:
    """Random DML (ids 1..KEYS, key changes to id + KEYS): the kinds that broke capture before."""
    rng = random.Random(seed)
    out: list[sql.Composed] = []
    for _ in range(count):
        key, k = rng.randint(1, KEYS), rng.choice(sorted(KINDS))
        column = sql.Identifier(s.columns[k])
        choice = rng.choice(["insert", "upsert", "update", "many", "noop", "key", "delete", "truncate"])
        if choice == "truncate" and rng.random() < 0.6:
            choice = "update"  # a TRUNCATE empties the table: rarer than the rest
        if choice in ("insert", "upsert"):
            names = sql.SQL(", ").join(sql.Identifier(n) for n in s.columns.values())
            values = sql.SQL(", ").join(_value(rng, kk) for kk in s.columns)
            conflict = (sql.SQL("DO NOTHING") if choice == "insert" else
                        sql.SQL("DO UPDATE SET {c} = excluded.{c}").format(c=column))
            out.append(sql.SQL("INSERT INTO {} (id, {}) VALUES ({}, {}) ON CONFLICT (id) {}").format(
                s.ident, names, sql.Literal(key), values, conflict))
        elif choice == "update":
            out.append(sql.SQL("UPDATE {} SET {} = {} WHERE id = {}").format(s.ident, column, _value(rng, k),
                                                                           sql.Literal(key)))
        elif choice == "many":
            out.append(sql.SQL("UPDATE {} SET {} = {} WHERE id % 3 = {}").format(
                s.ident, column, _value(rng, k), sql.Literal(key % 3)))
        elif choice == "noop":
            out.append(sql.SQL("UPDATE {} SET {c} = {c} WHERE id = {}").format(s.ident, sql.Literal(key), c=column))
        elif choice == "key":
            out.append(sql.SQL("UPDATE {t} SET id = id + {n} WHERE id = {k} AND NOT EXISTS "
                               "(SELECT FROM {t} WHERE id = {k} + {n})").format(
                t=s.ident, n=sql.Literal(KEYS), k=sql.Literal(key)))
        elif choice == "delete":
            out.append(sql.SQL("DELETE FROM {} WHERE id = {}").format(s.ident, sql.Literal(key)))
        else:
            out.append(sql.SQL("TRUNCATE {}").format(s.ident))
    return out


# --- the oracle ---------------------------------------------------------------------------------------------


def expected(conn: psycopg.Connection[Any], s: Setup, cond: Cond | None, start: int,
             sentinel: int) -> list[tuple[int, str, dict[str, Any] | None]]:
    """(seq, op, row as the JSON plane writes it) of every change the subscription must receive."""
    forms = [sql.SQL("{}, {}").format(sql.Literal(s.fields[n]), sql.SQL(KINDS[k].json).format(
        v=sql.SQL("CAST(o.data ->> {} AS {})").format(sql.Literal(n), sql.SQL(KINDS[k].sql))))
        for k, n in s.columns.items()]
    row = sql.SQL("json_build_object({}, CAST(o.data ->> 'id' AS integer), {})").format(
        sql.Literal(s.fields["id"]), sql.SQL(", ").join(forms))
    condition = sql.SQL("TRUE") if cond is None else to_sql(cond, s)
    query = sql.SQL("SELECT o.seq, o.op, CASE WHEN o.op <> 'truncate' THEN {row} END FROM quiver.outbox AS o "
                    "WHERE o.entity = {entity} AND o.seq BETWEEN {start} AND {sentinel} "
                    "AND (o.op = 'truncate' OR {cond}) ORDER BY o.seq").format(
        row=row, entity=sql.Literal(s.table), start=sql.Literal(start), sentinel=sql.Literal(sentinel),
        cond=condition)
    return [(int(seq), str(op), data) for seq, op, data in conn.execute(query).fetchall()]


def received(messages: list[dict[str, Any]], root: str) -> list[tuple[int, str, dict[str, Any] | None]]:
    out = []
    for m in messages:
        extensions = m["payload"]["extensions"]
        out.append((int(extensions["seq"]), str(extensions["op"]), m["payload"]["data"][root]))
    return out


async def collect(s: Setup, queries: list[str], write: Any) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Subscribe every query on one connection, run ``write`` (returns the sentinel's seq), and read each
    subscription's messages up to and including the sentinel."""
    client = await Client.connect(s.ws_url)
    try:
        for n, query in enumerate(queries):
            await client.subscribe(str(n), query)
        sentinel = await asyncio.to_thread(write)
        got: dict[str, list[dict[str, Any]]] = {str(n): [] for n in range(len(queries))}
        done: set[str] = set()
        deadline = time.monotonic() + 60
        while len(done) < len(queries):
            message = await client.receive(max(deadline - time.monotonic(), 0.01))
            assert message["type"] == "next", message
            got[message["id"]].append(message)
            if int(message["payload"]["extensions"]["seq"]) >= sentinel:
                done.add(message["id"])
        return got, sentinel
    finally:
        await client.close()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(conds=st.lists(st.one_of(st.none(), CONDS), min_size=1, max_size=4),
       seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=3), writes=st.integers(1, 12))
def test_subscriptions_deliver_what_plain_sql_selects(setup: Setup, conds: list[Cond | None], seeds: list[int],
                                                      writes: int) -> None:
    s = setup
    fields = " ".join(s.fields[n] for n in ["id", *s.columns.values()])
    with psycopg.connect(s.url, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM quiver.outbox").fetchone()
        assert row is not None
        start = int(row[0])
        queries = []
        for cond in conds:
            where = "" if cond is None else f"where: {to_graphql(cond, s)}, "
            queries.append(f'subscription {{ {s.root}({where}from: {{seq: "{start}"}}) {{ {fields} }} }}')
            note(queries[-1])

        def write() -> int:
            for seed in seeds:
                with psycopg.connect(s.url) as tx:
                    for statement in random_writes(s, seed, writes):
                        tx.execute(statement)
            conn.execute(sql.SQL("TRUNCATE {}").format(s.ident))
            last = conn.execute("SELECT max(seq) FROM quiver.outbox").fetchone()
            assert last is not None
            return int(last[0])

        got, sentinel = asyncio.run(collect(s, queries, write))
        conn.execute("SET TimeZone = 'UTC'")
        for n, cond in enumerate(conds):
            want = expected(conn, s, cond, start, sentinel)
            assert want[-1][:2] == (sentinel, "truncate")
            rows = sum(1 for _, op, _ in want if op != "truncate")
            event("a filter" if cond is not None else "no filter")
            event(f"rows delivered: {'0' if rows == 0 else '1-5' if rows <= 5 else '6+'}")
            if cond is not None and rows < sum(1 for _, op, _ in expected(conn, s, None, start, sentinel)
                                               if op != "truncate"):
                event("a filter that dropped some")
            assert received(got[str(n)], s.root) == want, f"subscription {n}: {queries[n]}"
