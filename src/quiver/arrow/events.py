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


_REQUIRED = {"event_id": str, "seq": int, "entity": str, "entity_id": str, "op": str, "occurred_at": int,
             "data": str}
_OPTIONAL = {"actor": str, "tenant_id": str}
_INT64 = (-(1 << 63), (1 << 63) - 1)


def event_problem(event: Any) -> str | None:
    """Why a decoded message element is not an event ``events_to_batch`` can take; None when it is."""
    if type(event) is dict:  # the fast path, one expression for a valid event (the consumer checks every event)
        get = event.get
        seq, occurred, changed = get("seq"), get("occurred_at"), get("changed")
        actor, tenant = get("actor"), get("tenant_id")
        if (type(get("event_id")) is str and type(get("entity")) is str and type(get("entity_id")) is str
                and type(get("op")) is str and type(get("data")) is str
                and type(seq) is int and _INT64[0] <= seq <= _INT64[1]
                and type(occurred) is int and _INT64[0] <= occurred <= _INT64[1]
                and (actor is None or type(actor) is str) and (tenant is None or type(tenant) is str)
                and (changed is None or (type(changed) is list and all(type(c) is str for c in changed)))):
            return None
    return _problem(event)


def _problem(event: Any) -> str | None:
    if not isinstance(event, dict):
        return f"not a JSON object but {type(event).__name__}"
    for name, kind in _REQUIRED.items():
        value = event.get(name)
        if value is None:
            return f"field {name} is missing"
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field {name} is {type(value).__name__}, not {kind.__name__}"
        if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
            return f"field {name} ({value}) is outside int64"
    for name, kind in _OPTIONAL.items():
        value = event.get(name)
        if value is not None and not isinstance(value, kind):
            return f"field {name} is {type(value).__name__}, not {kind.__name__} or null"
    changed = event.get("changed")
    if changed is not None and not (isinstance(changed, list) and all(isinstance(c, str) for c in changed)):
        return "field changed is not a list of strings or null"
    return None


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
