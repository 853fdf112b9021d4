"""Plan -> SQL whose rows are JSON text, one row per top-level result row.

PostgreSQL renders each row with ``row_to_json`` over a sub-select whose column
aliases are the GraphQL response keys, so key order, aliases and nulls come out
right and the bytes pass through Quiver untouched. The sub-select's own alias
(``expr.ROW``) is no GraphQL name and is read as a whole row, so no response key
or column name can change what is rendered. Nested relations are
correlated sub-selects inside the same statement (no N+1). Types whose JSON form
would lose precision (int8, numeric) are rendered as strings.

The session settings this relies on (UTC, ISO 8601 intervals) are in SESSION_SETTINGS.
"""

from __future__ import annotations

from dataclasses import dataclass

from quiver.plan import nodes
from quiver.schema.model import Column, Entity, Kind, Relation
from quiver.sql.expr import (
    Scope,
    aggregate_select,
    from_where,
    join_sql,
    json_row,
    json_rows,
    literal,
    ref,
    select_items,
    where_sql,
)
from quiver.sql.params import Params

# Transaction-local settings every JSON statement expects.
SESSION_SETTINGS = (("TimeZone", "UTC"), ("IntervalStyle", "iso_8601"), ("DateStyle", "ISO, YMD"))


@dataclass(frozen=True)
class Statement:
    """One SQL statement; ``shape`` says how its rows form the root value."""

    sql: str
    shape: str  # 'rows' (a JSON array of rows), 'one' (first row or null), 'value' (exactly one row)


def _iso_json(expr: str, sql_type: str) -> str:
    """A date or timestamp as JSON: ISO 8601 with astronomical years before year 1 (1 BC is 0000).

    PostgreSQL writes ``0044-03-15 BC``; ISO 8601 has ``-0043-03-15``. ±infinity stay
    ``"infinity"``/``"-infinity"``. Only BC values take the slow branch.
    """
    text = f"CAST(to_json({expr}) AS text)"
    year = (f"CASE WHEN substr({text}, 2, 4) = '0001' THEN '0000' "
            f"ELSE '-' || lpad(CAST(CAST(substr({text}, 2, 4) AS integer) - 1 AS text), 4, '0') END")
    return (f"CASE WHEN {expr} < CAST('0001-01-01' AS {sql_type}) AND isfinite({expr}) "
            f"THEN CAST('\"' || {year} || substr({text}, 6, length({text}) - 9) || '\"' AS json) "
            f"ELSE to_json({expr}) END")


def _array_json(expr: str, element: str) -> str:
    """An array as a JSON array of ``element`` (an expression over ``"quiver e"``), keeping 2 dimensions."""
    def agg(value: str, dim: int, subscript: str) -> str:
        return (f"(SELECT coalesce(json_agg({value} ORDER BY {subscript}), '[]') "
                f"FROM generate_subscripts({expr}, {dim}) AS {subscript})")

    one = agg(element.replace('"quiver e"', f'{expr}["quiver i"]'), 1, '"quiver i"')
    two = agg(agg(element.replace('"quiver e"', f'{expr}["quiver i"]["quiver j"]'), 2, '"quiver j"'), 1, '"quiver i"')
    return (f"CASE WHEN {expr} IS NULL THEN NULL WHEN array_ndims({expr}) = 2 THEN {two} "
            f"WHEN array_ndims({expr}) = 1 THEN {one} ELSE to_json({expr}) END")


def _element_json(column: Column, value: str) -> str | None:
    """The JSON of one value when ``to_json`` alone is not the documented form (else None)."""
    kind = column.type.kind
    if kind is Kind.BYTEA:
        return f"to_json(translate(encode({value}, 'base64'), E'\\n', ''))"
    if kind in (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        return _iso_json(value, column.type.scalar_sql)
    if kind is Kind.ENUM:
        from quiver.schema.naming import enum_value_names

        renamed = list(enum_value_names(column.type.enum_labels).items())
        if all(label == name for label, name in renamed):
            return None
        cases = " ".join(f"WHEN {literal(label)} THEN {literal(name)}" for label, name in renamed)
        return f"to_json(CASE CAST({value} AS text) {cases} END)"
    return None


def column_json(column: Column, alias: str) -> str:
    """The expression whose row_to_json rendering is the GraphQL value of ``column``."""
    expr = ref(alias, column)
    kind, is_array = column.type.kind, column.type.is_array
    if kind in (Kind.BIGINT, Kind.NUMERIC, Kind.OTHER):
        return f"CAST({expr} AS text{'[]' if is_array else ''})"
    if not is_array:
        return _element_json(column, expr) or expr
    element = _element_json(column, '"quiver e"')
    return expr if element is None else _array_json(expr, element)


def select_list(selection: nodes.Selection, entity: Entity, alias: str, scope: Scope,
                cursor_keys: tuple[nodes.OrderKey, ...]) -> str:
    return select_items(selection, entity, alias, cursor_keys, column_json,
                        lambda out: _relation_json(out, alias, scope))


def _relation_json(out: nodes.ObjectOut | nodes.ListOut, alias: str, scope: Scope) -> str:
    """A nested relation as one JSON value: an object (or null) or an array."""
    if isinstance(out, nodes.ObjectOut):
        inner = scope.alias()
        target = out.relation.target
        columns = select_list(out.selection, target, inner, scope, ())
        join = join_sql(out.relation, alias, inner)
        return f"({json_row(f'SELECT {columns} FROM {target.qualified} AS {inner} WHERE {join}')})"
    return f"({json_rows(list_select(out.query, scope, join=(out.relation, alias)))})"


def list_select(query: nodes.ListQuery, scope: Scope, join: tuple[Relation, str] | None = None) -> str:
    """``SELECT <keys> FROM entity WHERE ... ORDER BY ... LIMIT ...`` (the rows, not yet JSON)."""
    alias = scope.alias()
    columns = select_list(query.selection, query.entity, alias, scope, query.order)
    return f"SELECT {columns} {from_where(query, alias, scope, join)}"


def compile_root(root: nodes.Root, params: Params) -> Statement:
    """SQL for one query root field (lists, by-key, aggregates)."""
    scope = Scope(params)
    if isinstance(root, nodes.ListRoot):
        return Statement(json_row(list_select(root.query, scope), as_text=True), "rows")
    if isinstance(root, nodes.OneRoot):
        alias = scope.alias()
        columns = select_list(root.selection, root.entity, alias, scope, ())
        where = where_sql(root.where, alias, scope)
        sql = f"SELECT {columns} FROM {root.entity.qualified} AS {alias} WHERE {where}"
        return Statement(json_row(sql, as_text=True), "one")
    if isinstance(root, nodes.AggregateRoot):
        return Statement(json_row(aggregate_select(root, scope, "CAST(count(*) AS integer)"), as_text=True), "value")
    raise TypeError(f"not a query root: {root!r}")
