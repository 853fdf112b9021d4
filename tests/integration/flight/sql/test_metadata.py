"""Metadata commands: the spec's exact schemas, and answers that match pg_catalog for keys and tables."""

from __future__ import annotations

from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from google.protobuf.message import Message

from quiver.flight.sql import schemas
from quiver.flight.sql.protocol import pack, pb

Row = tuple[Any, ...]


def fetch(raw: flight.FlightClient, command: Message) -> tuple[flight.FlightInfo, pa.Table]:
    """GetFlightInfo, then DoGet of every endpoint: what any Flight SQL client does."""
    info = raw.get_flight_info(flight.FlightDescriptor.for_command(pack(command)))
    tables = [raw.do_get(endpoint.ticket).read_all() for endpoint in info.endpoints]
    return info, pa.concat_tables(tables)


def database(pg: psycopg.Connection[Row]) -> str:
    row = pg.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize(("command", "schema"), [
    (pb.CommandGetCatalogs(), schemas.CATALOGS),
    (pb.CommandGetDbSchemas(), schemas.DB_SCHEMAS),
    (pb.CommandGetTables(), schemas.TABLES),
    (pb.CommandGetTables(include_schema=True, db_schema_filter_pattern="fsql"), schemas.TABLES_WITH_SCHEMA),
    (pb.CommandGetTableTypes(), schemas.TABLE_TYPES),
    (pb.CommandGetPrimaryKeys(table="parent"), schemas.PRIMARY_KEYS),
    (pb.CommandGetImportedKeys(table="child"), schemas.FOREIGN_KEYS),
    (pb.CommandGetExportedKeys(table="parent"), schemas.FOREIGN_KEYS),
    (pb.CommandGetSqlInfo(), schemas.SQL_INFO),
    (pb.CommandGetXdbcTypeInfo(), schemas.XDBC_TYPE_INFO),
])
def test_each_command_carries_the_spec_schema(raw: flight.FlightClient, command: Message, schema: pa.Schema) -> None:
    info, table = fetch(raw, command)
    assert info.schema == schema
    assert table.schema == schema
    described = raw.get_schema(flight.FlightDescriptor.for_command(pack(command))).schema
    assert described == schema


def test_the_spec_schemas_are_spelled_as_in_the_proto() -> None:
    assert str(schemas.PRIMARY_KEYS) == (
        "catalog_name: string\ndb_schema_name: string\ntable_name: string not null\n"
        "column_name: string not null\nkey_name: string\nkey_sequence: int32 not null")
    assert schemas.FOREIGN_KEYS.field("update_rule").type == pa.uint8()
    assert schemas.SQL_INFO.field("value").type.type_codes == [0, 1, 2, 3, 4, 5]


def test_catalogs_and_schemas(raw: flight.FlightClient, pg: psycopg.Connection[Row]) -> None:
    name = database(pg)
    assert fetch(raw, pb.CommandGetCatalogs())[1].to_pylist() == [{"catalog_name": name}]
    found = fetch(raw, pb.CommandGetDbSchemas(db_schema_filter_pattern="fs_l"))[1].to_pylist()
    assert found == [{"catalog_name": name, "db_schema_name": "fsql"}]
    every = [r["db_schema_name"] for r in fetch(raw, pb.CommandGetDbSchemas())[1].to_pylist()]
    assert every == sorted(every) and {"public", "fsql", "pg_catalog"} <= set(every)
    assert fetch(raw, pb.CommandGetDbSchemas(catalog="elsewhere"))[1].num_rows == 0


def test_tables_filtered_by_pattern_and_type(raw: flight.FlightClient, pg: psycopg.Connection[Row]) -> None:
    name = database(pg)
    found = fetch(raw, pb.CommandGetTables(db_schema_filter_pattern="fsql", table_name_filter_pattern="%ild%"))[1]
    assert found.to_pylist() == [
        {"catalog_name": name, "db_schema_name": "fsql", "table_name": "child", "table_type": "TABLE"},
        {"catalog_name": name, "db_schema_name": "fsql", "table_name": "child_view", "table_type": "VIEW"},
    ]
    views = fetch(raw, pb.CommandGetTables(db_schema_filter_pattern="fsql", table_types=["VIEW"]))[1]
    assert views.column("table_name").to_pylist() == ["child_view"]
    system = fetch(raw, pb.CommandGetTables(table_name_filter_pattern="pg_class", table_types=["SYSTEM TABLE"]))[1]
    assert system.column("db_schema_name").to_pylist() == ["pg_catalog"]


def test_table_schema_has_types_nullability_and_column_metadata(raw: flight.FlightClient) -> None:
    found = fetch(raw, pb.CommandGetTables(db_schema_filter_pattern="fsql", table_name_filter_pattern="parent",
                                           include_schema=True))[1]
    schema = pa.ipc.read_schema(pa.py_buffer(found.column("table_schema")[0].as_py()))
    assert schema.names == ["region", "code", "label"]
    assert schema.types == [pa.utf8(), pa.int32(), pa.utf8()]
    assert [f.nullable for f in schema] == [False, False, True]
    code = schema.field("code").metadata
    assert code[b"ARROW:FLIGHT:SQL:TYPE_NAME"] == b"integer"
    assert code[b"ARROW:FLIGHT:SQL:TABLE_NAME"] == b"parent"


