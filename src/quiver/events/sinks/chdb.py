"""chDB: the modern ClickHouse engine in-process, the zero-configuration analytics sink.

Same table semantics as the ClickHouse server sink: a ReplacingMergeTree keyed on
the event, ``seq`` as version, so a repeated event collapses. Arrow goes in directly
(``INSERT ... SELECT * FROM Python(table)``). chDB allows one data path per process.
Query pattern: ``SELECT ... FROM quiver.events FINAL``.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from quiver.events.sinks.base import PermanentError, RetryableError

TABLE = "quiver.events"
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    event_id    UUID,
    seq         Int64,
    entity      LowCardinality(String),
    entity_id   String,
    op          LowCardinality(String),
    occurred_at DateTime64(6, 'UTC'),
    data        String,
    changed     Array(String),
    actor       Nullable(String),
    tenant_id   Nullable(String)
) ENGINE = ReplacingMergeTree(seq)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (entity, seq, event_id)
"""

_SESSIONS: dict[str, Any] = {}
_LOCK = threading.Lock()


def session(path: Path) -> Any:
    """The process's one chDB session (chDB supports a single data path per process)."""
    from chdb import session as chdb_session

    key = str(path.resolve())
    with _LOCK:
        if key not in _SESSIONS:
            if _SESSIONS:
                raise RuntimeError(f"chDB is already open at {next(iter(_SESSIONS))}; one path per process")
            path.mkdir(parents=True, exist_ok=True)
            _SESSIONS[key] = chdb_session.Session(key)  # type: ignore[no-untyped-call]
        return _SESSIONS[key]


class ChdbSink:
    name = "chdb"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _query(self, sql: str, fmt: str = "CSV") -> Any:
        with self._lock:
            return session(self.path).query(sql, fmt)

    async def setup(self) -> None:
        await asyncio.to_thread(self._query, "CREATE DATABASE IF NOT EXISTS quiver")
        await asyncio.to_thread(self._query, DDL)

    async def write(self, batch: pa.RecordBatch) -> None:
        table = pa.Table.from_batches([batch])
        table = table.set_column(table.schema.get_field_index("changed"), "changed",
                                 _empty_lists(table.column("changed")))
        try:
            await asyncio.to_thread(self._insert, table)
        except (RuntimeError, OSError) as error:
            message = str(error)
            if "Cannot parse" in message or "Type mismatch" in message or "CANNOT_" in message:
                raise PermanentError(message) from error
            raise RetryableError(message) from error

    def _insert(self, table: pa.Table) -> None:
        with self._lock:
            session(self.path).query(f"INSERT INTO {TABLE} SELECT * FROM Python(table)")

    def query_arrow(self, sql: str) -> pa.Table:
        """Run a query and return Arrow (for tests, status and the demo)."""
        result = self._query(sql, "ArrowTable")
        assert isinstance(result, pa.Table)
        return result

    async def close(self) -> None:
        return None


def _empty_lists(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """ClickHouse arrays are never NULL: a missing ``changed`` list is stored empty."""
    import pyarrow.compute as pc

    return pc.if_else(pc.is_null(column), pa.scalar([], column.type), column)


def main(argv: list[str] | None = None) -> None:
    """``python -m quiver.events.sinks.chdb --path P --query SQL``: print the result as Arrow IPC.

    chDB opens one data path per process and no second process may open it at the
    same time, so other processes (tests, status) read the sink through this.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--path", required=True, type=Path)
    parser.add_argument("--query", required=True)
    args = parser.parse_args(argv)
    table = ChdbSink(args.path).query_arrow(args.query)
    with pa.ipc.new_stream(sys.stdout.buffer, table.schema) as writer:
        writer.write_table(table)


if __name__ == "__main__":
    main()
