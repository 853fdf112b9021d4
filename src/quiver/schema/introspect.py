"""Read tables, views, columns, keys and comments from pg_catalog into a Model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from quiver.schema import naming
from quiver.schema.model import Column, Entity, Kind, Model, PgType, Relation

_RELATIONS = """
SELECT c.oid, n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND NOT c.relname = ANY(%(exclude)s)
ORDER BY n.nspname, c.relname
"""

_COLUMNS = """
WITH cols AS (
  SELECT a.attrelid, a.attname, a.attnum, a.attnotnull, a.atthasdef, a.attidentity, a.attgenerated,
         a.atttypid, a.atttypmod, col_description(a.attrelid, a.attnum) AS comment,
         CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END AS base_oid
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped
)
SELECT c.attrelid, c.attname, c.attnotnull, c.atthasdef, c.attidentity, c.attgenerated, c.comment,
       format_type(c.base_oid, c.atttypmod) AS full_sql,
       (b.typcategory = 'A' AND b.typelem <> 0) AS is_array,
       s.oid AS scalar_oid, s.typname AS scalar_name, s.typtype AS scalar_typtype,
       format_type(s.oid, c.atttypmod) AS scalar_sql,
       quote_ident(sn.nspname) || '.' || quote_ident(s.typname) AS scalar_qualified,
       c.atttypmod
