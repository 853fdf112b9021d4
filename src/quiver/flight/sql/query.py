"""Client SQL in a read-only transaction with a statement timeout, read as Arrow through ADBC.

Parameters are bound by PostgreSQL ($1, $2, ...), never spliced into the text. The first batch is
read before the stream is handed out, so that errors PostgreSQL reports at once (a timeout, a write
refused) become the RPC's status rather than a broken stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from typing import Any

import pyarrow as pa

from quiver.db import AdbcPool, set_batch_bytes
from quiver.flight.sql.plain import plain_batch, plain_schema


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

    def parameter_schema(self, sql: str) -> pa.Schema:
        """The parameters ``sql`` takes, as PostgreSQL infers them (names $1, $2, ...)."""
        conn, cursor = self._begin()
        ok = False
        try:
            found = cursor.adbc_prepare(sql)
            ok = True
            return plain_schema(found) if found is not None else pa.schema([])
        finally:
            self._end(conn, cursor, ok)

    def batches(self, sql: str, parameters: pa.RecordBatch | None,
                started: Callable[[Callable[[], None]], None] | None = None,
                ) -> tuple[pa.Schema, Generator[pa.RecordBatch]]:
        """The result's schema and its batches; the statement starts before this returns (errors raise here).

        ``started`` receives the function that cancels the statement, from any thread, before it runs.
        """
        conn, cursor = self._begin()
        try:
            if started is not None:
                started(cursor.adbc_cancel)
            if parameters is not None and parameters.num_columns:
                if parameters.num_rows != 1:
                    raise TooManyRows(f"a query binds one row of parameters, not {parameters.num_rows}")
                cursor.execute(sql, parameters)
            else:
                cursor.execute(sql)
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


def _first(reader: Any) -> pa.RecordBatch | None:
    try:
        batch: pa.RecordBatch = reader.read_next_batch()
    except StopIteration:
        return None
    return batch
