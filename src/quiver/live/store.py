"""The live tables: one in-memory DuckDB database, its writes, its snapshot reads and its size.

Why DuckDB (measured, docs/live.md): columnar, vectorised SQL over Arrow in and out without
a copy per row, MVCC so a read sees one committed state while the consumer writes, and a
buffer manager that reports its memory. Each live table stores an entity's columns under
their field names in the Arrow plane's types, enums as DuckDB ENUMs of the labels the server
knows (exported as dictionaries in label order, as the PostgreSQL path sends them; a label added
later fails the write, and the dataset is then not cached). Beside them, ``"quiver marks"`` holds each table's
watermark, written in the same transaction as the change, so a read takes the data and
the watermark from one snapshot.

Writes come from one consumer thread per table at a time (``lock``); reads use their own
cursors (DuckDB connections are not shared between threads).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from quiver.sql.live import literal, quote

MARKS = '"quiver marks"'


def stored_type(arrow: pa.DataType) -> pa.DataType:
    """How a column of the Arrow plane's type is kept: dictionaries (enums) as their text."""
    return pa.string() if pa.types.is_dictionary(arrow) else arrow


def stored_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, stored_type(f.type), nullable=True) for f in schema])


def to_stored(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    """A batch in the Arrow plane's schema, as it is kept (dictionaries decoded)."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    return table.cast(stored_schema(table.schema))


def to_answer(batch: pa.RecordBatch, schema: pa.Schema, labels: list[pa.Array | None]) -> pa.RecordBatch:
    """A batch read from DuckDB in the answer's exact schema; enum text becomes indices into ``labels``
    (the enum's labels in their order, as the PostgreSQL path's dictionaries)."""
    arrays = []
    for array, target, enum in zip(batch.columns, schema, labels, strict=True):
        if enum is not None and pa.types.is_dictionary(target.type) and pa.types.is_dictionary(array.type):
            indices = pc.cast(array.indices, target.type.index_type)  # a DuckDB ENUM: its labels, in order
            arrays.append(pa.DictionaryArray.from_arrays(indices, enum))
        elif enum is not None and pa.types.is_dictionary(target.type):
            indices = pc.cast(pc.index_in(array, value_set=enum), target.type.index_type)
            arrays.append(pa.DictionaryArray.from_arrays(indices, enum))
        else:
            arrays.append(array if array.type.equals(target.type) else pc.cast(array, target.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass
class Change:
    """One table's share of a batch of events, folded: the keys touched and the rows they now hold."""

    truncate: bool  # every row goes first (a TRUNCATE in the batch; ``keys``/``rows`` came after it)
    keys: pa.Table  # the key columns of every touched row (deleted, then re-inserted if in ``rows``)
    rows: pa.Table  # whole rows, in the stored schema


class Store:
    def __init__(self, memory_mb: int) -> None:
        # DuckDB's own limit above ours: our bound evicts a table before DuckDB refuses a write.
        # Insertion order is not kept: a LIMIT without ORDER BY then streams instead of sorting by rowid
        # (4x at 1M rows); the compiler asks for rowid order itself where it matters (an OFFSET).
        self.db = duckdb.connect(":memory:", config={"memory_limit": f"{max(64, memory_mb * 2)}MB",
                                                     "preserve_insertion_order": False})
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute(f"CREATE TABLE {MARKS} (name VARCHAR PRIMARY KEY, seq BIGINT, stream_seq BIGINT)")
        self.lock = threading.Lock()

    def create(self, name: str, schema: pa.Schema, enums: dict[str, tuple[str, ...]] | None = None) -> None:
        """An empty live table for ``schema``; ``enums`` maps a column to its labels, in order."""
        with self.lock:
            cursor = self.db.cursor()
            try:
                empty = stored_schema(schema).empty_table()
                cursor.register("quiver_new", empty)
                cursor.execute(f"DROP TABLE IF EXISTS {quote(name)}")
                cursor.execute(f"CREATE TABLE {quote(name)} AS SELECT * FROM quiver_new")
                cursor.unregister("quiver_new")
                for column, labels in (enums or {}).items():
                    members = ", ".join(literal(label) for label in labels)
                    cursor.execute(f"ALTER TABLE {quote(name)} ALTER {quote(column)} TYPE ENUM({members})")
                cursor.execute(f"DELETE FROM {MARKS} WHERE name = ?", [name])
            finally:
                cursor.close()

    def load(self, name: str, batch: pa.RecordBatch) -> None:
        """Append rows of the initial snapshot."""
        with self.lock:
            cursor = self.db.cursor()
            try:
                cursor.register("quiver_rows", to_stored(batch))
                cursor.execute(f"INSERT INTO {quote(name)} SELECT * FROM quiver_rows")
                cursor.unregister("quiver_rows")
            finally:
                cursor.close()

    def apply(self, name: str, key_columns: list[str], changes: list[Change], seq: int, stream_seq: int) -> None:
        """Every change in order and the new watermark, in one transaction."""
        with self.lock:
            cursor = self.db.cursor()
            try:
                cursor.execute("BEGIN TRANSACTION")
                for change in changes:
                    if change.truncate:
                        cursor.execute(f"DELETE FROM {quote(name)}")
                    if change.keys.num_rows:
                        cursor.register("quiver_keys", change.keys)
                        match = " AND ".join(f"{quote(name)}.{quote(k)} = quiver_keys.{quote(k)}" for k in key_columns)
                        cursor.execute(f"DELETE FROM {quote(name)} USING quiver_keys WHERE {match}")
                        cursor.unregister("quiver_keys")
                    if change.rows.num_rows:
                        cursor.register("quiver_rows", change.rows)
                        cursor.execute(f"INSERT INTO {quote(name)} SELECT * FROM quiver_rows")
                        cursor.unregister("quiver_rows")
                cursor.execute(f"INSERT OR REPLACE INTO {MARKS} VALUES (?, ?, ?)", [name, seq, stream_seq])
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()

    def mark(self, name: str, seq: int, stream_seq: int) -> None:
        self.apply(name, [], [], seq, stream_seq)

    def drop(self, name: str) -> None:
        with self.lock:
            cursor = self.db.cursor()
            try:
                cursor.execute(f"DROP TABLE IF EXISTS {quote(name)}")
                cursor.execute(f"DELETE FROM {MARKS} WHERE name = ?", [name])
            finally:
                cursor.close()

    def rows(self, name: str) -> int:
        cursor = self.db.cursor()
        try:
            found = cursor.execute(f"SELECT count(*) FROM {quote(name)}").fetchall()
            return int(found[0][0]) if found else 0
        finally:
            cursor.close()

    def memory_bytes(self) -> int:
        cursor = self.db.cursor()
        try:
            found = cursor.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchall()
            return int(found[0][0]) if found else 0
        finally:
            cursor.close()

    def read(self, name: str, sql: str, params: list[Any], batch_rows: int) -> tuple[int, Iterator[pa.RecordBatch]]:
        """(watermark, batches) of one query, both from one snapshot; closing the iterator ends it."""
        cursor = self.db.cursor()
        try:
            cursor.execute("BEGIN TRANSACTION")
            found = cursor.execute(f"SELECT seq FROM {MARKS} WHERE name = ?", [name]).fetchall()
            reader = cursor.sql(sql, params=params).to_arrow_reader(batch_rows)
        except BaseException:
            cursor.close()
            raise
        return (int(found[0][0]) if found else 0), _batches(cursor, reader)


def _batches(cursor: Any, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    finally:
        cursor.close()  # ends the read transaction
