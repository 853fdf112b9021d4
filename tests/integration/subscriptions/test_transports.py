"""The transports' contracts: graphql-transport-ws close codes and errors, SSE, tokens and tenants."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.integration.subscriptions.conftest import PROTOCOL, Client, Live, next_seq, start_live, stop_live

TOKEN, ACME, GLOBEX = "subs-token", "acme-token", "globex-token"
SUB = "subscription($s: BigInt!) { things(from: {seq: $s}) { id n } }"


@pytest.fixture()
def guarded(scratch_url: str, tmp_path: Path) -> Iterator[Live]:
    """A server with a plain token and two tenant tokens."""
    stack = start_live(scratch_url, tmp_path, QUIVER_TOKENS=json.dumps([TOKEN]),
                       QUIVER_TOKEN_TENANTS=json.dumps({ACME: "acme", GLOBEX: "globex"}))
    yield stack
    stop_live(stack)


async def closed_with(url: str, messages: list[Any], **options: Any) -> tuple[int, str]:
    """Send ``messages`` (raw text or objects) and return the close code and reason the server ends with."""
    async with websockets.connect(url, subprotocols=[PROTOCOL], **options) as socket:  # type: ignore[list-item]
        for message in messages:
            await socket.send(message if isinstance(message, str) else json.dumps(message))
        try:
            while True:
                await asyncio.wait_for(socket.recv(), 15)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("not closed")


def test_protocol_violations_close_with_the_protocols_codes(guarded: Live) -> None:
    url, init = guarded.ws_url, {"type": "connection_init", "payload": {"Authorization": f"Bearer {TOKEN}"}}
    subscribe = {"id": "1", "type": "subscribe", "payload": {"query": SUB, "variables": {"s": "1"}}}
    cases: list[tuple[list[Any], int]] = [
        ([{"type": "connection_init"}], 4403),  # no token
        ([{"type": "connection_init", "payload": {"Authorization": "Bearer wrong"}}], 4403),
        ([subscribe], 4401),  # before connection_init
        ([init, init], 4429),
        (["not json"], 4400),
        ([init, {"type": "subscribe", "payload": {}}], 4400),  # no id
        ([init, {"type": "no-such-type"}], 4400),
        ([init, subscribe, subscribe], 4409),
    ]
    for messages, code in cases:
        got, reason = asyncio.run(closed_with(url, messages))
        assert got == code, (messages, got, reason)
        assert reason


def test_a_token_in_the_upgrade_header_works_too(guarded: Live) -> None:
    async def run() -> dict[str, Any]:
        client = await Client.connect(guarded.ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"})
        await client.send({"id": "q", "type": "subscribe", "payload": {"query": "{ thingsAggregate { count } }"}})
        answer, done = await client.receive(), await client.receive()
        await client.close()
        assert done == {"type": "complete", "id": "q"}
        return answer

    answer = asyncio.run(run())  # a query over the socket: one next, then complete
    assert answer["type"] == "next" and answer["payload"] == {"data": {"thingsAggregate": {"count": 20}}}


def test_bad_subscriptions_get_an_error_message_and_the_connection_stays(live: Live) -> None:
    bad = {
        "{ nope }": "GRAPHQL_VALIDATION_FAILED",
        "subscription { things { id } orders { id } }": "GRAPHQL_VALIDATION_FAILED",  # one root field
        'subscription { things(from: {seq: "1", time: "2020-01-01T00:00:00Z"}) { id } }': None,
        'subscription { things(from: {time: "infinity"}) { id } }': None,
        "subscription { orders(where: {id: {eq: \"x\"}}) { id } }": "GRAPHQL_VALIDATION_FAILED",
    }

    async def run() -> None:
        client = await Client.connect(live.ws_url)
        for n, (query, code) in enumerate(bad.items()):
            await client.subscribe(str(n), query)
            message = await client.receive()
            assert message["type"] == "error" and message["id"] == str(n), message
            assert message["payload"][0]["message"]
            if code:
                assert message["payload"][0]["extensions"]["code"] == code, message
        start = next_seq(live)  # and the connection still serves
        live.sql("UPDATE things SET n = 7 WHERE id = 1")
        await client.subscribe("ok", SUB, {"s": str(start)})
        (ok,) = await client.nexts(1)
        assert ok["payload"]["data"] == {"things": {"id": 1, "n": 7}}
        await client.close()

    asyncio.run(run())


def test_plain_http_refuses_a_subscription_with_a_clear_error(live: Live) -> None:
    response = httpx.post(live.server.url + "/graphql", json={"query": "subscription { things { id } }"})
    assert response.status_code == 400
    assert "WebSocket" in response.json()["errors"][0]["message"]


def test_tenant_tokens_see_their_tenants_events_only(guarded: Live) -> None:
    start = next_seq(guarded)
    guarded.sql("UPDATE things SET n = 1 WHERE id = 1", tenant="acme")
    guarded.sql("UPDATE things SET n = 2 WHERE id = 2", tenant="globex")
    guarded.sql("UPDATE things SET n = 3 WHERE id = 3")

    async def seen(token: str, count: int) -> list[int]:
        client = await Client.connect(guarded.ws_url, {"Authorization": f"Bearer {token}"})
        await client.subscribe("1", SUB, {"s": str(start)})
        got = [m["payload"]["data"]["things"]["id"] for m in await client.nexts(count)]
        try:
            extra = await client.receive(timeout=1.5)
        except TimeoutError:
            extra = None
        await client.close()
        assert extra is None, extra
        return got

    assert asyncio.run(seen(ACME, 1)) == [1]
    assert asyncio.run(seen(GLOBEX, 1)) == [2]
    assert asyncio.run(seen(TOKEN, 3)) == [1, 2, 3]  # a plain token sees every tenant
    # A tenant token is for subscriptions: queries with it are refused.
    refused = httpx.post(guarded.server.url + "/graphql", json={"query": "{ __typename }"},
                         headers={"Authorization": f"Bearer {ACME}"})
    assert refused.status_code == 401


def test_server_sent_events_carry_the_same_messages(live: Live) -> None:
    start = next_seq(live)
    live.sql("UPDATE things SET n = 41 WHERE id = 1", "UPDATE things SET n = 42 WHERE id = 2")
    events: list[tuple[str, str]] = []
    body = {"query": SUB, "variables": {"s": str(start)}}
    with httpx.stream("POST", live.server.url + "/graphql", json=body, timeout=30,
                      headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind is not None:
                events.append((kind, line.removeprefix("data: ")))
                if len(events) == 2:
                    break
    payloads = [json.loads(data) for kind, data in events]
    assert [k for k, _ in events] == ["next", "next"]
    assert [p["data"]["things"] for p in payloads] == [{"id": 1, "n": 41}, {"id": 2, "n": 42}]
    # A refused one is a `next` with errors, then `complete`.
    refused = httpx.post(live.server.url + "/graphql", json={"query": "subscription { things { nope } }"},
                         headers={"Accept": "text/event-stream"}, timeout=30)
    assert refused.status_code == 200
    assert "event: next" in refused.text and "errors" in refused.text and "event: complete" in refused.text
