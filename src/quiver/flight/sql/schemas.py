"""The exact Arrow schemas FlightSql.proto defines for each metadata command's result."""

from __future__ import annotations

import pyarrow as pa

CATALOGS = pa.schema([pa.field("catalog_name", pa.utf8(), False)])
DB_SCHEMAS = pa.schema([pa.field("catalog_name", pa.utf8()), pa.field("db_schema_name", pa.utf8(), False)])
TABLES = pa.schema([
    pa.field("catalog_name", pa.utf8()),
    pa.field("db_schema_name", pa.utf8()),
    pa.field("table_name", pa.utf8(), False),
    pa.field("table_type", pa.utf8(), False),
])
TABLES_WITH_SCHEMA = TABLES.append(pa.field("table_schema", pa.binary(), False))
TABLE_TYPES = pa.schema([pa.field("table_type", pa.utf8(), False)])
PRIMARY_KEYS = pa.schema([
    pa.field("catalog_name", pa.utf8()),
    pa.field("db_schema_name", pa.utf8()),
    pa.field("table_name", pa.utf8(), False),
    pa.field("column_name", pa.utf8(), False),
    pa.field("key_name", pa.utf8()),
    pa.field("key_sequence", pa.int32(), False),
])
FOREIGN_KEYS = pa.schema([
    pa.field("pk_catalog_name", pa.utf8()),
    pa.field("pk_db_schema_name", pa.utf8()),
    pa.field("pk_table_name", pa.utf8(), False),
    pa.field("pk_column_name", pa.utf8(), False),
    pa.field("fk_catalog_name", pa.utf8()),
    pa.field("fk_db_schema_name", pa.utf8()),
    pa.field("fk_table_name", pa.utf8(), False),
    pa.field("fk_column_name", pa.utf8(), False),
    pa.field("key_sequence", pa.int32(), False),
    pa.field("fk_key_name", pa.utf8()),
    pa.field("pk_key_name", pa.utf8()),
    pa.field("update_rule", pa.uint8(), False),
    pa.field("delete_rule", pa.uint8(), False),
])
XDBC_TYPE_INFO = pa.schema([
    pa.field("type_name", pa.utf8(), False),
    pa.field("data_type", pa.int32(), False),
    pa.field("column_size", pa.int32()),
    pa.field("literal_prefix", pa.utf8()),
    pa.field("literal_suffix", pa.utf8()),
    pa.field("create_params", pa.list_(pa.field("item", pa.utf8(), False))),
    pa.field("nullable", pa.int32(), False),
    pa.field("case_sensitive", pa.bool_(), False),
    pa.field("searchable", pa.int32(), False),
    pa.field("unsigned_attribute", pa.bool_()),
    pa.field("fixed_prec_scale", pa.bool_(), False),
    pa.field("auto_increment", pa.bool_()),
    pa.field("local_type_name", pa.utf8()),
    pa.field("minimum_scale", pa.int32()),
    pa.field("maximum_scale", pa.int32()),
    pa.field("sql_data_type", pa.int32(), False),
    pa.field("datetime_subcode", pa.int32()),
    pa.field("num_prec_radix", pa.int32()),
    pa.field("interval_precision", pa.int32()),
])
# The union's children are not nullable, as in arrow-go's and arrow-java's reference schemas.
SQL_INFO_VALUE = pa.dense_union([
    pa.field("string_value", pa.utf8(), False),
    pa.field("bool_value", pa.bool_(), False),
    pa.field("bigint_value", pa.int64(), False),
    pa.field("int32_bitmask", pa.int32(), False),
    pa.field("string_list", pa.list_(pa.field("item", pa.utf8())), False),
    pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.field("item", pa.int32()))), False),
])
SQL_INFO = pa.schema([pa.field("info_name", pa.uint32(), False), pa.field("value", SQL_INFO_VALUE, False)])
