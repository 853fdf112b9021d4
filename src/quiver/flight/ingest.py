"""DoPut ingest: an Arrow stream into a table through INSERT, so triggers fire.

The stream lands in a temporary table with ADBC's bulk ingest (binary COPY), then
one ``INSERT ... SELECT`` casts each column to the table's type. Columns match by
GraphQL field name or column name; one transaction, all or nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyarrow as pa

from quiver.db import AdbcPool
from quiver.schema.model import Column, Entity, quote_ident


class IngestError(ValueError):
    """The stream does not fit the table."""


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionaries and extension types as their plain value types (what COPY can take)."""
    arrays, fields = [], []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_dictionary(field.type):
            array = array.cast(field.type.value_type)
        elif isinstance(field.type, pa.ExtensionType):
            array = array.storage
        if pa.types.is_decimal(array.type) or pa.types.is_large_string(array.type):
            array = array.cast(pa.string())
        arrays.append(array)
        fields.append(pa.field(field.name, array.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def target_columns(entity: Entity, schema: pa.Schema) -> list[Column]:
    columns = []
    for field in schema:
        match = entity.columns.get(field.name)
        if match is None:
            match = next((c for c in entity.columns.values() if c.field_name == field.name), None)
        if match is None:
            raise IngestError(f"{entity.name} has no column {field.name!r}")
        if match.generated:
            raise IngestError(f"{entity.name}.{match.name} is generated; it cannot be written")
        columns.append(match)
    return columns


def ingest(pool: AdbcPool, entity: Entity, reader: pa.RecordBatchReader, timeout_ms: int) -> int:
    columns = target_columns(entity, reader.schema)

    def plain_batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            yield _plain(batch)

    batches = plain_batches()
    try:
        head = next(batches)
    except StopIteration:
        return 0
    stream = pa.RecordBatchReader.from_batches(head.schema, _chain(head, batches))
    staged = "quiver_ingest"
    conn = pool.acquire()
    ok = False
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT set_config('statement_timeout', $1, true)", (str(timeout_ms),))
        cursor.fetchall()
        cursor.execute(f"DROP TABLE IF EXISTS {staged}")
        cursor.adbc_ingest(staged, stream, mode="create", temporary=True)
        names = ", ".join(quote_ident(c.name) for c in columns)
        casts = ", ".join(
            f"CAST({quote_ident(f.name)} AS {c.type.sql})" for f, c in zip(head.schema, columns, strict=True)
        )
        cursor.execute(f"INSERT INTO {entity.qualified} ({names}) SELECT {casts} FROM pg_temp.{staged}")
        count = cursor.rowcount
        cursor.execute(f"DROP TABLE pg_temp.{staged}")
        conn.commit()
        cursor.close()
        ok = True
        return int(count)
    finally:
        if not ok:
            with contextlib.suppress(Exception):  # the connection is discarded anyway
                conn.rollback()
        pool.release(conn, ok)


def _chain(head: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield head
    yield from rest
