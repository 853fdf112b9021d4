"""Plan -> SQL returning typed columns, for the Arrow planes.

Top-level columns come back in their own types (ADBC reads them with binary COPY
into Arrow). A few travel as text and are converted by ``arrow/convert.py``:
numeric (to decimal128), uuid, enums (to dictionaries), json. Nested relations and
arrays come back as one line of JSON text per row, ``{"v": ...}`` with every leaf as
text (``_leaf_text``), so that Arrow's native JSON reader turns them into
structs and lists in C++ without a Python loop per row.
"""

from __future__ import annotations

from quiver.plan import nodes
from quiver.schema.model import Column, Entity, Kind
from quiver.sql.expr import (
    Scope,
    aggregate_select,
    from_where,
    join_sql,
    json_row,
    json_rows,
    ref,
    select_items,
    where_sql,
)
from quiver.sql.params import Params

_AS_TEXT = (Kind.NUMERIC, Kind.UUID, Kind.JSON, Kind.ENUM, Kind.OTHER)


def column_typed(column: Column, alias: str) -> str:
    """A top-level column in the form ADBC reads best; arrays as JSON lines (so 2-D arrays are seen)."""
    expr = ref(alias, column)
    kind = column.type.kind
    if column.type.is_array:
        return f"CAST(json_build_object('v', {column_text(column, alias)}) AS text) || E'\\n'"
    if kind in _AS_TEXT or (kind is Kind.TIME and "with time zone" in column.type.scalar_sql):
        return f"CAST({expr} AS text)"
    return expr


def _leaf_text(expr: str, column: Column) -> str:
    """One value as text: dates as days and timestamps/times as microseconds since the epoch, bytea as base64.

    Counts (not PostgreSQL's text) so that BC values and times cast exactly in Arrow; ±infinity
    keeps its text, which ``arrow/convert.py`` refuses by name.
    """
    kind = column.type.kind
    if kind is Kind.BYTEA:
        return f"translate(encode({expr}, 'base64'), E'\\n', '')"
    if kind is Kind.DATE:
        return f"CASE WHEN isfinite({expr}) THEN CAST({expr} - DATE '1970-01-01' AS text) ELSE CAST({expr} AS text) END"
    micros = f"CAST(CAST(extract(epoch FROM {expr}) * 1000000 AS bigint) AS text)"
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        return f"CASE WHEN isfinite({expr}) THEN {micros} ELSE CAST({expr} AS text) END"
    if kind is Kind.TIME and "with time zone" not in column.type.scalar_sql:
        return micros
    return f"CAST({expr} AS text)"


def column_text(column: Column, alias: str) -> str:
    """A nested leaf (or an array): text per value (``_leaf_text``), arrays as text arrays.

    A multi-dimensional array keeps its dimensions (nested JSON arrays), which the Arrow
    JSON reader refuses and ``arrow/convert.py`` reports as unsupported.
    """
    expr = ref(alias, column)
    if not column.type.is_array:
        return _leaf_text(expr, column)
    element = _leaf_text('"quiver e"', column)
    if element == 'CAST("quiver e" AS text)':
        return f"CAST({expr} AS text[])"
    return (f"CASE WHEN {expr} IS NULL THEN NULL WHEN array_ndims({expr}) > 1 THEN CAST({expr} AS text[]) "
            f"ELSE ARRAY(SELECT {element} FROM unnest({expr}) WITH ORDINALITY AS \"quiver u\"(\"quiver e\", "
            f"\"quiver i\") ORDER BY \"quiver i\") END")


def _nested_list(selection: nodes.Selection, entity_alias: str, scope: Scope,
                 cursor_keys: tuple[nodes.OrderKey, ...], entity: Entity) -> str:
    return select_items(selection, entity, entity_alias, cursor_keys, column_text,
                        lambda out: _relation_json(out, entity_alias, scope))


def _relation_json(out: nodes.ObjectOut | nodes.ListOut, alias: str, scope: Scope) -> str:
    inner = scope.alias()
    if isinstance(out, nodes.ObjectOut):
        target = out.relation.target
        columns = _nested_list(out.selection, inner, scope, (), target)
        join = join_sql(out.relation, alias, inner)
        return f"({json_row(f'SELECT {columns} FROM {target.qualified} AS {inner} WHERE {join}')})"
    query = out.query
    columns = _nested_list(query.selection, inner, scope, query.order, query.entity)
    sql = from_where(query, inner, scope, join=(out.relation, alias))
    return f"({json_rows(f'SELECT {columns} {sql}')})"


def select_typed(selection: nodes.Selection, entity: Entity, alias: str, scope: Scope,
                 cursor_keys: tuple[nodes.OrderKey, ...]) -> str:
    # A relation is one NDJSON line per row: the value buffer of a batch is then a JSON-lines document.
    return select_items(selection, entity, alias, cursor_keys, column_typed,
                        lambda out: f"CAST(json_build_object('v', {_relation_json(out, alias, scope)}) AS text)"
                                    " || E'\\n'")


def compile_root(root: nodes.Root, params: Params) -> str:
    """SQL for one query root field whose columns follow ``arrow.types.root_schema``."""
    scope = Scope(params)
    if isinstance(root, nodes.ListRoot):
        alias = scope.alias()
        columns = select_typed(root.query.selection, root.query.entity, alias, scope, root.query.order)
        return f"SELECT {columns} {from_where(root.query, alias, scope)}"
    if isinstance(root, nodes.OneRoot):
        alias = scope.alias()
        columns = select_typed(root.selection, root.entity, alias, scope, ())
        return f"SELECT {columns} FROM {root.entity.qualified} AS {alias} WHERE {where_sql(root.where, alias, scope)}"
    if isinstance(root, nodes.AggregateRoot):
        return aggregate_select(root, scope, "count(*)")
    raise TypeError(f"not a query root: {root!r}")
