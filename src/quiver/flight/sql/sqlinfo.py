"""GetSqlInfo: what this server honestly supports, as the (info_name, dense_union value) rows of the spec."""

from __future__ import annotations

import pyarrow as pa

from quiver.flight.sql import schemas
from quiver.flight.sql.protocol import pb

# union child ids in schemas.SQL_INFO_VALUE order
_STRING, _BOOL, _BIGINT, _BITMASK = 0, 1, 2, 3


def info(server_version: str) -> dict[int, tuple[int, object]]:
    """Each SqlInfo id this server answers, with its union child and value."""
    return {
        pb.FLIGHT_SQL_SERVER_NAME: (_STRING, "Quiver (PostgreSQL)"),
        pb.FLIGHT_SQL_SERVER_VERSION: (_STRING, server_version),
        pb.FLIGHT_SQL_SERVER_ARROW_VERSION: (_STRING, pa.__version__),
        pb.FLIGHT_SQL_SERVER_READ_ONLY: (_BOOL, True),
        pb.FLIGHT_SQL_SERVER_SQL: (_BOOL, True),
        pb.FLIGHT_SQL_SERVER_SUBSTRAIT: (_BOOL, False),
        pb.FLIGHT_SQL_SERVER_TRANSACTION: (_BITMASK, pb.SQL_SUPPORTED_TRANSACTION_NONE),
        pb.FLIGHT_SQL_SERVER_CANCEL: (_BOOL, True),
        pb.SQL_DDL_CATALOG: (_BOOL, False),
        pb.SQL_DDL_SCHEMA: (_BOOL, False),
        pb.SQL_DDL_TABLE: (_BOOL, False),
        pb.SQL_IDENTIFIER_CASE: (_BITMASK, pb.SQL_CASE_SENSITIVITY_LOWERCASE),
        pb.SQL_IDENTIFIER_QUOTE_CHAR: (_STRING, '"'),
        pb.SQL_ALL_TABLES_ARE_SELECTABLE: (_BOOL, False),
        pb.SQL_SEARCH_STRING_ESCAPE: (_STRING, "\\"),
        pb.SQL_SUPPORTS_COLUMN_ALIASING: (_BOOL, True),
        pb.SQL_NULL_PLUS_NULL_IS_NULL: (_BOOL, True),
        pb.SQL_SUPPORTS_TABLE_CORRELATION_NAMES: (_BOOL, True),
        pb.SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY: (_BOOL, True),
        pb.SQL_SUPPORTS_ORDER_BY_UNRELATED: (_BOOL, True),
        pb.SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE: (_BOOL, True),
        pb.SQL_SUPPORTS_NON_NULLABLE_COLUMNS: (_BOOL, True),
        pb.SQL_SUPPORTED_GRAMMAR: (_BITMASK, 1 << pb.SQL_CORE_GRAMMAR | 1 << pb.SQL_MINIMUM_GRAMMAR),
        pb.SQL_ANSI92_SUPPORTED_LEVEL: (_BITMASK, 1 << pb.ANSI92_ENTRY_SQL),
        pb.SQL_SCHEMA_TERM: (_STRING, "schema"),
        pb.SQL_CATALOG_TERM: (_STRING, "database"),
        pb.SQL_PROCEDURE_TERM: (_STRING, "function"),
        pb.SQL_MAX_COLUMN_NAME_LENGTH: (_BIGINT, 63),
        pb.SQL_MAX_TABLE_NAME_LENGTH: (_BIGINT, 63),
        pb.SQL_TRANSACTIONS_SUPPORTED: (_BOOL, False),
    }


def sql_info_table(server_version: str, wanted: list[int]) -> pa.Table:
    """The rows for ``wanted`` (every known id when empty), in the order asked; unknown ids are left out."""
    known = info(server_version)
    ids = [i for i in wanted if i in known] if wanted else sorted(known)
    children: list[list[object]] = [[] for _ in schemas.SQL_INFO_VALUE]
    type_ids, offsets = [], []
    for i in ids:
        child, value = known[i]
        type_ids.append(child)
        offsets.append(len(children[child]))
        children[child].append(value)
    arrays = [pa.array(values, type=field.type) for values, field in zip(children, schemas.SQL_INFO_VALUE,
                                                                      strict=True)]
    # from_buffers (not UnionArray.from_dense) keeps the children's declared non-nullability.
    union = pa.Array.from_buffers(schemas.SQL_INFO_VALUE, len(ids), [
        None, pa.array(type_ids, pa.int8()).buffers()[1], pa.array(offsets, pa.int32()).buffers()[1]],
        children=arrays)
    return pa.Table.from_arrays([pa.array(ids, pa.uint32()), union], schema=schemas.SQL_INFO)
