"""The search sink against the real OpenSearch 2.x of ``scripts/services`` (``QUIVER_OPENSEARCH_URL``).

Each test gets its own index prefix (its template and monthly indices are deleted afterwards).
What is written is read back through ``visible_events()`` (refresh + search_after) and compared
exactly. Failures are real server failures: a mapping that refuses some documents, an index
whose primary shard cannot be allocated, a closed port, a server that never answers. Only the
whole-response statuses a healthy server does not produce on demand (503, 429, 413, 400 for a
whole bulk) use an httpx mock transport.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from quiver.arrow.events import events_to_batch
from quiver.config import Settings
from quiver.events.sinks.base import PermanentError, RetryableError
from quiver.events.sinks.registry import make_sink
from quiver.events.sinks.search import (
    MAPPINGS,
    PendingEvents,
    RejectedEvents,
    SearchSink,
)
from tests.conftest import free_port
from tests.integration.events.sinks.support import event, expected, server_url

MAY_2024 = 1_714_557_600_000_000  # 2024-05-01T10:00:00Z in µs
JUNE_2024 = 1_717_632_000_000_000  # 2024-06-06T00:00:00Z
JULY_2024 = 1_720_310_400_000_000  # 2024-07-07T00:00:00Z


def search_url() -> str:
    return server_url("QUIVER_OPENSEARCH_URL")


def indices(prefix: str) -> list[str]:
    response = httpx.get(f"{search_url()}/_cat/indices/{prefix}-*", params={"h": "index", "format": "json"},
                         timeout=30)
    assert response.status_code == 200, response.text
    return sorted(row["index"] for row in response.json())


def stored_ids(index: str) -> list[str]:
    """Event ids in one index, by seq (refreshed first)."""
    with httpx.Client(base_url=search_url(), timeout=30) as client:
        assert client.post(f"/{index}/_refresh").status_code == 200
        answer = client.post(f"/{index}/_search", json={"size": 10_000, "sort": [{"seq": "asc"}]}).json()
    return [hit["_id"] for hit in answer["hits"]["hits"]]


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"qtest-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    yield name
    with httpx.Client(base_url=search_url(), timeout=60) as client:
        for index in indices(name):  # by name: a wildcard DELETE is refused where destructive_requires_name is on
            assert client.delete(f"/{index}").status_code == 200
        assert client.delete(f"/_index_template/{name}").status_code in {200, 404}
    assert indices(name) == []


TRICKY = [
    event(1, data='{"note": "\\"quoted\\" \'single\' back\\\\slash"}', actor="alice", changed=["note"]),
    event(2, data="line one\nline two\ttabbed\r\n\\N not null \\ end", tenant_id="t1", op="update",
          changed=["a", "", "ünïcødé", "tab\there"]),
    event(3, data='{"name": "日本語 ✓ 🦀 ÿ€", "nothing": null}', entity="customers", entity_id='[1, "x"]', changed=[]),
    event(4, seq=2**53 + 1, data="\x00\x01\x1f control \x7f chars", actor="", tenant_id="", op="delete"),
    event(5, seq=2**63 - 1, data="x" * 20_000 + "é" * 20_000, occurred_at=999_999),  # 1970-01-01 00:00:00.999999
    event(6, seq=0, data="", entity="", entity_id="k" * 10_000, occurred_at=4_102_444_800_000_001),  # year 2100
    event(7, seq=8, occurred_at=1_700_000_000_123_456, actor="bob \"the\" builder", tenant_id="naïve\\tenant"),
]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def with_sink(sink: SearchSink, scenario: Any) -> Any:
    try:
        return await scenario(sink)
    finally:
        await sink.close()


def test_setup_installs_the_template_and_writes_make_monthly_indices_behind_the_alias(prefix: str) -> None:
    events = [event(1), event(2, occurred_at=JUNE_2024), event(3, occurred_at=1_700_000_000_000_000)]

    async def scenario(sink: SearchSink) -> None:
        await sink.setup()
        await sink.setup()  # idempotent
        await sink.write(events_to_batch(events))

    run(with_sink(SearchSink(search_url(), prefix), scenario))
    with httpx.Client(base_url=search_url(), timeout=30) as client:
        [template] = client.get(f"/_index_template/{prefix}").json()["index_templates"]
        body = template["index_template"]
        assert body["index_patterns"] == [f"{prefix}-*"]
        assert body["template"]["aliases"] == {prefix: {}}
        assert body["template"]["mappings"]["dynamic"] == "strict"
        assert indices(prefix) == [f"{prefix}-2023.11", f"{prefix}-2024.05", f"{prefix}-2024.06"]
        aliases = client.get(f"/_alias/{prefix}").json()
        assert sorted(aliases) == indices(prefix)
        mapping = client.get(f"/{prefix}-2024.05/_mapping").json()[f"{prefix}-2024.05"]["mappings"]
        assert mapping["properties"] == orjson.loads(orjson.dumps(MAPPINGS["properties"]))
        assert mapping["properties"]["occurred_at"]["type"] == "date_nanos"
        settings = client.get(f"/{prefix}-2024.05/_settings").json()[f"{prefix}-2024.05"]["settings"]["index"]
        assert settings["translog"]["durability"] == "request" and settings["refresh_interval"] == "1s"
        health = client.get(f"/_cluster/health/{prefix}-*").json()
        assert health["status"] == "green", health  # auto_expand_replicas 0-1 on one node


def test_events_round_trip_exactly(prefix: str) -> None:
    async def scenario(sink: SearchSink) -> None:
        await sink.setup()
        await sink.write(events_to_batch(TRICKY))
        assert await sink.visible_events() == expected(TRICKY)
        assert await sink.count_visible() == len(TRICKY)

    run(with_sink(SearchSink(search_url(), prefix), scenario))
    with httpx.Client(base_url=search_url(), timeout=30) as client:
        # occurred_at is a date_nanos at full microsecond precision: a range on it finds exactly one event.
        hits = client.post(f"/{prefix}/_search", json={"query": {"range": {"occurred_at": {
            "gt": "2023-11-14T22:13:20.123455Z", "lt": "2023-11-14T22:13:20.123457Z"}}}}).json()["hits"]["hits"]
        assert [hit["_id"] for hit in hits] == [TRICKY[6]["event_id"]]
        # data is searchable as text; the document's version is its seq.
        hits = client.post(f"/{prefix}/_search", json={"query": {"match": {"data": "日本語"}}, "version": True}
                           ).json()["hits"]["hits"]
        assert [(hit["_id"], hit["_version"]) for hit in hits] == [(TRICKY[2]["event_id"], 3)]
        assert indices(prefix) == [f"{prefix}-1970.01", f"{prefix}-2023.11", f"{prefix}-2024.05", f"{prefix}-2100.01"]


def test_the_same_batch_twice_is_stored_once(prefix: str) -> None:
    events = [event(i, occurred_at=MAY_2024 + i * 3_600_000_000) for i in range(100, 1600)] + TRICKY

    async def scenario(sink: SearchSink) -> None:
        batch = events_to_batch(events)
        await sink.write(batch)  # setup() on first use
        await sink.write(batch)  # every item answers 409: already there
        assert await sink.count_visible() == len(events)
        assert await sink.visible_events() == expected(events)
        # A new sink (a restarted consumer) replaying part of it: the same.
        replay = SearchSink(search_url(), prefix)
        try:
            await replay.write(events_to_batch(events[::7]))
        finally:
            await replay.close()
        assert await sink.count_visible() == len(events)

    run(with_sink(SearchSink(search_url(), prefix), scenario))


def test_an_older_seq_never_overwrites_a_newer_one(prefix: str) -> None:
    newer = event(50, data='{"v": "newer"}')
    older = {**newer, "seq": 40, "data": '{"v": "older"}'}
    same = {**newer, "data": '{"v": "same seq, other body"}'}
    newest = {**newer, "seq": 60, "data": '{"v": "newest"}'}

    async def scenario(sink: SearchSink) -> None:
        await sink.write(events_to_batch([newer]))
        await sink.write(events_to_batch([older]))  # no error: a newer version is stored
        await sink.write(events_to_batch([same]))  # no error: this version is stored
        assert await sink.visible_events() == expected([newer])
        await sink.write(events_to_batch([newest]))  # a higher seq does replace it
        assert await sink.visible_events() == expected([newest])

    run(with_sink(SearchSink(search_url(), prefix), scenario))


def test_refused_items_are_reported_by_event_id_and_the_rest_is_stored(prefix: str) -> None:
    # The July index exists with entity_id mapped as long: documents with a non-numeric entity_id fail
    # with a mapping error, the others (July with a numeric id, and May) are stored.
    good = [event(i) for i in range(1, 6)] + [event(i, occurred_at=JULY_2024 + i, entity_id=str(i * 10))
                                               for i in range(6, 11)]
    bad = [event(i, occurred_at=JULY_2024 + i, entity_id=f"key-{i}") for i in range(11, 15)]
    unsendable = [event(20, seq=-7), event(21, event_id="é" * 300)]
    batch = events_to_batch([good[0], bad[0], *good[1:7], *bad[1:], *good[7:], *unsendable])

    async def scenario(sink: SearchSink) -> None:
        await sink.setup()
        response = httpx.put(f"{search_url()}/{prefix}-2024.07",
                             json={"mappings": {"properties": {"entity_id": {"type": "long"}}}}, timeout=30)
        assert response.status_code == 200, response.text
        with pytest.raises(RejectedEvents) as caught:
            await sink.write(batch)
        error = caught.value
        assert isinstance(error, PermanentError)
        assert set(error.rejected) == {e["event_id"] for e in bad + unsendable}
        for e in bad:
            assert "400 mapper_parsing_exception" in error.rejected[e["event_id"]], error.rejected
        assert "negative" in error.rejected[unsendable[0]["event_id"]]
        assert "512 bytes" in error.rejected[unsendable[1]["event_id"]]
        assert await sink.visible_events() == expected(good)
        # The consumer's retry of the good events alone then succeeds (they are already there).
        await sink.write(events_to_batch(good))
        assert await sink.count_visible() == len(good)

    run(with_sink(SearchSink(search_url(), prefix), scenario))


def test_items_on_an_unavailable_shard_are_retried_alone_then_reported_as_pending(prefix: str) -> None:
    june = [event(i, occurred_at=JUNE_2024 + i) for i in range(1, 4)]
    may = [event(i) for i in range(4, 10)]
    bulks: list[int] = []

    async def count_bulks(request: httpx.Request) -> None:
        if request.url.path == "/_bulk":
            bulks.append(request.content.count(b"\n") // 2)

    async def scenario(sink: SearchSink) -> None:
        await sink.setup()
        # The June index's primary shard may live nowhere: its items wait `wait_timeout`, then get 503.
        response = httpx.put(f"{search_url()}/{prefix}-2024.06", params={"wait_for_active_shards": "0"},
                             json={"settings": {"index.routing.allocation.require._name": "nowhere"}}, timeout=30)
        assert response.status_code == 200, response.text
        sink._http().event_hooks["request"].append(count_bulks)
        with pytest.raises(PendingEvents) as caught:
            await sink.write(events_to_batch(june[:1] + may + june[1:]))
        error = caught.value
        assert isinstance(error, RetryableError)
        assert set(error.pending) == {e["event_id"] for e in june} and error.rejected == {}
        assert all("503 unavailable_shards_exception" in reason for reason in error.pending.values()), error.pending
        assert bulks == [9, 3, 3], "only the failed items are sent again"
        assert stored_ids(f"{prefix}-2024.05") == [e["event_id"] for e in may]  # the alias would wait for June

        response = httpx.put(f"{search_url()}/{prefix}-2024.06/_settings",
                             json={"index.routing.allocation.require._name": None}, timeout=30)
        assert response.status_code == 200, response.text
        health = httpx.get(f"{search_url()}/_cluster/health/{prefix}-2024.06",
                           params={"wait_for_status": "green", "timeout": "60s"}, timeout=90).json()
        assert health["status"] == "green", health
        await sink.write(events_to_batch(june[:1] + may + june[1:]))  # the consumer's retry of the whole batch
        assert await sink.visible_events() == expected(june + may)

    run(with_sink(SearchSink(search_url(), prefix, wait_timeout=0.5, retries=2, backoff=0.05), scenario))


def test_large_batches_are_split_and_results_are_paged(prefix: str) -> None:
    events = [event(i, data=f'{{"id": {i}, "pad": "{"p" * 500}"}}', occurred_at=MAY_2024 + i * 86_400_000_000)
              for i in range(1, 301)]
    bulks: list[int] = []

    async def count_bulks(request: httpx.Request) -> None:
        if request.url.path == "/_bulk":
            bulks.append(request.content.count(b"\n") // 2)

    async def scenario(sink: SearchSink) -> None:
        sink._http().event_hooks["request"].append(count_bulks)
        await sink.write(events_to_batch(events))
        assert len(bulks) > 5 and sum(bulks) == len(events)
        assert await sink.visible_events(page_size=37) == expected(events)

    run(with_sink(SearchSink(search_url(), prefix, max_bulk_bytes=32 << 10), scenario))
    assert len(indices(prefix)) == 10  # 300 days from 2024-05-01: May 2024 .. February 2025


def test_an_unreachable_or_silent_server_is_retryable(prefix: str) -> None:
    batch = events_to_batch([event(1)])

    async def closed_port() -> None:
        sink = SearchSink(f"http://127.0.0.1:{free_port()}", prefix, timeout=2)
        try:
            with pytest.raises(RetryableError, match="unreachable"):
                await sink.setup()
            with pytest.raises(RetryableError, match="unreachable"):
                await sink.write(batch)
        finally:
            await sink.close()

    async def silent_server() -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)
            await asyncio.sleep(30)  # never answers (a stopped or hung server)
            writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sink = SearchSink(f"http://127.0.0.1:{port}", prefix, timeout=0.5)
        try:
            with pytest.raises(RetryableError, match="timed out"):
                await sink.write(batch)
        finally:
            await sink.close()
            server.close()

    run(closed_port())
    run(silent_server())
    assert indices(prefix) == []


def test_a_server_stopped_mid_stream_is_retryable_and_nothing_is_lost(prefix: str) -> None:
    """SIGSTOP is not used on the shared server; a proxy that goes away stands for the server going away."""
    events = [event(i) for i in range(1, 41)]

    async def scenario() -> None:
        target = httpx.URL(search_url())
        open_proxy = True

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(1 << 16):
                sink.write(data)
                await sink.drain()
            sink.close()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not open_proxy:
                writer.close()
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(target.host, target.port)
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer),
                                 return_exceptions=True)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sink = SearchSink(f"http://127.0.0.1:{port}", prefix, timeout=5)
        try:
            await sink.write(events_to_batch(events[:20]))
            open_proxy = False
            await sink.close()  # drop pooled connections: the next request needs a new one
            with pytest.raises(RetryableError):
                await sink.write(events_to_batch(events[20:]))
            open_proxy = True
            await sink.write(events_to_batch(events))  # the redelivered batch
            assert await sink.visible_events() == expected(events)
        finally:
            await sink.close()
            server.close()

    run(scenario())


@pytest.mark.parametrize(("status", "kind"), [(503, RetryableError), (502, RetryableError), (429, RetryableError),
                                              (401, RetryableError), (400, RejectedEvents)])
def test_whole_bulk_responses_are_classified(status: int, kind: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_bulk":
            return httpx.Response(status, json={"error": {"type": "x", "reason": "whole request"}, "status": status})
        return httpx.Response(200, json={"acknowledged": True})

    async def scenario() -> None:
        sink = SearchSink("http://search.invalid", "qmock", transport=httpx.MockTransport(handler))
        try:
            with pytest.raises(kind) as caught:
                await sink.write(events_to_batch([event(1), event(2)]))
            if kind is RejectedEvents:  # refused as a whole: bisected down to each event
                assert isinstance(caught.value, RejectedEvents)
                assert set(caught.value.rejected) == {event(1)["event_id"], event(2)["event_id"]}
        finally:
            await sink.close()

    run(scenario())


def test_a_too_large_bulk_is_halved_and_a_single_too_large_event_rejected() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/_bulk":
            return httpx.Response(200, json={"acknowledged": True})
        lines = request.content.splitlines()
        sizes.append(len(lines) // 2)
        if any(b"HUGE" in line for line in lines):
            return httpx.Response(413, text="Request Entity Too Large")
        items = [{"index": {"_id": orjson.loads(action)["index"]["_id"], "status": 201}} for action in lines[::2]]
        return httpx.Response(200, json={"errors": False, "items": items})

    events = [event(i) for i in range(1, 9)]
    events[5]["data"] = "HUGE"

    async def scenario() -> None:
        sink = SearchSink("http://search.invalid", "qmock", transport=httpx.MockTransport(handler))
        try:
            with pytest.raises(RejectedEvents) as caught:
                await sink.write(events_to_batch(events))
            assert list(caught.value.rejected) == [events[5]["event_id"]]
        finally:
            await sink.close()

    run(scenario())
    assert sizes == [8, 4, 4, 2, 1, 1, 2]


def test_the_registry_builds_the_search_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUIVER_OPENSEARCH_URL", search_url())
    sink = make_sink("search", Settings(events_namespace="Demo"))
    assert isinstance(sink, SearchSink)
    assert (sink.url, sink.prefix, sink.name) == (search_url(), "demo-events", "search")
    with pytest.raises(ValueError, match="lower case"):
        SearchSink(search_url(), "Bad*Prefix")

