"""The event schema is one definition, pinned: producer, bus, Flight and sinks rely on it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa

from quiver.arrow.events import EVENT_SCHEMA, batch_to_events, encode_event, events_to_batch

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "event_schema.txt"

EVENT = {
    "event_id": "6f1c4c6e-8c0f-4b4c-9f4a-2b0e8c5d9a11", "seq": 9_007_199_254_740_993, "entity": "orders",
    "entity_id": "42", "op": "update", "occurred_at": 1_714_557_600_123_456,
    "data": '{"id": 42, "note": "\\"quoted\\" é"}', "changed": ["note"], "actor": "alice", "tenant_id": None,
}


def test_schema_matches_the_golden_file() -> None:
    assert EVENT_SCHEMA.to_string(show_schema_metadata=True) + "\n" == GOLDEN.read_text()


def test_events_round_trip_through_json_and_arrow() -> None:
    decoded = orjson.loads(encode_event(EVENT))
    batch = events_to_batch([decoded, {**decoded, "op": "insert", "changed": None, "seq": 1}])
    assert batch.schema == EVENT_SCHEMA
    assert batch.column("occurred_at").type == pa.timestamp("us", tz="UTC")
    assert batch_to_events(batch)[0] == EVENT
    assert batch_to_events(batch)[1]["changed"] is None
