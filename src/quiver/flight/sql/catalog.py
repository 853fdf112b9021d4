"""Metadata commands answered from pg_catalog: catalogs, schemas, tables, table types and keys.

The catalog is the database Quiver is connected to. Name patterns are Flight SQL's (``%`` and ``_``),
which are LIKE's, bound as parameters. Results are small, so they are built whole.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from quiver.flight.sql import schemas
from quiver.flight.sql.query import ReadOnly

_KIND = ("CASE WHEN n.nspname IN ('pg_catalog', 'information_schema') THEN 'SYSTEM TABLE' "
         "WHEN c.relkind IN ('r', 'p') THEN 'TABLE' WHEN c.relkind = 'v' THEN 'VIEW' "
         "WHEN c.relkind = 'm' THEN 'MATERIALIZED VIEW' ELSE 'FOREIGN TABLE' END")
_VISIBLE = "n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
TABLE_TYPES = ["FOREIGN TABLE", "MATERIALIZED VIEW", "SYSTEM TABLE", "TABLE", "VIEW"]
# pg_constraint.confupdtype/confdeltype → UpdateDeleteRules (CASCADE 0, RESTRICT 1, SET NULL 2, NO ACTION 3, ...)
_RULE = "CASE {0} WHEN 'c' THEN 0 WHEN 'r' THEN 1 WHEN 'n' THEN 2 WHEN 'a' THEN 3 ELSE 4 END"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Catalog:
    """Runs metadata SQL in the same read-only transactions as client queries."""

    def __init__(self, read: ReadOnly) -> None:
        self.read = read

    def _rows(self, sql: str, parameters: list[str]) -> list[tuple[Any, ...]]:
        batch = pa.RecordBatch.from_pydict({f"p{i}": [p] for i, p in enumerate(parameters)}) if parameters else None
        schema, batches = self.read.batches(sql, batch)
        table = pa.Table.from_batches(list(batches), schema)
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

    def database(self) -> str:
        return str(self._rows("SELECT current_database()", [])[0][0])

    def _catalog_matches(self, catalog: str | None) -> bool:
        return catalog is None or catalog == self.database()

    def catalogs(self) -> pa.Table:
        return pa.Table.from_pylist([{"catalog_name": self.database()}], schemas.CATALOGS)

    def db_schemas(self, catalog: str | None, pattern: str | None) -> pa.Table:
        if not self._catalog_matches(catalog):
            return schemas.DB_SCHEMAS.empty_table()
        where, params = [_VISIBLE], []
        if pattern is not None:
            where.append("n.nspname LIKE $1")
            params.append(pattern)
        rows = self._rows(f"SELECT current_database()::text, n.nspname::text FROM pg_namespace n "
                          f"WHERE {' AND '.join(where)} ORDER BY 2", params)
        return pa.Table.from_pylist([dict(zip(schemas.DB_SCHEMAS.names, r, strict=True)) for r in rows],
                                    schemas.DB_SCHEMAS)

    def tables(self, catalog: str | None, schema_pattern: str | None, table_pattern: str | None,
               types: list[str], include_schema: bool) -> pa.Table:
        target = schemas.TABLES_WITH_SCHEMA if include_schema else schemas.TABLES
        if not self._catalog_matches(catalog):
            return target.empty_table()
        where, params = [_VISIBLE, "c.relkind IN ('r', 'p', 'v', 'm', 'f')"], []
        for column, pattern in (("n.nspname", schema_pattern), ("c.relname", table_pattern)):
            if pattern is not None:
                params.append(pattern)
                where.append(f"{column} LIKE ${len(params)}")
        rows = self._rows(f"SELECT current_database()::text, n.nspname::text, c.relname::text, {_KIND} "
                          f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          f"WHERE {' AND '.join(where)} ORDER BY 1, 2, 3, 4", params)
        if types:
            rows = [r for r in rows if r[3] in types]
        records = [dict(zip(schemas.TABLES.names, r, strict=True)) for r in rows]
        if include_schema:
            for record in records:
                record["table_schema"] = self.table_schema(record["catalog_name"], record["db_schema_name"],
                                                           record["table_name"]).serialize().to_pybytes()
        return pa.Table.from_pylist(records, target)

    def table_schema(self, catalog: str, db_schema: str, table: str) -> pa.Schema:
        """What ``SELECT *`` gives, with nullability and the ARROW:FLIGHT:SQL:* column metadata of the spec."""
        found = self.read.schema(f"SELECT * FROM {quote(db_schema)}.{quote(table)}")
        columns = {r[0]: r[1:] for r in self._rows(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false), "
            "col_description(a.attrelid, a.attnum) "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass "
            "AND a.attnum > 0 AND NOT a.attisdropped", [db_schema, table])}
        fields = []
        for field in found:
            type_name, not_null, auto, remarks = columns.get(field.name, (None, False, False, None))
            metadata = {
                "ARROW:FLIGHT:SQL:CATALOG_NAME": catalog, "ARROW:FLIGHT:SQL:DB_SCHEMA_NAME": db_schema,
                "ARROW:FLIGHT:SQL:TABLE_NAME": table, "ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT": "1" if auto else "0",
                "ARROW:FLIGHT:SQL:IS_READ_ONLY": "1", "ARROW:FLIGHT:SQL:IS_SEARCHABLE": "1",
            }
            if type_name is not None:
                metadata["ARROW:FLIGHT:SQL:TYPE_NAME"] = type_name
            if remarks is not None:
                metadata["ARROW:FLIGHT:SQL:REMARKS"] = remarks
            fields.append(field.with_nullable(not not_null).with_metadata({**(field.metadata or {}), **{
                k.encode(): v.encode() for k, v in metadata.items()}}))
        return pa.schema(fields)

    def table_types(self) -> pa.Table:
        return pa.Table.from_pylist([{"table_type": t} for t in TABLE_TYPES], schemas.TABLE_TYPES)

    def _table_filter(self, catalog: str | None, db_schema: str | None, table: str,
                      alias: str) -> tuple[str, list[str]] | None:
        if not self._catalog_matches(catalog):
            return None
        params = [table]
        where = f"{alias}c.relname = $1"
        if db_schema is not None:
            params.append(db_schema)
            where += f" AND {alias}n.nspname = $2"
        else:
            where += f" AND pg_table_is_visible({alias}c.oid)"
        return where, params

    def primary_keys(self, catalog: str | None, db_schema: str | None, table: str) -> pa.Table:
        found = self._table_filter(catalog, db_schema, table, "")
        if found is None:
            return schemas.PRIMARY_KEYS.empty_table()
        where, params = found
        rows = self._rows(
            "SELECT current_database()::text, n.nspname::text, c.relname::text, a.attname::text, k.conname::text, "
            "k.ord::int4 FROM (SELECT con.*, key.attnum, key.ord FROM pg_constraint con, "
            "unnest(con.conkey) WITH ORDINALITY AS key(attnum, ord) WHERE con.contype = 'p') k "
            "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            f"WHERE {where} ORDER BY 1, 2, 3, 5, 6", params)
        return pa.Table.from_pylist([dict(zip(schemas.PRIMARY_KEYS.names, r, strict=True)) for r in rows],
                                    schemas.PRIMARY_KEYS)

    def foreign_keys(self, catalog: str | None, db_schema: str | None, table: str, *, imported: bool) -> pa.Table:
        """Imported: the keys ``table`` declares; exported: the keys that reference ``table``."""
        found = self._table_filter(catalog, db_schema, table, "f" if imported else "p")
        if found is None:
            return schemas.FOREIGN_KEYS.empty_table()
        where, params = found
        order = "5, 6, 7, 10, 9" if not imported else "1, 2, 3, 11, 9"
        rows = self._rows(
            "SELECT current_database()::text, pn.nspname::text, pc.relname::text, pa.attname::text, "
            "current_database()::text, fn.nspname::text, fc.relname::text, fa.attname::text, k.ord::int4, "
            f"k.conname::text, pk.conname::text, ({_RULE.format('k.confupdtype')})::int2, "
            f"({_RULE.format('k.confdeltype')})::int2 "
            "FROM (SELECT con.*, cols.fk_att, cols.pk_att, cols.ord FROM pg_constraint con, "
            "unnest(con.conkey, con.confkey) WITH ORDINALITY AS cols(fk_att, pk_att, ord) "
            "WHERE con.contype = 'f') k "
            "JOIN pg_class fc ON fc.oid = k.conrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace "
            "JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace "
            "JOIN pg_attribute fa ON fa.attrelid = fc.oid AND fa.attnum = k.fk_att "
            "JOIN pg_attribute pa ON pa.attrelid = pc.oid AND pa.attnum = k.pk_att "
            "LEFT JOIN pg_constraint pk ON pk.conindid = k.conindid AND pk.conrelid = k.confrelid "
            "AND pk.contype IN ('p', 'u') "
            f"WHERE {where} ORDER BY {order}", params)
        records = [dict(zip(schemas.FOREIGN_KEYS.names, r, strict=True)) for r in rows]
        return pa.Table.from_pylist(records, schemas.FOREIGN_KEYS)

    def server_version(self) -> str:
        return str(self._rows("SELECT 'PostgreSQL ' || current_setting('server_version')", [])[0][0])
