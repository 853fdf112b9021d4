"""The search sink's ``bulk_bodies``: byte for byte what ``write`` posts (a mock transport, no server)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx

from quiver.arrow.events import events_to_batch
from quiver.events.sinks.search import SearchSink


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
