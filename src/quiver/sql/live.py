"""Plan -> DuckDB SQL over a live dataset's table: the third compiler, beside the JSON and typed ones.

A live table holds an entity's columns under their field names, in the Arrow plane's types
(``arrow/types.py``; enums as their label text). This compiler answers what it can answer
with exactly PostgreSQL's meaning and refuses the rest with ``NotLive`` (the request then
goes to PostgreSQL): comparisons whose semantics differ between the engines are refused by
type, not approximated.

* Same in both: integers, floats (NaN sorts above +Infinity and equals itself in both),
  ``numeric(p, s)`` as decimals, booleans, dates, times, timestamps, UUIDs (canonical text,
  whose order is the bytes'), bytea (bytewise), and text equality and ``like``
  (deterministic collations compare bytes for equality).
* Text order (``gt``, ``lt``, ``orderBy``) only when the column's collation orders by code
  point (``C``, ``POSIX``, ``C.UTF-8``, ``ucs_basic``): DuckDB compares bytes, which is UTF-8's
  code point order.
* Refused: ``ilike`` (case folding follows the collation), enum order (label order, not
  text), intervals, JSON, bytea, arrays, unconstrained numerics (text), time with time zone
  and other text forms, relation filters and nested selections, keyset cursors.

Filters keep SQL's three-valued logic term for term (``nin`` as ``x IS NOT NULL AND NOT (x IN
...)``, as ``sql/expr.py`` writes it), so ``not`` means the same in both engines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quiver.plan import nodes
from quiver.schema.model import Column, Kind

_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE"}
_EQUALITY = ("eq", "neq", "in", "nin")
_ORDERED = (*_EQUALITY, "gt", "gte", "lt", "lte")
_DUCK_TYPES = {"smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT", "real": "FLOAT",
               "double precision": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE", "uuid": "UUID",
               "time without time zone": "TIME", "timestamp without time zone": "TIMESTAMP",
               "timestamp with time zone": "TIMESTAMPTZ", "bytea": "BLOB"}


class NotLive(Exception):
    """The live engine cannot answer this with PostgreSQL's meaning (the reason says why)."""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class LiveTable:
    """What the compiler knows of one live table: its name and which text columns order by code point."""

    name: str
    binary_text: frozenset[str] = frozenset()  # column names whose collation orders by code point

    def ops(self, column: Column) -> tuple[str, ...]:
        """The comparison operators answered with PostgreSQL's meaning on ``column``."""
        kind, pg = column.type.kind, column.type
        if pg.is_array:
            return ()
        if kind is Kind.TEXT:
            return (*_ORDERED, "like") if column.name in self.binary_text else (*_EQUALITY, "like")
        if kind is Kind.NUMERIC:
            return _ORDERED if pg.numeric_precision and 0 < pg.numeric_precision <= 38 else ()
        if kind in (Kind.BOOL, Kind.BYTEA):
            return ("eq", "neq")
        if kind is Kind.ENUM:
            return _EQUALITY
        if kind in (Kind.INT, Kind.BIGINT, Kind.FLOAT, Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.UUID):
            return _ORDERED
        if kind is Kind.TIME and "with time zone" not in pg.scalar_sql:
            return _ORDERED
        return ()

    def orderable(self, column: Column) -> bool:
        """Booleans (false first) and bytea (bytewise, a prefix first) sort alike in both, beyond their filters."""
        if not column.type.is_array and column.type.kind in (Kind.BOOL, Kind.BYTEA):
            return True
        return "gt" in self.ops(column)


def _value_type(column: Column) -> str:
    """The DuckDB type a filter value is cast to before it meets the column."""
    pg = column.type
    if pg.kind is Kind.NUMERIC:
        return f"DECIMAL({pg.numeric_precision}, {pg.numeric_scale or 0})"
    return _DUCK_TYPES.get(pg.scalar_sql, "VARCHAR")


