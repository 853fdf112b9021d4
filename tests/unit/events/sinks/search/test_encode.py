"""The search sink's ``bulk_bodies``: byte for byte what ``write`` posts (a mock transport, no server)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import orjson

from quiver.arrow.events import events_to_batch
from quiver.events.sinks.search import SearchSink, monthly_index


def test_bulk_bodies_are_what_the_search_sink_sends() -> None:
    """The benchmark's OpenSearch ceiling posts ``bulk_bodies``: byte for byte the sink's own requests."""
    events = [{"event_id": str(uuid.UUID(int=i)), "seq": i, "entity": "orders", "entity_id": str(i), "op": "update",
               "occurred_at": 1_700_000_000_000_000 + i, "data": json.dumps({"id": i, "note": "x" * 50}),
               "changed": ["note"], "actor": "bench", "tenant_id": None} for i in range(1, 200)]
    batch = events_to_batch(events)
    sent: list[tuple[bytes, dict[str, str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_bulk":
            sent.append((request.content, dict(request.url.params)))
            return httpx.Response(200, json={"errors": False})
        return httpx.Response(200, json={"acknowledged": True})

    sink = SearchSink("http://search.invalid", "probe", max_bulk_bytes=8_192, transport=httpx.MockTransport(handler))

    async def write() -> None:
        try:
            await sink.write(batch)
        finally:
            await sink.close()

    asyncio.run(write())
    bodies, refused = sink.bulk_bodies(batch)
    assert refused == {} and len(bodies) > 1  # cut at max_bulk_bytes, as the sink cuts them
    assert [content for content, _ in sent] == bodies
    assert all(params == sink.bulk_params() for _, params in sent)
    assert all(len(body) <= 8_192 for body in bodies)


def _lines(sink: SearchSink, events: list[dict[str, Any]]) -> tuple[list[tuple[Any, Any]], dict[str, str]]:
    bodies, refused = sink.bulk_bodies(events_to_batch(events))
    lines = [orjson.loads(line) for body in bodies for line in body.splitlines()]
    return list(zip(lines[::2], lines[1::2], strict=True)), refused


def _event(seq: int, occurred_at: int, **fields: object) -> dict[str, Any]:
    return {"event_id": str(uuid.UUID(int=seq + 100)), "seq": seq, "entity": "orders", "entity_id": str(seq),
            "op": "insert", "occurred_at": occurred_at, "data": '{"id": 1, "note": "ü ✓"}', "changed": None,
            "actor": None, "tenant_id": None, **fields}


def test_documents_carry_the_exact_microseconds_and_monthly_index() -> None:
    sink = SearchSink("http://search.invalid", "p")
    events = [_event(1, 1_700_000_000_123_456, changed=["a", "b"], actor="alice", tenant_id="t1"),
              _event(2, 999_999), _event(3, -1)]  # the last µs of January 1970, and one before the epoch
    pairs, refused = _lines(sink, events)
    assert refused == {}
    (action, document), (action2, document2), (action3, document3) = pairs
    assert action == {"index": {"_index": "p-2023.11", "_id": events[0]["event_id"], "version": 1,
                                "version_type": "external"}}
    assert document == {"event_id": events[0]["event_id"], "seq": 1, "entity": "orders", "entity_id": "1",
                        "op": "insert", "data": '{"id": 1, "note": "ü ✓"}', "changed": ["a", "b"], "actor": "alice",
                        "tenant_id": "t1", "occurred_at": "2023-11-14T22:13:20.123456Z",
                        "occurred_at_us": 1_700_000_000_123_456}
    assert action2["index"]["_index"] == "p-1970.01" and document2["occurred_at"] == "1970-01-01T00:00:00.999999Z"
    assert action3["index"]["_index"] == "p-1969.12" and document3["occurred_at"] == "1969-12-31T23:59:59.999999Z"
    assert document2["changed"] is None and document2["actor"] is None
    assert [monthly_index("p", e["occurred_at"]) for e in events] == [a["index"]["_index"] for a, _ in pairs]


def test_events_no_server_takes_are_refused_without_being_sent() -> None:
    sink = SearchSink("http://search.invalid", "p")
    year_10000 = 253_402_300_800_000_000
    events = [_event(-5, 0), _event(1, 0, event_id="x" * 600), _event(2, year_10000), _event(3, 0)]
    pairs, refused = _lines(sink, events)
    assert [document["seq"] for _, document in pairs] == [3]
    assert refused[events[0]["event_id"]] == "seq -5 is negative: no valid external version"
    assert refused["x" * 600] == "event_id longer than 512 bytes"
    assert refused[events[2]["event_id"]] == f"occurred_at {year_10000} µs is outside the years 1..9999"
