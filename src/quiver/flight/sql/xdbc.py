"""GetXdbcTypeInfo: the PostgreSQL types a client can declare, in XDBC (ODBC/JDBC) terms.

A fixed table: PostgreSQL's built-in types do not change per database. Ordered by data_type, then
type_name, as the spec asks. Datetime types use the generic sql_data_type 9 plus a subcode.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa

from quiver.flight.sql import schemas
from quiver.flight.sql.protocol import pb


class XdbcType(NamedTuple):
    name: str
    data_type: int
    size: int | None
    quoted: bool  # literals written as '...'
    params: list[str] | None = None
    numeric: bool = False
    fixed: bool = False
    scale: tuple[int, int] | None = None
    sql_data_type: int | None = None
    subcode: int | None = None
    radix: int | None = None


_TYPES = [
    XdbcType("bigint", pb.XDBC_BIGINT, 19, False, numeric=True, fixed=True, scale=(0, 0), radix=10),
    XdbcType("bytea", pb.XDBC_LONGVARBINARY, None, True),
    XdbcType("text", pb.XDBC_LONGVARCHAR, None, True),
    XdbcType("character", pb.XDBC_CHAR, 10485760, True, ["length"]),
    XdbcType("numeric", pb.XDBC_NUMERIC, 1000, False, ["precision", "scale"], numeric=True, scale=(0, 1000),
             radix=10),
    XdbcType("integer", pb.XDBC_INTEGER, 10, False, numeric=True, fixed=True, scale=(0, 0), radix=10),
    XdbcType("smallint", pb.XDBC_SMALLINT, 5, False, numeric=True, fixed=True, scale=(0, 0), radix=10),
    XdbcType("real", pb.XDBC_REAL, 24, False, numeric=True, radix=2),
    XdbcType("double precision", pb.XDBC_DOUBLE, 53, False, numeric=True, radix=2),
    XdbcType("character varying", pb.XDBC_VARCHAR, 10485760, True, ["length"]),
    XdbcType("date", pb.XDBC_DATE, 10, True, sql_data_type=pb.XDBC_DATETIME, subcode=pb.XDBC_SUBCODE_DATE),
    XdbcType("time without time zone", pb.XDBC_TIME, 15, True, ["precision"], sql_data_type=pb.XDBC_DATETIME,
             subcode=pb.XDBC_SUBCODE_TIME),
    XdbcType("timestamp with time zone", pb.XDBC_TIMESTAMP, 32, True, ["precision"],
             sql_data_type=pb.XDBC_DATETIME, subcode=pb.XDBC_SUBCODE_TIMESTAMP_WITH_TIMEZONE),
    XdbcType("timestamp without time zone", pb.XDBC_TIMESTAMP, 26, True, ["precision"],
             sql_data_type=pb.XDBC_DATETIME, subcode=pb.XDBC_SUBCODE_TIMESTAMP),
    XdbcType("boolean", pb.XDBC_BIT, 1, False),
    XdbcType("uuid", pb.XDBC_CHAR, 36, True),
]


def type_info(data_type: int | None) -> pa.Table:
    """Every type (or those of ``data_type``), ordered by data_type then type_name."""
    chosen = sorted((t for t in _TYPES if data_type is None or t.data_type == data_type),
                    key=lambda t: (t.data_type, t.name))
    rows = [{
        "type_name": t.name, "data_type": t.data_type, "column_size": t.size,
        "literal_prefix": "'" if t.quoted else None, "literal_suffix": "'" if t.quoted else None,
        "create_params": t.params, "nullable": pb.NULLABILITY_NULLABLE,
        "case_sensitive": t.quoted and not t.numeric and t.sql_data_type is None and t.name != "bytea",
        "searchable": pb.SEARCHABLE_FULL, "unsigned_attribute": False if t.numeric else None,
        "fixed_prec_scale": t.fixed, "auto_increment": False if t.numeric else None, "local_type_name": t.name,
        "minimum_scale": t.scale[0] if t.scale else None, "maximum_scale": t.scale[1] if t.scale else None,
        "sql_data_type": t.sql_data_type if t.sql_data_type is not None else t.data_type,
        "datetime_subcode": t.subcode, "num_prec_radix": t.radix, "interval_precision": None,
    } for t in chosen]
    return pa.Table.from_pylist(rows, schemas.XDBC_TYPE_INFO)
