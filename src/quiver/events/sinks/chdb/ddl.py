"""chDB's table: the ClickHouse sink's table as a modern server gets it (same columns, same read query).

chDB is the modern ClickHouse engine in-process, so ``{database}.events`` is exactly what
``clickhouse.ddl.table_ddl`` creates on a current server: a ReplacingMergeTree(seq) keyed on the
event, ``occurred_at DateTime64(6, 'UTC')`` beside ``occurred_at_us Int64``, LowCardinality
labels. The documented read is ``clickhouse.ddl.visible_events_sql`` (``... FROM quiver.events
FINAL``).
"""

from __future__ import annotations

from quiver.events.sinks.clickhouse.ddl import ServerInfo, check_database, table_ddl

DATABASE = "quiver"
ENGINE = ServerInfo("chdb", datetime64=True, low_cardinality=True, arrow_stream=True)  # what chDB can do


def add_micros_sql(database: str) -> str:
    """Tables made before chDB had ``occurred_at_us`` get it, computed from ``occurred_at`` for their rows."""
    return (f"ALTER TABLE {database}.events ADD COLUMN IF NOT EXISTS occurred_at_us Int64"
            " DEFAULT toUnixTimestamp64Micro(occurred_at) AFTER occurred_at")


def setup_statements(database: str) -> list[str]:
    """What ``setup()`` runs, in order (each idempotent)."""
    check_database(database)
    return [f"CREATE DATABASE IF NOT EXISTS {database}", table_ddl(database, ENGINE), add_micros_sql(database)]
