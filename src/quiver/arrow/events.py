"""The one event schema: outbox rows, JetStream messages, Flight and every sink use it.

Pinned by ``tests/unit/test_event_schema.py`` against a golden file; change it only
with a migration plan for every sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),  # uuid, canonical text
        pa.field("seq", pa.int64(), nullable=False),  # outbox position: monotonic, the version of an event
        pa.field("entity", pa.string(), nullable=False),  # table name
        pa.field("entity_id", pa.string(), nullable=False),  # key as text (JSON array if composite; "" for truncate)
        pa.field("op", pa.string(), nullable=False),  # insert | update | delete | truncate | snapshot
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("data", pa.string(), nullable=False),  # the row as JSON text (the old row for deletes)
        pa.field("changed", pa.list_(pa.field("item", pa.string(), nullable=False)), nullable=True),  # updates only
        pa.field("actor", pa.string(), nullable=True),
        pa.field("tenant_id", pa.string(), nullable=True),
    ],
    metadata={b"quiver:schema": b"event/1"},
)

# truncate: every earlier row of the entity is gone; snapshot: a row as it is (backfill, DDL)
OPS = ("insert", "update", "delete", "truncate", "snapshot")


def encode_event(event: dict[str, Any]) -> bytes:
    """One event as the JSON message body JetStream carries (``occurred_at`` in µs since the epoch)."""
    return orjson.dumps(event)


def events_to_batch(events: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    """Decoded message bodies → one record batch in EVENT_SCHEMA (columnar build, no per-row Arrow calls)."""
    columns: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA.names}
    for event in events:
        for name, values in columns.items():
            values.append(event.get(name))
    arrays = [pa.array(columns[field.name], field.type) for field in EVENT_SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=EVENT_SCHEMA)


def batch_to_events(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The inverse of ``events_to_batch`` (occurred_at back to µs since the epoch)."""
    table = pa.Table.from_batches([batch]).set_column(
        EVENT_SCHEMA.get_field_index("occurred_at"), "occurred_at",
        batch.column("occurred_at").cast(pa.int64()),
    )
    events: list[dict[str, Any]] = table.to_pylist()
    return events
