"""SQL for the parts every compiler shares: filters, ordering, keyset, cursors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from quiver.plan import nodes
from quiver.schema.model import Column, Entity, Kind, PgType, Relation, quote_ident
from quiver.sql.params import Params

# Cursor values arrive as PostgreSQL text forms; the comparison casts them to the column type.
_CURSOR_TEXT = PgType(kind=Kind.TEXT, sql="text")
# Types Quiver serves as String whose own order (a btree operator class) is not their text order: filters
# compare in the column's type. Other String-typed types (point, xml, ...) have no such order: text.
ORDERED_OTHER = frozenset({"inet", "cidr", "money", "macaddr", "macaddr8", "bit", "bit varying", "oid", "pg_lsn",
                           "xid8", "tsvector", "tsquery", "int2vector", "oidvector"})
_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE", "ilike": "ILIKE"}


# The derived table whose rows become JSON objects. Its columns are response keys (GraphQL names), which
# cannot contain a space, so no key can be this alias; and it is read as a whole row with `.*`, which
# PostgreSQL resolves to the table even where a column has the same name (`row_to_json(r)` with a
# column `r` would be row_to_json of that column).
ROW = '"quiver row"'


def json_row(rows_sql: str, *, as_text: bool = False) -> str:
    """``SELECT row_to_json(row)`` of each row of ``rows_sql`` (keys: its column aliases)."""
    value = f"row_to_json({ROW}.*)"
    return f"SELECT {f'CAST({value} AS text)' if as_text else value} FROM ({rows_sql}) AS {ROW}"


def json_rows(rows_sql: str, *, as_text: bool = False) -> str:
    """``SELECT`` one JSON array of the rows of ``rows_sql`` (``[]`` for none), in their order."""
    value = f"coalesce(json_agg({ROW}.*), '[]'::json)"
    return f"SELECT {f'CAST({value} AS text)' if as_text else value} FROM ({rows_sql}) AS {ROW}"


def literal(text: str) -> str:
    """A constant string we generate (type names, keys) as an SQL literal."""
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Scope:
    """Alias allocation for one statement, plus the binder of its values."""

    params: Params
    counter: int = field(default=0)

    def alias(self) -> str:
        """A table alias unique in the statement; every column is read qualified by one (``t1."col"``)."""
        self.counter += 1
        return f"t{self.counter}"


def ref(alias: str, column: Column) -> str:
    return f"{alias}.{quote_ident(column.name)}"


def where_sql(f: nodes.Filter, alias: str, scope: Scope) -> str:
    if isinstance(f, nodes.Compare):
        return _compare(f, alias, scope)
    if isinstance(f, nodes.IsNull):
        return f"{ref(alias, f.column)} IS {'' if f.is_null else 'NOT '}NULL"
    if isinstance(f, nodes.And):
        return "(" + " AND ".join(where_sql(i, alias, scope) for i in f.items) + ")" if f.items else "TRUE"
    if isinstance(f, nodes.Or):
        return "(" + " OR ".join(where_sql(i, alias, scope) for i in f.items) + ")" if f.items else "FALSE"
    if isinstance(f, nodes.Not):
        return f"NOT ({where_sql(f.item, alias, scope)})"
    inner = scope.alias()
    condition = where_sql(f.where, inner, scope)
    target = f.relation.target.qualified
    return f"EXISTS (SELECT 1 FROM {target} AS {inner} WHERE {join_sql(f.relation, alias, inner)} AND {condition})"


def _compare(f: nodes.Compare, alias: str, scope: Scope) -> str:
    column = f.column
    left = ref(alias, column)
    sql_type = None
    if column.type.kind is Kind.OTHER and not compares_in_own_type(column.type):
        left, sql_type = f"CAST({left} AS text)", "text"
    if f.op in ("in", "nin"):
        values = scope.params.array(f.value, column.type, sql_type)
        if f.op == "in":
            return f"{left} = ANY({values})"
        # SQL semantics like `neq`: NULL never matches, not even against an empty list.
        return f"({left} IS NOT NULL AND NOT ({left} = ANY({values})))"
    if f.op in ("like", "ilike") and column.type.kind is not Kind.TEXT:
        left, sql_type = f"CAST({left} AS text)", "text"
    return f"{left} {_OPS[f.op]} {scope.params.value(f.value, column.type, sql_type)}"


def compares_in_own_type(pg_type: PgType) -> bool:
    """Whether a String-typed (``Kind.OTHER``) column is filtered in its own type, not as text."""
    return pg_type.scalar_sql.split("(")[0].strip() in ORDERED_OTHER


def join_sql(relation: Relation, source_alias: str, target_alias: str) -> str:
    """Join condition from a row of ``relation.source`` to rows of ``relation.target``."""
    pairs = zip(relation.source_columns, relation.target_columns, strict=True)
    return " AND ".join(
        f"{target_alias}.{quote_ident(t)} = {source_alias}.{quote_ident(s)}" for s, t in pairs
    )


def order_sql(order: tuple[nodes.OrderKey, ...], alias: str) -> str:
    if not order:
        return ""
    return " ORDER BY " + ", ".join(f"{ref(alias, k.column)} {k.direction} NULLS {k.nulls}" for k in order)


def keyset_sql(order: tuple[nodes.OrderKey, ...], after: tuple[str | None, ...], alias: str, scope: Scope) -> str:
    """Rows strictly after the cursor row: k1 > v1 OR (k1 = v1 AND (k2 > v2 OR ...)), NULL-aware."""
    result = "FALSE"
    for key, value in reversed(list(zip(order, after, strict=True))):
        column = ref(alias, key.column)
        if value is None:
            greater = f"{column} IS NOT NULL" if key.nulls == "FIRST" else "FALSE"
            equal = f"{column} IS NULL"
        else:
            bound = scope.params.value(value, _CURSOR_TEXT, key.column.type.sql)
            greater = f"{column} {'>' if key.direction == 'ASC' else '<'} {bound}"
            if key.nulls == "LAST":
                greater = f"({greater} OR {column} IS NULL)"
            equal = f"{column} = {bound}"
        result = f"({greater} OR ({equal} AND {result}))"
    return result


def cursor_sql(keys: tuple[nodes.OrderKey, ...], alias: str) -> str:
    """A row's opaque cursor: url-safe base64 of a JSON array of its sort keys' text."""
    values = ", ".join(f"CAST({ref(alias, k.column)} AS text)" for k in keys) or "NULL"
    return (f"translate(encode(convert_to(CAST(json_build_array({values}) AS text), 'UTF8'), 'base64'), "
            f"E'+/\\n', '-_')")


def entity_cursor_keys(entity: Entity) -> tuple[nodes.OrderKey, ...]:
    return tuple(nodes.OrderKey(entity.columns[c], "ASC", "LAST") for c in entity.primary_key)


def from_where(query: nodes.ListQuery, alias: str, scope: Scope,
               join: tuple[Relation, str] | None = None) -> str:
    """``FROM entity WHERE (join, filter, keyset) ORDER BY ... LIMIT ... OFFSET ...`` for one list."""
    conditions = []
    if join is not None:
        conditions.append(join_sql(join[0], join[1], alias))
    if query.where is not None:
        conditions.append(where_sql(query.where, alias, scope))
    if query.after is not None:
        conditions.append(keyset_sql(query.order, query.after, alias, scope))
    sql = f"FROM {query.entity.qualified} AS {alias}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += order_sql(query.order, alias)
    if query.limit is not None:
        sql += f" LIMIT {int(query.limit)}"
    if query.offset:
        sql += f" OFFSET {int(query.offset)}"
    return sql


def aggregate_select(root: nodes.AggregateRoot, scope: Scope, count: str) -> str:
    """The aggregate's one row, ``count`` rendered as the compiler wants it.

    ``GROUP BY ()`` makes it one row even when only ``__typename`` is selected (no aggregate
    function in the select list), over no rows as over many.
    """
    alias = scope.alias()
    type_name = literal(root.entity.type_name + "Aggregate")
    fields = ", ".join(f"{count if what == 'count' else type_name} AS {quote_ident(key)}" for key, what in root.fields)
    sql = f"SELECT {fields} FROM {root.entity.qualified} AS {alias}"
    if root.where is not None:
        sql += " WHERE " + where_sql(root.where, alias, scope)
    return sql + " GROUP BY ()"


def select_items(selection: nodes.Selection, entity: Entity, alias: str, cursor_keys: tuple[nodes.OrderKey, ...],
                 scalar: Callable[[Column, str], str],
                 relation: Callable[[nodes.ObjectOut | nodes.ListOut], str]) -> str:
    """The select list of ``selection``, each output under its response key.

    Scalars, ``__typename`` and ``_cursor`` read the same in every compiler; how a column
    and a nested relation are rendered is the compiler's (JSON text, typed, JSON lines).
    """
    parts = []
    for out in selection:
        key = quote_ident(out.key)
        if isinstance(out, nodes.ScalarOut):
            parts.append(f"{scalar(out.column, alias)} AS {key}")
        elif isinstance(out, nodes.TypenameOut):
            parts.append(f"{literal(out.type_name)} AS {key}")
        elif isinstance(out, nodes.CursorOut):
            parts.append(f"{cursor_sql(cursor_keys or entity_cursor_keys(entity), alias)} AS {key}")
        else:
            parts.append(f"{relation(out)} AS {key}")
    return ", ".join(parts)