def test_composite_primary_key_in_key_order(raw: flight.FlightClient, pg: psycopg.Connection[Row]) -> None:
    name = database(pg)
    found = fetch(raw, pb.CommandGetPrimaryKeys(db_schema="fsql", table="parent"))[1].to_pylist()
    assert found == [
        {"catalog_name": name, "db_schema_name": "fsql", "table_name": "parent", "column_name": "code",
         "key_name": "parent_pkey", "key_sequence": 1},
        {"catalog_name": name, "db_schema_name": "fsql", "table_name": "parent", "column_name": "region",
         "key_name": "parent_pkey", "key_sequence": 2},
    ]
    assert fetch(raw, pb.CommandGetPrimaryKeys(db_schema="fsql", table="child_view"))[1].num_rows == 0


def test_foreign_key_imported_and_exported(raw: flight.FlightClient, pg: psycopg.Connection[Row]) -> None:
    name = database(pg)
    expected = [
        {"pk_catalog_name": name, "pk_db_schema_name": "fsql", "pk_table_name": "parent", "pk_column_name": pk,
         "fk_catalog_name": name, "fk_db_schema_name": "fsql", "fk_table_name": "child", "fk_column_name": fk,
         "key_sequence": seq, "fk_key_name": "child_parent_fk", "pk_key_name": "parent_pkey",
         "update_rule": pb.RESTRICT, "delete_rule": pb.CASCADE}
        for seq, pk, fk in ((1, "code", "parent_code"), (2, "region", "parent_region"))
    ]
    imported = fetch(raw, pb.CommandGetImportedKeys(db_schema="fsql", table="child"))[1].to_pylist()
    exported = fetch(raw, pb.CommandGetExportedKeys(db_schema="fsql", table="parent"))[1].to_pylist()
    assert imported == expected
    assert exported == expected
    assert fetch(raw, pb.CommandGetImportedKeys(db_schema="fsql", table="parent"))[1].num_rows == 0


def test_sql_info_is_honest(conn: Any, raw: flight.FlightClient, pg: psycopg.Connection[Row]) -> None:
    version = pg.execute("SELECT current_setting('server_version')").fetchone()
    assert version is not None
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "Quiver (PostgreSQL)"
    assert info["vendor_version"] == f"PostgreSQL {version[0]}"
    wanted = [pb.FLIGHT_SQL_SERVER_READ_ONLY, pb.SQL_IDENTIFIER_QUOTE_CHAR, pb.FLIGHT_SQL_SERVER_TRANSACTION, 99_999]
    rows = fetch(raw, pb.CommandGetSqlInfo(info=wanted))[1].to_pylist()
    assert rows == [
        {"info_name": pb.FLIGHT_SQL_SERVER_READ_ONLY, "value": True},
        {"info_name": pb.SQL_IDENTIFIER_QUOTE_CHAR, "value": '"'},
        {"info_name": pb.FLIGHT_SQL_SERVER_TRANSACTION, "value": pb.SQL_SUPPORTED_TRANSACTION_NONE},
    ]


def test_xdbc_type_info_is_ordered_and_filterable(raw: flight.FlightClient) -> None:
    every = fetch(raw, pb.CommandGetXdbcTypeInfo())[1]
    keys = list(zip(every.column("data_type").to_pylist(), every.column("type_name").to_pylist(), strict=True))
    assert keys == sorted(keys)
    only = fetch(raw, pb.CommandGetXdbcTypeInfo(data_type=pb.XDBC_TIMESTAMP))[1]
    assert only.column("type_name").to_pylist() == ["timestamp with time zone", "timestamp without time zone"]
    assert set(only.column("sql_data_type").to_pylist()) == {pb.XDBC_DATETIME}


def test_adbc_get_objects_and_table_schema(conn: Any) -> None:
    objects = conn.adbc_get_objects(db_schema_filter="fsql", table_name_filter="par%").read_all().to_pylist()
    tables = [t for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]]
    assert [(t["table_name"], [c["column_name"] for c in t["table_columns"]]) for t in tables] == [
        ("parent", ["region", "code", "label"])]
    schema = conn.adbc_get_table_schema("typed", db_schema_filter="fsql")
    assert schema.names == ["i", "b", "t", "n", "ts", "d", "flag", "u", "j", "ints", "texts"]
    assert conn.adbc_get_table_types() == ["FOREIGN TABLE", "MATERIALIZED VIEW", "SYSTEM TABLE", "TABLE", "VIEW"]


def test_results_stream_as_several_batches(raw: flight.FlightClient) -> None:
    info = raw.get_flight_info(flight.FlightDescriptor.for_command(
        pack(pb.CommandStatementQuery(query="SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g"))))
    reader = raw.do_get(info.endpoints[0].ticket)
    sizes = [chunk.data.num_rows for chunk in reader]
    assert sum(sizes) == 300_000 and len(sizes) > 1
