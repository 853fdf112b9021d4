"""PostgreSQL → Arrow types: the one mapping both Arrow planes use.

| PostgreSQL | Arrow |
|---|---|
| int2 / int4 / int8 | int16 / int32 / int64 |
| float4 / float8 | float32 / float64 |
| numeric(p,s), p ≤ 38 | decimal128(p, s) |
| numeric (unconstrained, or p > 38) | utf8, PostgreSQL's exact text (no Arrow decimal holds every value) |
| text, varchar, char, citext, name | utf8 |
| uuid | utf8 canonical text (pandas turns the arrow.uuid extension into Python objects: ~1.8 s per 1M rows) |
| bool | bool |
| date / time / timestamp / timestamptz | date32 / time64[us] / timestamp[us] / timestamp[us, UTC] |
| timetz | utf8 (Arrow has no time with offset) |
| interval | month_day_nano_interval (top level); utf8 ISO 8601 inside arrays and nested selections |
| json, jsonb | utf8 JSON text (field metadata ``quiver:type = json``) |
| bytea | binary |
| T[] | list<T> (one dimension; a multi-dimensional value is refused: ``UnsupportedValue``) |
| enum | dictionary<int16, utf8> over the enum's labels, in their order |
| other types | utf8 text form |

Nested selections: a many-to-one relation is a struct, a one-to-many relation a
list<struct>; struct fields follow the selection order and use the response keys.
Nullability comes from the schema: NOT NULL columns are non-nullable fields.

Special values (docs/graphql.md, Special values): float NaN/±Infinity are IEEE values;
numeric NaN/±Infinity are text in utf8 numerics and refused in decimal128; date and
timestamp ±infinity (and timestamps beyond timestamp[us]) are refused, naming column and row.
"""

from __future__ import annotations

import pyarrow as pa

from quiver.plan import nodes
from quiver.schema.model import Column, Kind, PgType

ENUM_INDEX = pa.int16()


def scalar_type(pg_type: PgType, *, nested: bool = False) -> pa.DataType:
    kind = pg_type.kind
    sql = pg_type.scalar_sql
    if kind is Kind.INT:
        return pa.int16() if sql == "smallint" else pa.int32()
    if kind is Kind.BIGINT:
        return pa.int64()
    if kind is Kind.FLOAT:
        return pa.float32() if sql == "real" else pa.float64()
    if kind is Kind.NUMERIC:
        p, s = pg_type.numeric_precision, pg_type.numeric_scale
        if p is not None and s is not None and 0 < p <= 38:
            return pa.decimal128(p, s)
        return pa.string()
    if kind is Kind.BOOL:
        return pa.bool_()
    if kind is Kind.DATE:
        return pa.date32()
    if kind is Kind.TIME:
        return pa.string() if "with time zone" in sql else pa.time64("us")
    if kind is Kind.TIMESTAMP:
        return pa.timestamp("us")
    if kind is Kind.TIMESTAMPTZ:
        return pa.timestamp("us", tz="UTC")
    if kind is Kind.INTERVAL:
        return pa.string() if nested else pa.month_day_nano_interval()
    if kind is Kind.BYTEA:
        return pa.binary()
    if kind is Kind.ENUM:
        return pa.dictionary(ENUM_INDEX, pa.string())
    return pa.string()  # text, uuid, json, other


def column_type(column: Column, *, nested: bool = False) -> pa.DataType:
    # Arrays travel as JSON lines like nested selections, so their intervals are ISO text too.
    element = scalar_type(column.type, nested=nested or column.type.is_array)
    return pa.list_(element) if column.type.is_array else element


def column_field(key: str, column: Column, *, nested: bool = False) -> pa.Field:
    metadata = {b"quiver:type": b"json"} if column.type.kind is Kind.JSON else None
    return pa.field(key, column_type(column, nested=nested), nullable=column.nullable, metadata=metadata)


def selection_fields(selection: nodes.Selection, *, nested: bool = False) -> list[pa.Field]:
    fields = []
    for out in selection:
        if isinstance(out, nodes.ScalarOut):
            fields.append(column_field(out.key, out.column, nested=nested))
        elif isinstance(out, nodes.TypenameOut | nodes.CursorOut):
            fields.append(pa.field(out.key, pa.string(), nullable=False))
        elif isinstance(out, nodes.ObjectOut):
            nullable = any(out.relation.source.columns[c].nullable for c in out.relation.source_columns)
            fields.append(pa.field(out.key, pa.struct(selection_fields(out.selection, nested=True)),
                                   nullable=nullable))
        else:
            item = pa.field("item", pa.struct(selection_fields(out.query.selection, nested=True)), nullable=False)
            fields.append(pa.field(out.key, pa.list_(item), nullable=False))
    return fields


def root_schema(root: nodes.Root) -> pa.Schema:
    """The Arrow schema of one root field's result (one row per list item)."""
    if isinstance(root, nodes.ListRoot):
        return pa.schema(selection_fields(root.query.selection))
    if isinstance(root, nodes.OneRoot):
        return pa.schema(selection_fields(root.selection))
    if isinstance(root, nodes.AggregateRoot):
        return pa.schema([
            pa.field(key, pa.int64() if what == "count" else pa.string(), nullable=False)
            for key, what in root.fields
        ])
    raise TypeError(f"no Arrow form for {type(root).__name__}")


def transport_type(final: pa.DataType) -> pa.DataType:
    """How a nested value travels in JSON text: every leaf as a string."""
    if pa.types.is_struct(final):
        return pa.struct([pa.field(f.name, transport_type(f.type)) for f in final])
    if pa.types.is_list(final):
        return pa.list_(pa.field("item", transport_type(final.value_type)))
    return pa.string()
