"""Connections to PostgreSQL: ADBC for streamed reads, psycopg for writes and checks.

ADBC reads results with binary COPY straight into Arrow buffers, without a Python
object per row; psycopg is async-native and binds parameters, which mutations need.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
from adbc_driver_postgresql import StatementOptions
from psycopg_pool import AsyncConnectionPool

from quiver.errors import Unavailable


class PoolExhausted(Unavailable):
    """Every pooled connection stayed busy for the acquire timeout (DATABASE_UNAVAILABLE: retry)."""


class AdbcPool:
    """A small blocking pool of ADBC connections (used from worker threads).

    ``timeout`` bounds the wait for a free connection, so an exhausted pool answers
    "unavailable" instead of hanging every plane and the health check.
    """

    def __init__(self, url: str, size: int, timeout: float = 5.0) -> None:
        self.url = url
        self.size = size
        self.timeout = timeout
        self._idle: queue.LifoQueue[adbc.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    def acquire(self) -> adbc.Connection:
        """Borrow a connection (waits up to ``timeout`` while all are in use); give it back with ``release``."""
        if not self._slots.acquire(timeout=self.timeout):
            raise PoolExhausted(f"all {self.size} database connections stayed busy for {self.timeout:g}s")
        try:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                return adbc.connect(self.url)
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: adbc.Connection, reusable: bool) -> None:
        """Return a connection; one that saw an error is closed, not reused."""
        try:
            if reusable:
                self._idle.put(conn)
            else:
                _close_quietly(conn)
        finally:
            self._slots.release()

    @contextmanager
    def connection(self) -> Iterator[adbc.Connection]:
        """Borrow a connection for a block; it is discarded if the block raised."""
        conn = self.acquire()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            self.release(conn, ok)

    def close(self) -> None:
        while True:
            try:
                _close_quietly(self._idle.get_nowait())
            except queue.Empty:
                return


def _close_quietly(conn: adbc.Connection) -> None:
    with contextlib.suppress(Exception):  # a broken connection may fail to close; it is gone either way
        conn.close()


def set_batch_bytes(cursor: Any, batch_bytes: int) -> None:
    cursor.adbc_statement.set_options(**{StatementOptions.BATCH_SIZE_HINT_BYTES.value: str(batch_bytes)})


class Database:
    """Both pools for one database URL."""

    def __init__(self, url: str, pool_size: int = 8, pool_timeout: float = 5.0) -> None:
        self.url = url
        self.adbc = AdbcPool(url, pool_size, pool_timeout)
        self.psycopg = AsyncConnectionPool(url, min_size=1, max_size=pool_size, open=False)

    async def open(self) -> None:
        await self.psycopg.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.psycopg.close()
        self.adbc.close()

    async def healthy(self) -> bool:
        try:
            async with self.psycopg.connection(timeout=5) as conn:
                await conn.execute("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure means unhealthy
            return False
        return True