FROM cols c
JOIN pg_type b ON b.oid = c.base_oid
JOIN pg_type s ON s.oid = CASE WHEN b.typcategory = 'A' AND b.typelem <> 0 THEN b.typelem ELSE b.oid END
JOIN pg_namespace sn ON sn.oid = s.typnamespace
ORDER BY c.attrelid, c.attnum
"""

_ENUMS = "SELECT enumtypid, enumlabel FROM pg_enum ORDER BY enumtypid, enumsortorder"

_CONSTRAINTS = """
SELECT conrelid, contype, conname, conkey, confrelid, confkey
FROM pg_constraint WHERE conrelid = ANY(%(oids)s) AND contype IN ('p', 'f') ORDER BY conname
"""

_KINDS = {
    "int2": Kind.INT, "int4": Kind.INT, "int8": Kind.BIGINT, "float4": Kind.FLOAT, "float8": Kind.FLOAT,
    "numeric": Kind.NUMERIC, "text": Kind.TEXT, "varchar": Kind.TEXT, "bpchar": Kind.TEXT, "name": Kind.TEXT,
    "citext": Kind.TEXT, "bool": Kind.BOOL, "uuid": Kind.UUID, "timestamptz": Kind.TIMESTAMPTZ,
    "timestamp": Kind.TIMESTAMP, "date": Kind.DATE, "time": Kind.TIME, "timetz": Kind.TIME,
    "interval": Kind.INTERVAL, "json": Kind.JSON, "jsonb": Kind.JSON, "bytea": Kind.BYTEA,
}


def introspect(conn: psycopg.Connection[Any], schemas: Sequence[str], exclude: Sequence[str] = ()) -> Model:
    """Build the model of every table and view in ``schemas``."""
    rels = conn.execute(_RELATIONS, {"schemas": list(schemas), "exclude": list(exclude)}).fetchall()
    oids = [r[0] for r in rels]
    enums: dict[int, list[str]] = {}
    for typ, label in conn.execute(_ENUMS).fetchall():
        enums.setdefault(typ, []).append(label)

    by_oid: dict[int, Entity] = {}
    for oid, schema, name, relkind, comment in rels:
        by_oid[oid] = Entity(
            schema=schema, name=name, type_name=naming.type_name(name), list_field=naming.camel(name),
            one_field="", is_view=relkind in ("v", "m"), comment=comment,
        )
    _disambiguate_types(by_oid.values())

    for row in conn.execute(_COLUMNS, {"oids": oids}).fetchall():
        (relid, attname, notnull, hasdef, identity, generated, comment, full_sql, is_array,
         scalar_oid, scalar_name, scalar_typtype, scalar_sql, scalar_qualified, typmod) = row
        entity = by_oid[relid]
        pg_type = _pg_type(full_sql, is_array, scalar_oid, scalar_name, scalar_typtype, scalar_sql,
                           scalar_qualified, typmod, enums)
        entity.columns[attname] = Column(
            name=attname, field_name=naming.camel(attname), type=pg_type, nullable=not notnull,
            has_default=bool(hasdef) or identity in ("a", "d") or bool(generated),
            generated=identity == "a" or bool(generated), comment=comment,
        )
    _dedupe_field_names(by_oid.values())

    numbering = _attnums(conn, oids)
    for relid, contype, _name, conkey, confrelid, confkey in conn.execute(_CONSTRAINTS, {"oids": oids}).fetchall():
        source = by_oid[relid]
        cols = tuple(numbering[relid][k] for k in conkey)
        if contype == "p":
            source.primary_key = cols
        elif confrelid in by_oid:
            target = by_oid[confrelid]
            target_cols = tuple(numbering[confrelid][k] for k in confkey)
            _add_relations(source, target, cols, target_cols)

    model = Model()
    for entity in by_oid.values():
        entity.one_field = _one_field(entity)
        model.entities[entity.type_name] = entity
    return model


def _attnums(conn: psycopg.Connection[Any], oids: list[int]) -> dict[int, dict[int, str]]:
    rows = conn.execute(
        "SELECT attrelid, attnum, attname FROM pg_attribute WHERE attrelid = ANY(%s) AND attnum > 0",
        (oids,),
    ).fetchall()
    result: dict[int, dict[int, str]] = {}
    for relid, num, name in rows:
        result.setdefault(relid, {})[num] = name
    return result


def _pg_type(
    full_sql: str, is_array: bool, scalar_oid: int, scalar_name: str, typtype: str, scalar_sql: str,
    scalar_qualified: str, typmod: int, enums: dict[int, list[str]],
) -> PgType:
    if typtype == "e":
        return PgType(
            kind=Kind.ENUM, sql=scalar_qualified + ("[]" if is_array else ""), is_array=is_array,
            element_sql=scalar_qualified, enum_labels=tuple(enums.get(scalar_oid, ())), enum_name=scalar_qualified,
        )
    kind = _KINDS.get(scalar_name, Kind.OTHER)
    precision = scale = None
    if kind is Kind.NUMERIC and typmod >= 4:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    return PgType(
        kind=kind, sql=full_sql, is_array=is_array, element_sql=scalar_sql if is_array else None,
        jsonb=scalar_name == "jsonb", numeric_precision=precision, numeric_scale=scale,
    )


def _disambiguate_types(entities: Any) -> None:
    seen: dict[str, int] = {}
    for entity in entities:
        seen[entity.type_name] = seen.get(entity.type_name, 0) + 1
    for entity in entities:
        if seen[entity.type_name] > 1 and entity.schema != "public":
            entity.type_name = naming.pascal(entity.schema) + entity.type_name
            entity.list_field = naming.camel(entity.schema + "_" + entity.name)


def _dedupe_field_names(entities: Any) -> None:
    for entity in entities:
        used: set[str] = set()
        for name, column in list(entity.columns.items()):
            field_name = column.field_name
            while field_name in used:
                field_name += "_"
            used.add(field_name)
            if field_name != column.field_name:
                entity.columns[name] = Column(
                    column.name, field_name, column.type, column.nullable, column.has_default,
                    column.generated, column.comment,
                )


def _taken(entity: Entity) -> set[str]:
    return {c.field_name for c in entity.columns.values()} | set(entity.relations) | {"_cursor"}


def _add_relations(source: Entity, target: Entity, cols: tuple[str, ...], target_cols: tuple[str, ...]) -> None:
    if len(cols) == 1 and cols[0].endswith("_id") and len(cols[0]) > 3:
        forward = naming.camel(cols[0][:-3])
    else:
        forward = naming.camel(naming.type_name(target.name))
    if forward in _taken(source):
        forward += "By" + naming.pascal("_".join(cols))
    source.relations[forward] = Relation(forward, True, source, target, cols, target_cols)

    backward = naming.camel(source.name)
    if backward in _taken(target):
        backward += "By" + naming.pascal("_".join(cols))
    target.relations[backward] = Relation(backward, False, target, source, target_cols, cols)


def _one_field(entity: Entity) -> str:
    if not entity.primary_key:
        return ""
    name = naming.camel(entity.type_name)
    return name + "ByPk" if name == entity.list_field else name
