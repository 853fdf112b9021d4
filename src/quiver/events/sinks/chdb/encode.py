"""A batch → what chDB inserts: an Arrow table in the table's column order, read by ``Python(table)``.

The columns are those the ClickHouse sink posts as ArrowStream to a modern server
(``clickhouse.encode.arrow_columns``); chDB reads them straight from memory.
"""

from __future__ import annotations

import pyarrow as pa

from quiver.events.sinks.clickhouse.ddl import insert_sql as table_insert_sql
from quiver.events.sinks.clickhouse.encode import arrow_columns


def insert_table(batch: pa.RecordBatch) -> pa.Table:
    """The batch as the table ``insert_sql`` reads (``COLUMNS`` order, ``changed`` never NULL)."""
    return pa.Table.from_batches([arrow_columns(batch)])


def insert_sql(database: str) -> str:
    """The INSERT of ``insert_table``'s result: chDB finds it as the caller's local variable ``table``."""
    return f"{table_insert_sql(database)} SELECT * FROM Python(table)"
