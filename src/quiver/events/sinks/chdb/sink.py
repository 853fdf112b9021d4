"""``ChdbSink``: the modern ClickHouse engine in-process, the zero-configuration analytics sink.

Same table semantics as the ClickHouse server sink (``ddl``): a repeated event collapses under
``FINAL``. Arrow goes in directly (``INSERT ... SELECT * FROM Python(table)``, ``encode``).
chDB allows one data path per process, and a path open in one process cannot be opened by
another: other processes read the sink with ``quiver events read --sink chdb`` while its
consumer is stopped.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from quiver.events.sinks.base import PermanentError, RetryableError, VisibleEvent, by_seq, visible_rows
from quiver.events.sinks.chdb import ddl
from quiver.events.sinks.chdb.encode import insert_sql, insert_table
from quiver.events.sinks.chdb.errors import ERRORS, Unavailable, classify
from quiver.events.sinks.clickhouse.ddl import count_visible_sql, visible_events_sql

_SESSIONS: dict[str, Any] = {}
_LOCK = threading.Lock()


def session(path: Path) -> Any:
    """The process's one chDB session (chDB supports a single data path per process)."""
    from chdb import session as chdb_session

    key = str(path.resolve())
    with _LOCK:
        if key not in _SESSIONS:
            if _SESSIONS:
                raise Unavailable(f"chDB is already open at {next(iter(_SESSIONS))}; one path per process")
            path.mkdir(parents=True, exist_ok=True)
            try:
                _SESSIONS[key] = chdb_session.Session(key)  # type: ignore[no-untyped-call]
            except RuntimeError as error:
                raise Unavailable(f"cannot open chDB at {key} (is another process, such as its consumer,"
                                   f" using it?): {error}") from error
        return _SESSIONS[key]


class ChdbSink:
    """Events → ``{database}.events`` in the chDB data path ``path``."""

    name = "chdb"

    def __init__(self, path: Path, database: str = ddl.DATABASE) -> None:
        self.path = path
        self.database = database
        self._statements = ddl.setup_statements(database)  # checks the name
        self._lock = threading.Lock()

    def _query(self, sql: str, fmt: str = "CSV") -> Any:
        with self._lock:
            return session(self.path).query(sql, fmt)

    async def setup(self) -> None:
        """Create the database and the table; add ``occurred_at_us`` to an older table (idempotent)."""
        try:
            for statement in self._statements:
                await asyncio.to_thread(self._query, statement)
        except ERRORS as error:
            raise classify(error, writing=False) from error

    async def write(self, batch: pa.RecordBatch) -> None:
        try:
            table = insert_table(batch)
        except (ValueError, KeyError, pa.ArrowException) as error:
            raise PermanentError(f"cannot encode the batch for chDB: {error}") from error
        try:
            await asyncio.to_thread(self._insert, table)
        except ERRORS as error:
            raise classify(error) from error

    def _insert(self, table: pa.Table) -> None:
        with self._lock:  # ``Python(table)`` reads the local variable ``table``
            session(self.path).query(insert_sql(self.database))

    def query_arrow(self, sql: str) -> pa.Table:
        """Run a query and return Arrow (for tests, benchmarks and the demo)."""
        result = self._query(sql, "ArrowTable")
        assert isinstance(result, pa.Table)
        return result

    async def _read(self, sql: str) -> pa.Table:
        if not self.path.exists():  # a read creates nothing
            raise RetryableError(f"no chDB data at {self.path} (the sink has not run yet?)")
        try:
            return await asyncio.to_thread(self.query_arrow, sql)
        except ERRORS as error:
            raise classify(error, writing=False) from error

    async def visible_events(self) -> list[VisibleEvent]:
        """Every visible event (through FINAL) as a ``VisibleEvent``, by (seq, event_id)."""
        return by_seq(visible_rows(await self._read(visible_events_sql(self.database))))

    async def count_visible(self) -> int:
        """Distinct events as readers see them (through FINAL)."""
        table = await self._read(count_visible_sql(self.database))
        return int(table.column(0)[0].as_py())

    async def close(self) -> None:
        return None
