"""The Sink protocol every destination implements, and the two kinds of failure.

``write`` receives one record batch in ``arrow.events.EVENT_SCHEMA``. It returns only
once the sink has durably accepted every event in it, and must be idempotent: the same
events may arrive again (after a crash, a timeout, a redelivery) and must not show up
twice in the sink's documented read. It raises ``RetryableError`` for failures that
may pass (the sink is down, overloaded, timing out) and ``PermanentError`` for events
the sink will never take (the consumer then isolates them and dead-letters them).

The documented read is part of the protocol: ``visible_events()`` returns every event as
readers of the sink see it (each event once, however often it was written), as a
``VisibleEvent`` tuple in ``VISIBLE_FIELDS`` order, sorted by ``(seq, event_id)``;
``count_visible()`` is its length. The conservation oracle, ``quiver events read`` and
``quiver events status`` use only these, so they work on every sink alike.

Each sink is a package ``sinks/<name>/`` with the same modules: ``ddl`` (the table or index
template the sink creates), ``encode`` (batch → request body), ``errors`` (``classify``: a
failure → ``RetryableError`` or ``PermanentError``) and ``sink`` (the class).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import pyarrow as pa

VISIBLE_FIELDS = ("event_id", "seq", "entity", "entity_id", "op", "occurred_at_us", "data", "changed", "actor",
                  "tenant_id")
# One event as a sink's documented read returns it, in VISIBLE_FIELDS order: event_id (canonical uuid text),
# seq, entity, entity_id, op, occurred_at_us (µs since the epoch, UTC), data (the row as JSON text), changed
# ([] where the event has none: ClickHouse arrays are never NULL), actor, tenant_id.
VisibleEvent = tuple[str, int, str, str, str, int, str, list[str], str | None, str | None]
# The same as Arrow columns (``quiver events read --format arrow``).
VISIBLE_SCHEMA = pa.schema([
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("entity", pa.string(), nullable=False),
    pa.field("entity_id", pa.string(), nullable=False),
    pa.field("op", pa.string(), nullable=False),
    pa.field("occurred_at_us", pa.int64(), nullable=False),
    pa.field("data", pa.string(), nullable=False),
    pa.field("changed", pa.list_(pa.string()), nullable=False),
    pa.field("actor", pa.string()),
    pa.field("tenant_id", pa.string()),
])


class SinkError(Exception):
    """A failed write."""


class RetryableError(SinkError):
    """Try again later: the events stay unacknowledged in JetStream meanwhile."""


class PermanentError(SinkError):
    """The sink rejects these events for good (bad data, mapping conflict, ...).

    ``rejected`` names the refused events (event_id → reason) when the sink knows them, as a
    bulk API's per-item results do; the consumer then dead-letters exactly those and writes
    the rest. Without it the consumer narrows the batch down by bisection.
    """

    def __init__(self, message: str, rejected: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.rejected = dict(rejected or {})


@runtime_checkable
class Sink(Protocol):
    """A destination for events."""

    name: str

    async def setup(self) -> None:
        """Create what the sink needs (tables, templates); idempotent."""

    async def write(self, batch: pa.RecordBatch) -> None:
        """Durably store ``batch``; idempotent per event_id."""

    async def visible_events(self) -> list[VisibleEvent]:
        """The documented read: every stored event once, sorted by (seq, event_id)."""
        ...

    async def count_visible(self) -> int:
        """``len(visible_events())``, without reading the events."""
        ...

    async def close(self) -> None:
        """Release connections."""


def by_seq(rows: Iterable[VisibleEvent]) -> list[VisibleEvent]:
    """Rows in the documented order: by seq, then event_id."""
    return sorted(rows, key=lambda row: (row[1], row[0]))


def visible_table(rows: Iterable[VisibleEvent]) -> pa.Table:
    """Rows of the documented read as an Arrow table in ``VISIBLE_SCHEMA``."""
    columns: list[list[object]] = [[] for _ in VISIBLE_FIELDS]
    for row in rows:
        for values, value in zip(columns, row, strict=True):
            values.append(value)
    return pa.Table.from_arrays([pa.array(values, field.type) for values, field in zip(columns, VISIBLE_SCHEMA,
                                                                                        strict=True)],
                                schema=VISIBLE_SCHEMA)


def visible_rows(table: pa.Table) -> list[VisibleEvent]:
    """An Arrow table of the documented read (its columns in ``VISIBLE_FIELDS`` order, names aside) → rows."""
    if table.num_columns != len(VISIBLE_FIELDS):
        raise ValueError(f"{table.num_columns} columns, expected {len(VISIBLE_FIELDS)}: {', '.join(VISIBLE_FIELDS)}")
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return [(event_id, seq, entity, entity_id, op, micros, data, changed or [], actor, tenant)
            for event_id, seq, entity, entity_id, op, micros, data, changed, actor, tenant in zip(*columns,
                                                                                                  strict=True)]
