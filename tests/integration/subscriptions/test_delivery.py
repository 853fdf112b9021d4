"""Every committed change that matches arrives once, in ``seq`` order; others do not; a cursor resumes.

The oracle is the outbox itself, read with plain SQL over the row images (``data ->> 'kind'``),
not Quiver's evaluator. The writes are the kinds that broke capture before: key changes,
deletes, inserts, updates that change nothing, and TRUNCATE.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson

from tests.integration.subscriptions.conftest import Client, Live, next_seq

QUERY = """subscription($from: BigInt!) { things(where: {kind: {eq: "a"}}, from: {seq: $from}) {
  id kind n owner: customer { name } } }"""


def random_writes(seed: int, count: int) -> list[str]:
    """Random DML on ``things`` (ids 1..60): inserts, updates, no-op updates, key changes, deletes."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        key, kind = rng.randint(1, 60), rng.choice("abc")
        out.append(rng.choice([
            f"INSERT INTO things VALUES ({key}, '{kind}', {rng.randint(0, 9)}, {rng.randint(1, 5)}, NULL) "
            "ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, n = excluded.n",
            f"UPDATE things SET kind = '{kind}' WHERE id = {key}",
            f"UPDATE things SET n = n + 1 WHERE id % 7 = {key % 7}",
            f"UPDATE things SET n = n WHERE id = {key}",
            f"UPDATE things SET id = id + 60 WHERE id = {key} "
            f"AND NOT EXISTS (SELECT FROM things WHERE id = {key + 60})",
            f"DELETE FROM things WHERE id = {key}",
        ]))
    return out


def expected(live: Live, start: int) -> list[tuple[int, str, Any]]:
    """(seq, op, id) of the changes the subscription must deliver: kind a, or a truncate."""
    rows = live.outbox(f"seq >= {start} AND (op = 'truncate' OR data ->> 'kind' = 'a')")
    return [(seq, op, None if op == "truncate" else data["id"]) for seq, op, data in rows]


def received(messages: list[dict[str, Any]]) -> list[tuple[int, str, Any]]:
    out = []
    for m in messages:
        row, extensions = m["payload"]["data"]["things"], m["payload"]["extensions"]
        out.append((extensions["seq"], extensions["op"], None if row is None else row["id"]))
    return out


def test_matching_changes_arrive_once_in_seq_order(live: Live) -> None:
    start = next_seq(live)
    for batch in range(4):
        live.sql(*random_writes(batch, 25))
    live.sql("TRUNCATE things")
    live.sql(*random_writes(99, 25))
    want = expected(live, start)
    assert any(op == "truncate" for _, op, _ in want) and any(op == "delete" for _, op, _ in want)

    async def run() -> list[dict[str, Any]]:
        client = await Client.connect(live.ws_url)
        await client.subscribe("1", QUERY, {"from": str(start)})
        messages = await client.nexts(len(want))
        # Nothing more arrives: a no-match change, then silence beyond it.
        live.sql("UPDATE things SET kind = 'b' WHERE kind = 'b'")
        try:
            extra = await client.receive(timeout=2.0)
        except TimeoutError:
            extra = None
        await client.close()
        assert extra is None, f"an unexpected message: {extra}"
        return messages

    messages = asyncio.run(run())
    assert received(messages) == want
    by_seq = {seq: data for seq, _, data in live.outbox(f"seq >= {start}")}
    with_names = _customer_names(live)
    for m in messages:  # values and the related row, as the image and the table say
        row, seq = m["payload"]["data"]["things"], m["payload"]["extensions"]["seq"]
        if row is not None:
            image = by_seq[seq]
            assert (row["kind"], row["n"]) == (image["kind"], image["n"])
            assert row["owner"] == ({"name": with_names[image["customer_id"]]} if image["customer_id"] else None)


def _customer_names(live: Live) -> dict[int, str]:
    import psycopg

    with psycopg.connect(live.url) as conn:
        return {int(i): str(n) for i, n in conn.execute("SELECT id, name FROM customers").fetchall()}


