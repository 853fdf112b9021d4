"""Read tables, views, columns, keys and comments from pg_catalog into a Model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from quiver.schema import naming
from quiver.schema.model import Column, Entity, Kind, Model, PgType, Relation, quote_ident

_log = logging.getLogger(__name__)

_RELATIONS = """
SELECT c.oid, n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class'),
       quote_ident(c.relname) = c.relname AS plain
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
       c.atttypmod, sn.nspname AS scalar_schema
FROM cols c
JOIN pg_type b ON b.oid = c.base_oid
JOIN pg_type s ON s.oid = CASE WHEN b.typcategory = 'A' AND b.typelem <> 0 THEN b.typelem ELSE b.oid END
JOIN pg_namespace sn ON sn.oid = s.typnamespace
ORDER BY c.attrelid, c.attnum
"""

_ENUMS = "SELECT enumtypid, enumlabel FROM pg_enum ORDER BY enumtypid, enumsortorder"

_CONSTRAINTS = """
SELECT k.conrelid, k.contype, k.conname, k.conkey, k.confrelid, k.confkey
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE k.conrelid = ANY(%(oids)s) AND k.contype IN ('p', 'f')
ORDER BY k.contype DESC, n.nspname, c.relname, k.conname
"""

_KINDS = {
    "int2": Kind.INT, "int4": Kind.INT, "int8": Kind.BIGINT, "float4": Kind.FLOAT, "float8": Kind.FLOAT,
    "numeric": Kind.NUMERIC, "text": Kind.TEXT, "varchar": Kind.TEXT, "bpchar": Kind.TEXT, "name": Kind.TEXT,
    "citext": Kind.TEXT, "bool": Kind.BOOL, "uuid": Kind.UUID, "timestamptz": Kind.TIMESTAMPTZ,
    "timestamp": Kind.TIMESTAMP, "date": Kind.DATE, "time": Kind.TIME, "timetz": Kind.TIME,
    "interval": Kind.INTERVAL, "json": Kind.JSON, "jsonb": Kind.JSON, "bytea": Kind.BYTEA,
}


def introspect(conn: psycopg.Connection[Any], schemas: Sequence[str], exclude: Sequence[str] = ()) -> Model:
    """Build the model of every table and view in ``schemas``, every GraphQL name unique (``_name_*``)."""
    rels = conn.execute(_RELATIONS, {"schemas": list(schemas), "exclude": list(exclude)}).fetchall()
    oids = [r[0] for r in rels]
    enums: dict[int, list[str]] = {}
    for typ, label in conn.execute(_ENUMS).fetchall():
        enums.setdefault(typ, []).append(label)

    by_oid: dict[int, Entity] = {}
    plain: dict[int, bool] = {}
    for oid, schema, name, relkind, comment, is_plain in rels:
        by_oid[oid] = Entity(
            schema=schema, name=name, type_name=naming.type_name(name), list_field=naming.camel(name),
            one_field="", is_view=relkind in ("v", "m"), comment=comment,
        )
        plain[oid] = bool(is_plain)

    rows_of: dict[int, list[Any]] = {}
    enum_types: dict[str, tuple[str, str]] = {}  # qualified -> (schema, name)
    for row in conn.execute(_COLUMNS, {"oids": oids}).fetchall():
        rows_of.setdefault(row[0], []).append(row)
        if row[11] == "e":
            enum_types[row[13]] = (row[15], row[10])
    for relid, rows in rows_of.items():
        _add_columns(by_oid[relid], rows, enums)

    numbering = _attnums(conn, oids)
    foreign = []
    for relid, contype, _name, conkey, confrelid, confkey in conn.execute(_CONSTRAINTS, {"oids": oids}).fetchall():
        cols = tuple(numbering[relid][k] for k in conkey)
        if contype == "p":
            by_oid[relid].primary_key = cols
        elif confrelid in by_oid:
            foreign.append((by_oid[relid], by_oid[confrelid], cols, tuple(numbering[confrelid][k] for k in confkey)))

    model = Model()
    ranked = sorted(by_oid, key=lambda oid: _preference(schemas, by_oid[oid].schema, by_oid[oid].name, plain[oid]))
    taken = _name_entities([by_oid[oid] for oid in ranked])
    model.enums = _name_enums(enum_types, schemas, taken)
    for source, target, cols, target_cols in foreign:
        _add_relations(source, target, cols, target_cols)
    for oid in ranked:
        entity = by_oid[oid]
        entity.one_field = naming.one_field(entity.type_name, entity.list_field) if entity.primary_key else ""
        assert entity.type_name not in model.entities, entity.type_name  # _name_entities made them unique
        model.entities[entity.type_name] = entity
    return model


def _add_columns(entity: Entity, rows: list[Any], enums: dict[int, list[str]]) -> None:
    """The columns of one table in table order; clashing field names are numbered (first keeps its name)."""
    bases = [naming.camel(row[1]) for row in rows]
    names = naming.unique_fields(bases, naming.RESERVED_FIELDS)
    for row, base, field_name in zip(rows, bases, names, strict=True):
        (_relid, attname, notnull, hasdef, identity, generated, comment, full_sql, is_array,
         scalar_oid, scalar_name, scalar_typtype, scalar_sql, scalar_qualified, typmod, _schema) = row
        pg_type = _pg_type(full_sql, is_array, scalar_oid, scalar_name, scalar_typtype, scalar_sql,
                           scalar_qualified, typmod, enums)
        entity.columns[attname] = Column(
            name=attname, field_name=field_name, type=pg_type, nullable=not notnull,
            has_default=bool(hasdef) or identity in ("a", "d") or bool(generated),
            generated=identity == "a" or bool(generated), comment=comment,
        )
        if field_name != base:
            _log.warning("column %s.%s: its GraphQL field %s is taken (%s); it is served as %s "
                         "(docs/graphql.md, Names)", entity.qualified, quote_ident(attname), base,
                         _holders(base, entity, attname), field_name)


def _holders(base: str, entity: Entity, attname: str) -> str:
    others = [quote_ident(c.name) for c in entity.columns.values() if c.field_name == base and c.name != attname]
    return "by column " + ", ".join(others) if others else "reserved: " + ", ".join(sorted(naming.RESERVED_FIELDS))


def _preference(schemas: Sequence[str], schema: str, name: str, plain: bool) -> tuple[int, bool, int, bytes]:
    """Who keeps a clashing name (docs/graphql.md, "Names"): `public` first, then the configured schema order;
    names SQL needs no quotes for (``orders``, not ``"order"`` or ``"Order_Items"``); shorter; bytewise."""
    rank = -1 if schema == "public" else list(schemas).index(schema) if schema in schemas else len(schemas)
    return rank, not plain, len(name), name.encode()


def _entity_names(entity: Entity, base: tuple[str, str], attempt: int) -> tuple[str, str]:
    """(type name, list field) of ``attempt``: the plain names, then (outside `public`) schema-prefixed, then
    numbered."""
    type_name, list_field = base
    if entity.schema != "public":
        if attempt == 1:
            return type_name, list_field
        type_name = naming.pascal(entity.schema) + type_name
        list_field = naming.camel(entity.schema + "_" + entity.name)
        attempt -= 1
    return naming.numbered(type_name, attempt), naming.numbered(list_field, attempt)


def _name_entities(ranked: list[Entity]) -> set[str]:
    """Unique type and root field names for every entity (most preferred first); returns the names taken."""
    bases = {id(e): (e.type_name, e.list_field) for e in ranked}

    def claims(entity: Entity) -> Any:
        def at(attempt: int) -> frozenset[str]:
            type_name, list_field = _entity_names(entity, bases[id(entity)], attempt)
            return naming.entity_claims(type_name, list_field, has_key=bool(entity.primary_key),
                                        writable=entity.writable)
        return at

    reserved = {"type:" + t for t in naming.RESERVED_TYPES}
    at = [claims(e) for e in ranked]
    attempts = naming.first_free(at, reserved)
    taken = set(reserved)
    for entity, claim, attempt in zip(ranked, at, attempts, strict=True):
        entity.type_name, entity.list_field = _entity_names(entity, bases[id(entity)], attempt)
        taken |= claim(attempt)
        if attempt > 1:
            first = claim(1)
            others = [o.qualified for o, c in zip(ranked, at, strict=True) if o is not entity and c(1) & first]
            clash = sorted(n.split(":", 1)[1] for n in first & reserved) if not others else []
            _log.warning("table %s: its GraphQL names (%s, %s) clash with %s; it is served as %s, %s "
                         "(docs/graphql.md, Names)", entity.qualified, *bases[id(entity)],
                         ", ".join(others) or "built-in types " + ", ".join(clash),
                         entity.type_name, entity.list_field)
    return taken


def _name_enums(enum_types: dict[str, tuple[str, str]], schemas: Sequence[str], taken: set[str]) -> dict[str, str]:
    """GraphQL enum type name per enum type (qualified SQL), unique beside every type taken."""
    ranked = sorted(enum_types, key=lambda q: _preference(schemas, *enum_types[q], q.endswith("." + enum_types[q][1])))
    bases = [naming.pascal(enum_types[q][1]) for q in ranked]
    attempts = naming.first_free([naming.numbered_claims(base, naming.enum_claims) for base in bases], taken)
    names = {q: naming.numbered(base, n) for q, base, n in zip(ranked, bases, attempts, strict=True)}
    for q, base in zip(ranked, bases, strict=True):
        if names[q] != base:
            _log.warning("enum %s: its GraphQL name %s is taken; it is served as %s (docs/graphql.md, Names)",
                         q, base, names[q])
    return names


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


def _taken(entity: Entity) -> set[str]:
    return {c.field_name for c in entity.columns.values()} | set(entity.relations) | naming.RESERVED_FIELDS


def _relation_name(entity: Entity, base: str, cols: tuple[str, ...]) -> str:
    """``base``; if a column or relation of ``entity`` has it, ``base`` + ``By<Columns>``, then numbered."""
    taken = _taken(entity)
    if base not in taken:
        return base
    name = base + "By" + naming.pascal("_".join(cols))
    attempt = 1
    while naming.numbered(name, attempt) in taken:
        attempt += 1
    return naming.numbered(name, attempt)


def _add_relations(source: Entity, target: Entity, cols: tuple[str, ...], target_cols: tuple[str, ...]) -> None:
    if len(cols) == 1 and cols[0].endswith("_id") and len(cols[0]) > 3:
        forward = naming.camel(cols[0][:-3])
    else:
        forward = naming.camel(target.type_name)
    forward = _relation_name(source, forward, cols)
    source.relations[forward] = Relation(forward, True, source, target, cols, target_cols)
    backward = _relation_name(target, source.list_field, cols)
    target.relations[backward] = Relation(backward, False, target, source, target_cols, cols)
