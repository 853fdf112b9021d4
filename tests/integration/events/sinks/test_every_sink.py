"""The contract every sink keeps, run against each real sink: chDB (in a temporary data path), the ClickHouse
server and OpenSearch of ``scripts/services``.

What the consumer, the dead-letter replay and the conservation oracle rely on, and nothing
sink-specific (each sink's own tests, beside this file, cover the rest): ``setup()`` is
idempotent; what ``write()`` accepted is exactly what the documented read (``visible_events()``)
returns, field by field, by seq; a repeated or regrouped batch is visible once; ``count_visible()``
agrees; an event the sink can never take raises ``PermanentError`` (naming it, if the sink says
which) while the good events of the batch can still be written; a sink that cannot be reached
raises ``RetryableError`` on every call.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from quiver.arrow.events import events_to_batch
from quiver.events.sinks.base import VISIBLE_FIELDS, PermanentError, RetryableError, Sink
from quiver.events.sinks.chdb import ChdbSink
from quiver.events.sinks.clickhouse import ClickHouseSink
from quiver.events.sinks.registry import NAMES
from quiver.events.sinks.search import SearchSink
from tests.conftest import free_port
from tests.integration.events.sinks.support import event, expected, server_url

_COUNTER = itertools.count()

# Valid for every sink: seq ≥ 0 (an external version), times within 1970..2106 (ClickHouse 18.16's DateTime).
EVENTS = [
    event(1, data='{"note": "\\"quoted\\" \'single\' back\\\\slash"}', actor="alice", changed=["note"]),
    event(2, data="line one\nline two\ttabbed\r\n\\N not null \\ end", tenant_id="t1", op="update",
          changed=["a", "", "ünïcødé", "tab\there"]),
    event(3, data='{"name": "日本語 ✓ 🦀 ÿ€", "nothing": null}', entity="customers", entity_id='[1, "x"]', changed=[]),
    event(4, seq=2**53 + 1, data="\x00\x01\x1f control \x7f chars", actor="", tenant_id="", op="delete"),
    event(5, seq=2**63 - 1, data="x" * 20_000 + "é" * 2_000, occurred_at=999_999),  # 1970-01-01 00:00:00.999999
    event(6, seq=0, data="", entity="", entity_id="k" * 10_000, occurred_at=4_102_444_800_000_001),  # year 2100
    event(7, seq=8, occurred_at=1_700_000_000_123_456, actor="bob \"the\" builder", tenant_id="naïve\\tenant"),
    *(event(i, occurred_at=1_714_557_600_000_000 + i * 3_600_000_000) for i in range(100, 400)),
]
# Refused by every sink: not a uuid (the ClickHouse engines), longer than an _id may be (the search servers).
BAD = event(99, event_id="x" * 600)


@dataclass
class Case:
    """One real sink, fresh for the test (its own database or index prefix), and one that cannot be reached."""

    sink: Sink
    unreachable: Callable[[], Sink]


def _clickhouse() -> Iterator[Case]:
    url, database = server_url("QUIVER_CLICKHOUSE_URL"), f"quiver_contract_{os.getpid()}_{next(_COUNTER)}"
    yield Case(ClickHouseSink(url, database),
               lambda: ClickHouseSink(f"http://127.0.0.1:{free_port()}", database, timeout=2.0))
    response = httpx.post(url, params={"query": f"DROP DATABASE IF EXISTS {database}"}, timeout=30)
    assert response.status_code == 200, response.text


def _search() -> Iterator[Case]:
    url, prefix = server_url("QUIVER_OPENSEARCH_URL"), f"qcontract-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    yield Case(SearchSink(url, prefix), lambda: SearchSink(f"http://127.0.0.1:{free_port()}", prefix, timeout=2.0))
    with httpx.Client(base_url=url, timeout=60) as client:
        listed = client.get(f"/_cat/indices/{prefix}-*", params={"h": "index", "format": "json"}).json()
        for index in (row["index"] for row in listed):  # by name: wildcard deletes may be refused
            assert client.delete(f"/{index}").status_code == 200
        assert client.delete(f"/_index_template/{prefix}").status_code in {200, 404}


def _chdb(path: Path, elsewhere: Path) -> Iterator[Case]:
    database = f"contract_{next(_COUNTER)}"
    sink = ChdbSink(path, database)
    # This process holds ``path``: a chDB sink at any other path cannot open it (as one whose path another
    # process holds, such as `quiver events read` while the consumer runs).
    yield Case(sink, lambda: ChdbSink(elsewhere))
    sink.query_arrow(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture(params=NAMES)
def case(request: pytest.FixtureRequest, chdb_path: Path, tmp_path: Path) -> Iterator[Case]:
    name = request.param
    cases = {"chdb": lambda: _chdb(chdb_path, tmp_path / "elsewhere"), "clickhouse": _clickhouse,
             "search": _search}
    assert set(cases) == set(NAMES), "a new sink needs its case here"
    made = cases[name]()
    built = next(made)
    assert built.sink.name == name
    yield built
    asyncio.run(built.sink.close())
    next(made, None)


def run(case: Case, scenario: Callable[[Sink], Coroutine[Any, Any, None]]) -> None:
    async def closing() -> None:
        try:
            await scenario(case.sink)
        finally:
            await case.sink.close()

    asyncio.run(closing())


async def assert_exactly(sink: Sink, events: list[dict[str, Any]]) -> None:
    """The documented read returns exactly ``events``, field by field, in order (by seq, event_id)."""
    got, wanted = await sink.visible_events(), expected(events)
    assert [row[0] for row in got] == [row[0] for row in wanted], "not the same events in the same order"
    for row, want in zip(got, wanted, strict=True):
        assert len(row) == len(VISIBLE_FIELDS)
        for field, value, wanted_value in zip(VISIBLE_FIELDS, row, want, strict=True):
            assert value == wanted_value and type(value) is type(wanted_value), (
                f"{field} of event {want[0]} (seq {want[1]}): {value!r} != {wanted_value!r}")
    assert await sink.count_visible() == len(events)


def test_setup_is_idempotent_and_keeps_what_is_stored(case: Case) -> None:
    async def scenario(sink: Sink) -> None:
        await sink.setup()
        await sink.setup()
        assert await sink.visible_events() == []
        assert await sink.count_visible() == 0
        await sink.write(events_to_batch(EVENTS[:3]))
        await sink.setup()
        await assert_exactly(sink, EVENTS[:3])

    run(case, scenario)


def test_what_is_written_is_visible_exactly(case: Case) -> None:
    async def scenario(sink: Sink) -> None:
        await sink.setup()
        await sink.write(events_to_batch(EVENTS))
        await assert_exactly(sink, EVENTS)

    run(case, scenario)


def test_a_repeated_batch_is_visible_once(case: Case) -> None:
    async def scenario(sink: Sink) -> None:
        await sink.setup()
        await sink.write(events_to_batch(EVENTS))
        await sink.write(events_to_batch(EVENTS))  # redelivered as is
        await sink.write(events_to_batch(EVENTS[150:] + EVENTS[:20]))  # redelivered in another grouping
        await assert_exactly(sink, EVENTS)

    run(case, scenario)


def test_an_event_the_sink_can_never_take_is_permanent(case: Case) -> None:
    good = EVENTS[:5]

    async def scenario(sink: Sink) -> None:
        await sink.setup()
        with pytest.raises(PermanentError) as alone:
            await sink.write(events_to_batch([BAD]))
        assert set(alone.value.rejected) <= {BAD["event_id"]}
        assert await sink.count_visible() == 0
        with pytest.raises(PermanentError) as mixed:
            await sink.write(events_to_batch([*good[:2], BAD, *good[2:]]))
        if mixed.value.rejected:  # the sink names what it refused: exactly the bad event, the rest is stored
            assert set(mixed.value.rejected) == {BAD["event_id"]}
            await assert_exactly(sink, good)
        await sink.write(events_to_batch(good))  # what the consumer writes after isolating the bad event
        await assert_exactly(sink, good)

    run(case, scenario)


def test_a_sink_that_cannot_be_reached_is_retryable(case: Case) -> None:
    async def scenario(_: Sink) -> None:
        sink = case.unreachable()
        try:
            with pytest.raises(RetryableError):
                await sink.setup()
            with pytest.raises(RetryableError):
                await sink.write(events_to_batch(EVENTS[:3]))
            with pytest.raises(RetryableError):
                await sink.visible_events()
            with pytest.raises(RetryableError):
                await sink.count_visible()
        finally:
            await sink.close()

    run(case, scenario)
