"""One read-only transaction on an ADBC connection, driven from a worker thread.

Every method blocks; callers run them with ``anyio.to_thread``. Results arrive as
Arrow string batches whose value buffer is already the JSON text of many rows,
so a chunk is one buffer copy, not a Python object per row.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from quiver.arrow.convert import concatenated_text
from quiver.db import AdbcPool, set_batch_bytes
from quiver.sql.json import SESSION_SETTINGS


class ReadSession:
    def __init__(self, pool: AdbcPool, *, timeout_ms: int, batch_bytes: int) -> None:
        self.pool = pool
        self.timeout_ms = timeout_ms
        self.batch_bytes = batch_bytes
        self.conn: Any = None
        self.cursor: Any = None
        self.reader: pa.RecordBatchReader | None = None
        self.failed = False

    def begin(self, settings: list[tuple[str, str]]) -> None:
        """Start a repeatable-read, read-only transaction carrying ``settings``."""
        self.conn = self.pool.acquire()
        try:
            self.cursor = self.conn.cursor()
            set_batch_bytes(self.cursor, self.batch_bytes)
            self.cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            pairs = [*SESSION_SETTINGS, ("statement_timeout", str(self.timeout_ms)), *settings]
            calls = ", ".join(f"set_config(${2 * i + 1}, ${2 * i + 2}, true)" for i in range(len(pairs)))
            self.cursor.execute(f"SELECT {calls}", tuple(v for pair in pairs for v in pair))
            self.cursor.fetchall()
        except BaseException:
            self.failed = True
            raise

    def stream(self, sql: str) -> None:
        """Run ``sql`` (one text column) and keep its batch reader open."""
        try:
            self.cursor.execute(sql)
            self.reader = self.cursor.fetch_record_batch()
        except BaseException:
            self.failed = True
            raise

    def next_batch(self) -> pa.RecordBatch | None:
        """The next record batch as ADBC read it, or None at the end."""
        assert self.reader is not None
        try:
            return self.reader.read_next_batch()
        except StopIteration:
            self.reader = None
            return None
        except BaseException:
            self.failed = True
            raise

    def next_chunk(self) -> bytes | None:
        """The concatenated text of the next batch, or None at the end."""
        batch = self.next_batch()
        return None if batch is None else concatenated_text(batch.column(0))

    def cancel(self) -> None:
        """Ask PostgreSQL to stop the running statement (client went away)."""
        if self.cursor is not None and self.reader is not None:
            try:
                self.cursor.adbc_cancel()
            finally:
                self.failed = True

    def end(self) -> None:
        """Roll back and give the connection back (closed if anything failed)."""
        if self.conn is None:
            return
        try:
            if self.reader is not None:
                self.reader.close()
            if self.cursor is not None:
                self.cursor.close()
            self.conn.rollback()
        except Exception:  # noqa: BLE001 - a failed cleanup means the connection is not reused
            self.failed = True
        finally:
            self.pool.release(self.conn, reusable=not self.failed)
            self.conn = self.cursor = self.reader = None
