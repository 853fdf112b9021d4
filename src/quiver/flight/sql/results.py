"""Metadata commands to their result schema and table: one dispatch for GetFlightInfo and DoGet."""

from __future__ import annotations

import pyarrow as pa
from google.protobuf.message import Message

from quiver.flight.sql import schemas, sqlinfo, xdbc
from quiver.flight.sql.catalog import Catalog
from quiver.flight.sql.protocol import pb
from quiver.flight.status import InvalidArgument

_SCHEMAS: dict[type[Message], pa.Schema] = {
    pb.CommandGetCatalogs: schemas.CATALOGS,
    pb.CommandGetDbSchemas: schemas.DB_SCHEMAS,
    pb.CommandGetTableTypes: schemas.TABLE_TYPES,
    pb.CommandGetPrimaryKeys: schemas.PRIMARY_KEYS,
    pb.CommandGetImportedKeys: schemas.FOREIGN_KEYS,
    pb.CommandGetExportedKeys: schemas.FOREIGN_KEYS,
    pb.CommandGetSqlInfo: schemas.SQL_INFO,
    pb.CommandGetXdbcTypeInfo: schemas.XDBC_TYPE_INFO,
}


def _optional(message: Message, field: str) -> str | None:
    return str(getattr(message, field)) if message.HasField(field) else None


def metadata_schema(command: Message) -> pa.Schema:
    if isinstance(command, pb.CommandGetTables):
        return schemas.TABLES_WITH_SCHEMA if command.include_schema else schemas.TABLES
    found = _SCHEMAS.get(type(command))
    if found is None:
        raise InvalidArgument(f"Quiver's Flight SQL does not support {type(command).__name__}")
    return found


def metadata_table(catalog: Catalog, command: Message) -> pa.Table:
    """The whole (small) result of a metadata command."""
    if isinstance(command, pb.CommandGetCatalogs):
        return catalog.catalogs()
    if isinstance(command, pb.CommandGetDbSchemas):
        return catalog.db_schemas(_optional(command, "catalog"), _optional(command, "db_schema_filter_pattern"))
    if isinstance(command, pb.CommandGetTables):
        return catalog.tables(_optional(command, "catalog"), _optional(command, "db_schema_filter_pattern"),
                              _optional(command, "table_name_filter_pattern"), list(command.table_types),
                              command.include_schema)
    if isinstance(command, pb.CommandGetTableTypes):
        return catalog.table_types()
    if isinstance(command, pb.CommandGetPrimaryKeys):
        return catalog.primary_keys(_optional(command, "catalog"), _optional(command, "db_schema"), command.table)
    if isinstance(command, pb.CommandGetImportedKeys | pb.CommandGetExportedKeys):
        return catalog.foreign_keys(_optional(command, "catalog"), _optional(command, "db_schema"), command.table,
                                    imported=isinstance(command, pb.CommandGetImportedKeys))
    if isinstance(command, pb.CommandGetSqlInfo):
        return sqlinfo.sql_info_table(catalog.server_version(), list(command.info))
    if isinstance(command, pb.CommandGetXdbcTypeInfo):
        return xdbc.type_info(command.data_type if command.HasField("data_type") else None)
    raise InvalidArgument(f"Quiver's Flight SQL does not support {type(command).__name__}")