def test_a_subscriber_that_reconnects_with_its_last_cursor_misses_nothing(live: Live) -> None:
    start = next_seq(live)
    live.sql(*random_writes(7, 40))
    first_part = expected(live, start)
    assert len(first_part) >= 6

    async def run() -> list[tuple[int, str, Any]]:
        client = await Client.connect(live.ws_url)
        await client.subscribe("1", QUERY, {"from": str(start)})
        got = received(await client.nexts(5))
        await client.close()  # gone mid-stream
        live.sql(*random_writes(8, 40))
        again = await Client.connect(live.ws_url)
        await again.subscribe("1", QUERY, {"from": str(got[-1][0] + 1)})  # the documented resume: last seq + 1
        rest = expected(live, got[-1][0] + 1)
        got += received(await again.nexts(len(rest)))
        await again.close()
        return got

    assert asyncio.run(run()) == expected(live, start)


def test_live_only_subscription_and_several_on_one_connection(live: Live) -> None:
    """Without `from`: what is published after it started; two ids on one socket, each its own filter."""

    async def run() -> None:
        client = await Client.connect(live.ws_url)
        await client.subscribe("a", 'subscription { things(where: {kind: {eq: "a"}}) { id } }')
        await client.subscribe("b", 'subscription { things(where: {kind: {eq: "b"}}) { id } }')
        # Live-only starts "now": write until one marker arrives, then the real changes.
        for attempt in range(100):
            live.sql(f"UPDATE things SET n = {attempt} WHERE id = 2")  # kind a
            try:
                first = await client.receive(timeout=0.5)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("a live-only subscription never received anything")
        assert first["id"] == "a"
        start = next_seq(live)
        await asyncio.sleep(0.5)  # markers still in flight arrive first: drop them below by seq
        live.sql("UPDATE things SET n = -1 WHERE id IN (3, 4)")
        want = {"a": [4], "b": [3]}
        got: dict[str, list[int]] = {"a": [], "b": []}
        while got != want:
            message = await client.receive()
            assert message["type"] == "next"
            if message["payload"]["extensions"]["seq"] >= start:
                got[message["id"]].append(message["payload"]["data"]["things"]["id"])
            assert all(len(got[k]) <= len(want[k]) for k in got), got
        await client.send({"id": "a", "type": "complete"})
        await asyncio.sleep(0.3)
        live.sql("UPDATE things SET n = -2 WHERE id IN (3, 4)")
        message = await client.receive()
        assert message["id"] == "b", message  # "a" is completed: nothing more for it
        await client.close()

    asyncio.run(run())


def test_from_time_replays_what_occurred_since(live: Live) -> None:
    live.sql("UPDATE things SET n = 100 WHERE id = 2")
    live.wait_published()
    with_time = live.outbox("TRUE")[-1][0]
    import psycopg

    with psycopg.connect(live.url) as conn:
        row = conn.execute("SELECT occurred_at FROM quiver.outbox WHERE seq = %s", (with_time,)).fetchone()
    assert row is not None
    since = row[0]
    live.sql("UPDATE things SET n = 101 WHERE id = 2")

    async def run() -> list[dict[str, Any]]:
        client = await Client.connect(live.ws_url)
        await client.subscribe("t", "subscription($t: DateTime!) { things(where: {id: {eq: 2}}, from: {time: $t}) "
                                    "{ n } }", {"t": since.isoformat()})
        messages = await client.nexts(2)
        await client.close()
        return messages

    assert [m["payload"]["data"]["things"]["n"] for m in asyncio.run(run())] == [100, 101]


def test_the_message_shape(live: Live) -> None:
    start = next_seq(live)
    live.sql("INSERT INTO things VALUES (500, 'a', 5, NULL, NULL)", "UPDATE things SET n = 6 WHERE id = 500",
             "DELETE FROM things WHERE id = 500")

    async def run() -> list[dict[str, Any]]:
        client = await Client.connect(live.ws_url)
        await client.subscribe("x", "subscription($s: BigInt!) { things(where: {id: {eq: 500}}, from: {seq: $s}) "
                                    "{ __typename id n } }", {"s": str(start)})
        messages = await client.nexts(3)
        await client.close()
        return messages

    payloads = [m["payload"] for m in asyncio.run(run())]
    assert [p["extensions"]["op"] for p in payloads] == ["insert", "update", "delete"]
    assert payloads[1]["extensions"]["changed"] == ["n"]
    assert payloads[0]["data"] == {"things": {"__typename": "Thing", "id": 500, "n": 5}}
    assert payloads[2]["data"]["things"]["n"] == 6  # a delete carries the deleted row
    assert [p["extensions"]["seq"] for p in payloads] == sorted(p["extensions"]["seq"] for p in payloads)
    assert orjson.loads(orjson.dumps(payloads)) == payloads
