"""Plan -> SQL returning typed columns, for the Arrow planes.

Top-level columns come back in their own types (ADBC reads them with binary COPY
into Arrow). A few travel as text and are converted by ``arrow/convert.py``:
numeric (to decimal128), uuid, enums (to dictionaries), json. Nested relations
come back as one line of JSON text per row, ``{"v": ...}`` with every leaf as
PostgreSQL's text form, so that Arrow's native JSON reader turns them into
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
    """A top-level column in the form ADBC reads best."""
    expr = ref(alias, column)
    kind = column.type.kind
    if kind in _AS_TEXT or (kind is Kind.TIME and "with time zone" in column.type.scalar_sql):
        return f"CAST({expr} AS text{'[]' if column.type.is_array else ''})"
    return expr


def column_text(column: Column, alias: str) -> str:
    """A nested leaf: PostgreSQL's text form (bytea as base64), arrays as text arrays."""
    expr = ref(alias, column)
    if column.type.kind is Kind.BYTEA:
        if column.type.is_array:
            return (f"CASE WHEN {expr} IS NULL THEN NULL ELSE ARRAY(SELECT translate(encode(x, 'base64'), "
                    f"E'\\n', '') FROM unnest({expr}) AS x) END")
        return f"translate(encode({expr}, 'base64'), E'\\n', '')"
    return f"CAST({expr} AS text{'[]' if column.type.is_array else ''})"


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
