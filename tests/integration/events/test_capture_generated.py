"""Capture on tables nobody here wrote: generated names, types, keys, DML and DDL (hypothesis).

Each example creates a table with random column names (one-letter names, SQL keywords,
the trigger's own aliases, quoted mixed case), random types and a random key shape
(single or composite; int, text or uuid), and an uncaptured twin of it. It runs one random
sequence of statements on both: inserts, updates of values and of keys, deletes, TRUNCATE,
column renames, adds, drops and type changes, some inside a transaction that is rolled
back. It asserts:

* capture never makes a valid statement fail: each statement succeeds on the captured table
  exactly when it succeeds on the twin;
* nothing is lost: the fold of the entity's outbox events equals the table, row for row.

Half the examples create the table after ``install`` (captured by the event trigger).
``QUIVER_CAPTURE_EXAMPLES`` raises the example count for a longer run (``make fuzz``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from quiver.events import capture
from tests.conftest import admin_url, database_url
from tests.support.fold import fold, outbox_events, table_rows

EXAMPLES = int(os.environ.get("QUIVER_CAPTURE_EXAMPLES", "30"))
HOSTILE_NAMES = ["n", "o", "t", "x", "d", "k", "e", "c", "r", "j", "v", "key", "value", "changed", "new_rows",
                 "old_rows", "select", "from", "order", "user", "table", "quiver_key", "quiver_entity", "entity_id",
                 "Mixed Case", "a-b", "ü", "Id", "ID", "data", "op", "seq"]
KEY_TYPES = ["integer", "text", "uuid"]
VALUE_TYPES = ["integer", "bigint", "text", "numeric", "boolean", "timestamptz", "jsonb", "integer[]", "date"]


@dataclass
class Table:
    name: str
    key_columns: list[tuple[str, str]]
    value_columns: list[tuple[str, str]]
    next_id: int = 1
    renames: int = field(default=0)

    def columns(self) -> list[tuple[str, str]]:
        return self.key_columns + self.value_columns


def value_for(column_type: str, i: int) -> Any:
    if column_type in ("integer", "bigint"):
        return i * 7 - 3
    if column_type == "text":
        return f"v'{i}\\\"ü"
    if column_type == "uuid":
        return uuid.UUID(int=i)
    if column_type == "numeric":
        return f"{i}.{i % 10}0"
    if column_type == "boolean":
        return i % 2 == 0
    if column_type == "timestamptz":
        return f"2024-01-{1 + i % 28:02d} 10:00:00+00"
    if column_type == "jsonb":
        return Jsonb({"i": i, "s": [1, "x"]})
    if column_type == "integer[]":
        return [i, None, -i]
    if column_type == "date":
        return f"2020-02-{1 + i % 28:02d}"
    raise AssertionError(column_type)


def key_value(column_type: str, i: int) -> Any:
    return {"integer": i, "text": f"k{i}", "uuid": uuid.UUID(int=i)}[column_type]


@st.composite
def tables(draw: st.DrawFn) -> Table:
    names = draw(st.lists(st.sampled_from(HOSTILE_NAMES), min_size=3, max_size=7, unique=True))
    composite = draw(st.booleans())
    keys = names[:2] if composite else names[:1]
    values = names[len(keys):]
    return Table(
        name=draw(st.sampled_from(["t", "order", "Mixed Table", "new_rows", "n"])),
        key_columns=[(k, draw(st.sampled_from(KEY_TYPES))) for k in keys],
        value_columns=[(v, draw(st.sampled_from(VALUE_TYPES))) for v in values],
    )


OPS = st.sampled_from(["insert", "insert_many", "update_value", "update_key", "delete", "truncate", "rename",
                       "add_column", "drop_column", "retype", "rollback", "noop_update"])


def ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


class Twin:
    """The same statement on the captured table and on its uncaptured twin."""

    def __init__(self, conn: psycopg.Connection[Any], table: Table) -> None:
        self.conn = conn
        self.table = table

    def both(self, template: str, params: tuple[Any, ...] | list[Any] = ()) -> None:
        outcomes: list[str | None] = []
        for name in (self.table.name, self.table.name + "_twin"):
            query = sql.SQL(template).format(tbl=ident(name))
            try:
                with self.conn.transaction():
                    self.conn.execute(query, params)
                outcomes.append(None)
            except psycopg.Error as error:
                message = (error.diag.message_primary or "").replace(f'"{name}"', '"<table>"')
                outcomes.append(f"{type(error).__name__}: {message}")
        assert outcomes[0] == outcomes[1], f"capture changed the outcome of {template!r}: {outcomes}"


def insert(twin: Twin, table: Table, count: int) -> None:
    columns = table.columns()
    rows = []
    for _ in range(count):
        i = table.next_id
        table.next_id += 1
        rows.append([key_value(t, i) for _, t in table.key_columns] + [value_for(t, i) for _, t in table.value_columns])
    names = sql.SQL(", ").join(ident(c) for c, _ in columns)
    row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    template = sql.SQL("INSERT INTO {{tbl}} ({}) VALUES {}").format(names, sql.SQL(", ").join([row] * count))
    twin.both(template.as_string(twin.conn), [v for r in rows for v in r])


def run_op(twin: Twin, table: Table, op: str, pick: int) -> None:
    keys = table.key_columns
    if op == "insert":
        insert(twin, table, 1)
    elif op == "insert_many":
        insert(twin, table, 3)
    elif op == "update_value" and table.value_columns:
        column, column_type = table.value_columns[pick % len(table.value_columns)]
        twin.both(sql.SQL("UPDATE {{tbl}} SET {} = %s").format(ident(column)).as_string(twin.conn),
                  (value_for(column_type, pick + 100),))
    elif op == "update_key":
        column, column_type = keys[pick % len(keys)]
        change = {"integer": "{c} + 1000", "text": "{c} || 'x'", "uuid": "gen_random_uuid()"}[column_type]
        twin.both(sql.SQL("UPDATE {{tbl}} SET {c} = " + change).format(c=ident(column)).as_string(twin.conn))
    elif op == "noop_update":
        column, _ = keys[0]
        twin.both(sql.SQL("UPDATE {{tbl}} SET {c} = {c}").format(c=ident(column)).as_string(twin.conn))
    elif op == "delete":
        column, _ = keys[0]
        twin.both(sql.SQL("DELETE FROM {{tbl}} WHERE ctid IN (SELECT ctid FROM {{tbl}} ORDER BY {} LIMIT 1)")
                  .format(ident(column)).as_string(twin.conn))
    elif op == "truncate":
        twin.both("TRUNCATE {tbl}")
    elif op == "rename":
        columns = table.columns()
        index = pick % len(columns)
        old, column_type = columns[index]
        table.renames += 1
        new = f"{old} renamed{table.renames}"
        twin.both(sql.SQL("ALTER TABLE {{tbl}} RENAME COLUMN {} TO {}").format(ident(old), ident(new))
                  .as_string(twin.conn))
        target = table.key_columns if index < len(keys) else table.value_columns
        position = index if index < len(keys) else index - len(keys)
        target[position] = (new, column_type)
    elif op == "add_column":
        table.renames += 1
        name = f"added {table.renames}"
        twin.both(sql.SQL("ALTER TABLE {{tbl}} ADD COLUMN {} integer DEFAULT 5").format(ident(name))
                  .as_string(twin.conn))
        table.value_columns.append((name, "integer"))
    elif op == "drop_column" and table.value_columns:
        name, _ = table.value_columns.pop(pick % len(table.value_columns))
        twin.both(sql.SQL("ALTER TABLE {{tbl}} DROP COLUMN {}").format(ident(name)).as_string(twin.conn))
    elif op == "retype" and table.value_columns:
        index = pick % len(table.value_columns)
        name, column_type = table.value_columns[index]
        twin.both(sql.SQL("ALTER TABLE {{tbl}} ALTER COLUMN {c} TYPE text USING {c}::text").format(c=ident(name))
                  .as_string(twin.conn))
        table.value_columns[index] = (name, "text")
    elif op == "rollback":
        before = table.next_id
        with pytest.raises(_RolledBack), twin.conn.transaction():
            insert(twin, table, 2)
            raise _RolledBack
        table.next_id = before + 2  # ids stay unused: the rows never existed


class _RolledBack(Exception):
    pass


@pytest.fixture(scope="module")
def capture_db() -> Iterator[str]:
    name = f"quiver_capture_gen_{os.getpid()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        capture.install(conn, [], schemas=["public"])
    yield url
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create(conn: psycopg.Connection[Any], table: Table, name: str) -> None:
    columns = [sql.SQL("{} {}").format(ident(c), sql.SQL(t)) for c, t in table.columns()]
    key = sql.SQL(", ").join(ident(c) for c, _ in table.key_columns)
    conn.execute(sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
        ident(name), sql.SQL(", ").join(columns), key))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
@given(table=tables(), ops=st.lists(st.tuples(OPS, st.integers(0, 50)), min_size=1, max_size=14),
       after_install=st.booleans())
def test_capture_never_fails_a_write_and_loses_nothing(capture_db: str, table: Table, ops: list[tuple[str, int]],
                                                        after_install: bool) -> None:
    with psycopg.connect(capture_db, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
        conn.execute("DELETE FROM quiver.outbox")
        conn.execute("DELETE FROM quiver.captured_schemas")
        if after_install:
            conn.execute("INSERT INTO quiver.captured_schemas VALUES ('public')")
        create(conn, table, table.name)
        create(conn, table, table.name + "_twin")
        if after_install:
            conn.execute("DELETE FROM quiver.captured_schemas")  # the twin was captured too: undo that
            conn.execute(sql.SQL("SELECT quiver.detach({}::regclass)").format(
                sql.Literal(sql.Identifier(table.name + "_twin").as_string(conn))))
        else:
            conn.execute("SELECT quiver.attach(%s::regclass)", (sql.Identifier(table.name).as_string(conn),))
        coverage = {t.table: t.captured for t in capture.coverage(conn, ["public"])}
        assert coverage == {table.name: True, table.name + "_twin": False}
        twin = Twin(conn, table)
        for op, pick in ops:
            run_op(twin, table, op, pick)
        assert fold(outbox_events(conn, table.name)) == table_rows(conn, "public", table.name)
        assert not outbox_events(conn, table.name + "_twin")