@dataclass
class _Compiler:
    table: LiveTable
    params: list[Any] = field(default_factory=list)

    def value(self, value: Any, column: Column) -> str:
        self.params.append(None if value is None else _param(value))
        if column.type.kind is Kind.UUID:  # the stored canonical text
            return "CAST(CAST(? AS UUID) AS VARCHAR)"
        return f"CAST(? AS {_value_type(column)})"

    def values(self, values: list[Any], column: Column) -> str:
        self.params.append([None if v is None else _param(v) for v in values])
        if column.type.kind is Kind.UUID:
            return "CAST(CAST(? AS UUID[]) AS VARCHAR[])"
        return f"CAST(? AS {_value_type(column)}[])"

    def where(self, f: nodes.Filter) -> str:
        if isinstance(f, nodes.Compare):
            return self.compare(f)
        if isinstance(f, nodes.IsNull):
            return f"({quote(f.column.field_name)} IS {'' if f.is_null else 'NOT '}NULL)"
        if isinstance(f, nodes.And):
            return "(" + " AND ".join(self.where(i) for i in f.items) + ")" if f.items else "TRUE"
        if isinstance(f, nodes.Or):
            return "(" + " OR ".join(self.where(i) for i in f.items) + ")" if f.items else "FALSE"
        if isinstance(f, nodes.Not):
            return f"(NOT {self.where(f.item)})"
        raise NotLive("a filter on a related table")

    def compare(self, f: nodes.Compare) -> str:
        column = f.column
        if f.op not in self.table.ops(column):
            raise NotLive(f"`{f.op}` on {column.name} ({column.type.scalar_sql}) has no equal meaning in DuckDB")
        left = quote(column.field_name)
        if column.type.kind is Kind.ENUM:  # stored as a DuckDB ENUM: compared as its label text
            left = f"CAST({left} AS VARCHAR)"
        if f.op in ("in", "nin"):
            contains = f"(CASE WHEN {left} IS NULL THEN NULL ELSE list_contains({self.values(f.value, column)}, " \
                       f"{left}) END)"
            return contains if f.op == "in" else f"({left} IS NOT NULL AND NOT {contains})"
        if f.op == "like":
            return f"({left} LIKE {self.value(f.value, column)} ESCAPE '\\')"
        return f"({left} {_OPS[f.op]} {self.value(f.value, column)})"

    def select(self, selection: nodes.Selection) -> str:
        items = []
        for out in selection:
            if isinstance(out, nodes.ScalarOut):
                items.append(f"{quote(out.column.field_name)} AS {quote(out.key)}")
            elif isinstance(out, nodes.TypenameOut):
                items.append(f"{literal(out.type_name)} AS {quote(out.key)}")
            else:
                raise NotLive("a cursor or a nested selection")
        if not items:
            raise NotLive("an empty selection")
        return ", ".join(items)

    def order(self, order: tuple[nodes.OrderKey, ...]) -> str:
        for key in order:
            if not self.table.orderable(key.column):
                raise NotLive(f"ordering by {key.column.name} ({key.column.type.scalar_sql}) differs in DuckDB")
        if not order:
            return ""
        return " ORDER BY " + ", ".join(f"{quote(k.column.field_name)} {k.direction} NULLS {k.nulls}" for k in order)


def _param(value: Any) -> Any:
    """Values travel as PostgreSQL's text forms (``sql/params.py``), cast in SQL; booleans and numbers as is."""
    if isinstance(value, bool | int | float | bytes):
        return value
    return str(value)


def compile_live(root: nodes.Root, table: LiveTable) -> tuple[str, list[Any]]:
    """DuckDB SQL (``?`` placeholders) and its parameters for one query root; ``NotLive`` when refused."""
    c = _Compiler(table)
    source = f"FROM {quote(table.name)}"
    if isinstance(root, nodes.ListRoot):
        q = root.query
        if q.after is not None:
            raise NotLive("a keyset cursor")
        columns = c.select(q.selection)
        where = f" WHERE {c.where(q.where)}" if q.where is not None else ""
        order = c.order(q.order)
        if not order and q.offset:  # pages without an order: the table's own order, stable while it is unchanged
            order = " ORDER BY rowid"
        sql = f"SELECT {columns} {source}{where}{order}"
        if q.limit is not None:
            sql += f" LIMIT {int(q.limit)}"
        if q.offset:
            sql += f" OFFSET {int(q.offset)}"
        return sql, c.params
    if isinstance(root, nodes.OneRoot):
        columns = c.select(root.selection)
        return f"SELECT {columns} {source} WHERE {c.where(root.where)}", c.params
    if isinstance(root, nodes.AggregateRoot):
        where = f" WHERE {c.where(root.where)}" if root.where is not None else ""
        counted = f"(SELECT count(*) AS n {source}{where}) AS counted"
        items = []
        for key, what in root.fields:
            if what == "count":
                items.append(f"counted.n AS {quote(key)}")
            else:
                items.append(f"{literal(root.entity.type_name + 'Aggregate')} AS {quote(key)}")
        return f"SELECT {', '.join(items)} FROM {counted}", c.params
    raise NotLive(f"{type(root).__name__} roots")


def binary_collation(collations: Mapping[str, str]) -> frozenset[str]:
    """The columns (of ``{column: collation name}``) whose text order is code point order."""
    binary = {"c", "posix", "c.utf-8", "c.utf8", "ucs_basic", "pg_c_utf8"}
    return frozenset(name for name, collation in collations.items() if collation.lower() in binary)
