"""The ClickHouse events table, what the server can do, and the documented read (shared with chDB).

``{database}.events`` is a ReplacingMergeTree keyed on ``(entity, seq, event_id)`` with
``seq`` as version, so a redelivered event is stored twice but counts once. ReplacingMergeTree
collapses duplicates only when it merges parts, asynchronously and maybe never for the last
parts, so readers ask for the collapsed view: ``SELECT ... FROM {database}.events FINAL``
(``visible_events_sql``). chDB (the same engine in-process) creates this very table.

Column types follow the server (``ServerInfo``, probed by ``PROBE_SQL``): ``occurred_at`` is
``DateTime64(6, 'UTC')`` where it exists, else ``DateTime('UTC')`` (seconds); ``entity``/``op``
are LowCardinality on modern servers. ``occurred_at_us Int64`` (µs since the epoch) is there on
every server, so the documented read is the same everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COLUMNS = ("event_id", "seq", "entity", "entity_id", "op", "occurred_at", "occurred_at_us", "data", "changed",
           "actor", "tenant_id")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# One row, tab separated: version, DateTime64 exists, LowCardinality exists, LowCardinality is gated behind
# an experimental setting, ArrowStream is an input format.
PROBE_SQL = (
    "SELECT version(),"
    " (SELECT count() FROM system.data_type_families WHERE name = 'DateTime64'),"
    " (SELECT count() FROM system.data_type_families WHERE name = 'LowCardinality'),"
    " (SELECT count() FROM system.settings"
    "   WHERE name = 'allow_experimental_low_cardinality_type' AND value = '0'),"
    " (SELECT count() FROM system.formats WHERE name = 'ArrowStream' AND is_input)"
    " FORMAT TSV"
)


@dataclass(frozen=True)
class ServerInfo:
    """What ``setup()`` learned about the server (and the table, which may predate an upgrade)."""

    version: str
    datetime64: bool  # occurred_at is DateTime64(6, 'UTC') (else DateTime, seconds)
    low_cardinality: bool  # LowCardinality works without experimental settings
    arrow_stream: bool  # accepts INSERT ... FORMAT ArrowStream

    @property
    def modern(self) -> bool:
        return self.arrow_stream and self.datetime64 and self.low_cardinality

    @classmethod
    def from_probe(cls, answer: str) -> ServerInfo | None:
        """The answer to ``PROBE_SQL``; None when it is not one (not ClickHouse: a proxy page?)."""
        probe = answer.strip().split("\t")
        if len(probe) != 5:
            return None
        version, datetime64, low_cardinality, low_cardinality_gated, arrow_stream = probe
        return cls(version=version, datetime64=datetime64 != "0",
                   low_cardinality=low_cardinality != "0" and low_cardinality_gated == "0",
                   arrow_stream=arrow_stream != "0")


def check_database(database: str) -> str:
    """``database`` if it is a plain identifier (it is spliced into SQL), else ValueError."""
    if not _IDENTIFIER.fullmatch(database):
        raise ValueError(f"database name must be a plain identifier, not {database!r}")
    return database


def table_ddl(database: str, info: ServerInfo) -> str:
    """The events table for this server: DateTime64 where it exists (≥ 20.1), LowCardinality on modern ones."""
    label = "LowCardinality(String)" if info.modern else "String"
    occurred = "DateTime64(6, 'UTC')" if info.datetime64 else "DateTime('UTC')"
    return f"""CREATE TABLE IF NOT EXISTS {database}.events (
    event_id       UUID,
    seq            Int64,
    entity         {label},
    entity_id      String,
    op             {label},
    occurred_at    {occurred},
    occurred_at_us Int64,
    data           String,
    changed        Array(String),
    actor          Nullable(String),
    tenant_id      Nullable(String)
) ENGINE = ReplacingMergeTree(seq)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (entity, seq, event_id)"""


def occurred_type_sql(database: str) -> str:
    """The type the existing table gives ``occurred_at`` (one TSV line)."""
    return (f"SELECT type FROM system.columns WHERE database = '{database}' AND table = 'events'"
            " AND name = 'occurred_at' FORMAT TSV")


def insert_sql(database: str) -> str:
    """``INSERT INTO {database}.events (COLUMNS)``: the data follows (a FORMAT or a SELECT)."""
    return f"INSERT INTO {database}.events ({', '.join(COLUMNS)})"


def visible_events_sql(database: str) -> str:
    """The documented read query: FINAL, because duplicates collapse only when parts merge.

    Its columns are ``base.VISIBLE_FIELDS``; append a ``WHERE`` to read a range.
    """
    return (
        "SELECT toString(event_id), seq, entity, entity_id, op, occurred_at_us, data, changed, actor, tenant_id"
        f" FROM {database}.events FINAL"
    )


def count_visible_sql(database: str) -> str:
    """Distinct events as readers see them (through FINAL)."""
    return f"SELECT count() FROM {database}.events FINAL"
