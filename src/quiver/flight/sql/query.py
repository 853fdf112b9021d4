"""Client SQL in a read-only transaction with a statement timeout, read as Arrow through ADBC.

Parameters are bound by PostgreSQL ($1, $2, ...), never spliced into the text. The first batch is
read before the stream is handed out, so that errors PostgreSQL reports at once (a timeout, a write
refused) become the RPC's status rather than a broken stream.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Generator
from typing import Any

import pyarrow as pa

from quiver.db import AdbcPool, set_batch_bytes
from quiver.flight.sql.placeholders import cast_placeholders
from quiver.flight.sql.plain import plain_batch, plain_schema

# Parameter types a string binds to as it is (ADBC sends strings as text).
_TEXT_TYPES = frozenset({"text", "character varying", "character", "name", "unknown"})


class TooManyRows(ValueError):
    """Parameters of several rows (a batch of executions) bound to a query, which answers one result."""


class ReadOnly:
    """One borrowed connection inside ``BEGIN READ ONLY`` with ``SET LOCAL statement_timeout``."""

    def __init__(self, pool: AdbcPool, timeout_ms: int, batch_bytes: int) -> None:
        self.pool = pool
        self.timeout_ms = timeout_ms
        self.batch_bytes = batch_bytes

    def _begin(self) -> tuple[Any, Any]:
        conn = self.pool.acquire()
        try:
            cursor = conn.cursor()
            set_batch_bytes(cursor, self.batch_bytes)
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute("SELECT set_config('statement_timeout', $1, true)", (str(self.timeout_ms),))
            cursor.fetchall()
        except BaseException:
            self.pool.release(conn, False)
            raise
        return conn, cursor

    def _end(self, conn: Any, cursor: Any, ok: bool) -> None:
        try:
            cursor.close()
            conn.rollback()
        except Exception:  # noqa: BLE001 - a connection that fails to roll back is not reused
            ok = False
        self.pool.release(conn, ok)

    def schema(self, sql: str) -> pa.Schema:
        """The result schema PostgreSQL describes for ``sql``, without running it."""
        conn, cursor = self._begin()
        ok = False
        try:
            found = plain_schema(cursor.adbc_execute_schema(sql))
            ok = True
            return found
        finally:
            self._end(conn, cursor, ok)

    def parameter_schema(self, sql: str) -> tuple[pa.Schema, tuple[str, ...]]:
        """The parameters ``sql`` takes, as PostgreSQL infers them (names $1, $2, ...), and their SQL types."""
        conn, cursor = self._begin()
        ok = False
        try:
            found = cursor.adbc_prepare(sql)
            schema = plain_schema(found) if found is not None else pa.schema([])
            types = _parameter_types(cursor, sql) if len(schema) else ()
            ok = True
            return schema, types
        finally:
            self._end(conn, cursor, ok)

    def update(self, sql: str, parameters: pa.RecordBatch | None, types: tuple[str, ...] = ()) -> int:
        """Runs a statement without a result in the read-only transaction; its row count (-1: unknown)."""
        conn, cursor = self._begin()
        ok = False
        try:
            _execute(cursor, sql, parameters, types)
            ok = True
            return int(cursor.rowcount)
        finally:
            self._end(conn, cursor, ok)

    def batches(self, sql: str, parameters: pa.RecordBatch | None,
                started: Callable[[Callable[[], None]], None] | None = None, types: tuple[str, ...] = (),
                ) -> tuple[pa.Schema, Generator[pa.RecordBatch]]:
        """The result's schema and its batches; the statement starts before this returns (errors raise here).

        ``started`` receives the function that cancels the statement, from any thread, before it runs.
        ``types`` are the parameters' SQL types (from ``parameter_schema``): strings bound to other
        types are cast to them in the SQL (see placeholders.py).
        """
        conn, cursor = self._begin()
        try:
            if started is not None:
                started(cursor.adbc_cancel)
            _execute(cursor, sql, parameters, types)
            reader = cursor.fetch_record_batch()
            first = _first(reader)
        except BaseException:
            self._end(conn, cursor, False)
            raise
        schema = plain_schema(reader.schema)
        return schema, self._stream(conn, cursor, reader, schema, first)

    def _stream(self, conn: Any, cursor: Any, reader: Any, schema: pa.Schema,
                first: pa.RecordBatch | None) -> Generator[pa.RecordBatch]:
        finished = False
        try:
            if first is not None and first.num_rows:
                yield plain_batch(first, schema)
            if first is not None:
                for batch in reader:
                    if batch.num_rows:
                        yield plain_batch(batch, schema)
            finished = True
        finally:
            if not finished:
                with contextlib.suppress(Exception):  # the connection is discarded below anyway
                    cursor.adbc_cancel()
            try:
                reader.close()
            except Exception:  # noqa: BLE001
                finished = False
            self._end(conn, cursor, finished)


def _execute(cursor: Any, sql: str, parameters: pa.RecordBatch | None, types: tuple[str, ...]) -> None:
    """``sql`` with one row of ``parameters`` bound by PostgreSQL (strings cast to their inferred types)."""
    if parameters is None or not parameters.num_columns:
        cursor.execute(sql)
        return
    if parameters.num_rows != 1:
        raise TooManyRows(f"a statement binds one row of parameters, not {parameters.num_rows}")
    cursor.execute(cast_placeholders(sql, _string_casts(parameters, types)), parameters)


def _parameter_types(cursor: Any, sql: str) -> tuple[str, ...]:
    """The types PostgreSQL infers for ``sql``'s parameters (a SQL PREPARE; () when it cannot prepare it)."""
    name = f"quiver_parameters_{secrets.token_hex(8)}"
    cursor.execute("SAVEPOINT quiver_parameters")
    try:
        cursor.execute(f"PREPARE {name} AS {sql}")
    except Exception:  # noqa: BLE001 - not every statement PostgreSQL describes is PREPARE-able
        cursor.execute("ROLLBACK TO SAVEPOINT quiver_parameters")
        return ()
    try:
        cursor.execute("SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = $1", (name,))
        row = cursor.fetchone()
    finally:
        cursor.execute(f"DEALLOCATE {name}")  # prepared statements outlive the transaction
    return tuple(row[0]) if row and row[0] is not None else ()


def _string_casts(parameters: pa.RecordBatch, types: tuple[str, ...]) -> dict[int, str]:
    """``$n`` → SQL type for each string parameter whose inferred type is not a text type."""
    casts = {}
    for index, field in enumerate(parameters.schema):
        if index < len(types) and types[index] not in _TEXT_TYPES and (
                pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            casts[index + 1] = types[index]
    return casts


def _first(reader: Any) -> pa.RecordBatch | None:
    try:
        batch: pa.RecordBatch = reader.read_next_batch()
    except StopIteration:
        return None
    return batch
