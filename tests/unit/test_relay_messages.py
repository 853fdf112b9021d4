"""How the relay packs outbox rows into JetStream messages (pure logic, no servers)."""

from __future__ import annotations

from typing import Any

import orjson

from quiver.events.bus import Topology
from quiver.events.relay import group_messages


def _row(seq: int, entity: str, op: str = "update", data: str = "{}") -> tuple[Any, ...]:
    return (seq, f"00000000-0000-0000-0000-{seq:012d}", entity, str(seq), op, 1_700_000_000_000_000 + seq, data,
            None, "alice", None)


def _seqs(body: bytes) -> list[int]:
    return [event["seq"] for event in orjson.loads(body)]


def test_interleaved_entities_make_one_message_each_in_seq_order() -> None:
    rows = [_row(s, "orders" if s % 2 else "customers", ("insert", "update", "delete")[s % 3]) for s in range(1, 101)]
    messages = group_messages(rows, Topology("t"), max_events=1000, max_bytes=1 << 20)
    assert [subject for subject, _, _ in messages] == ["t.events.orders", "t.events.customers"]
    orders, customers = (_seqs(body) for _, body, _ in messages)
    assert orders == list(range(1, 101, 2)) and customers == list(range(2, 101, 2))
    assert {e["op"] for e in orjson.loads(messages[0][1])} == {"insert", "update", "delete"}
    assert messages[0][2] == "orders.1-99.50"  # the message id names its exact seq range


def test_messages_are_cut_at_the_event_and_byte_limits() -> None:
    rows = [_row(s, "orders") for s in range(1, 26)]
    by_count = group_messages(rows, Topology("t"), max_events=10, max_bytes=1 << 20)
    assert [len(_seqs(body)) for _, body, _ in by_count] == [10, 10, 5]
    size = len(by_count[0][1]) // 10 + 1
    by_bytes = group_messages(rows, Topology("t"), max_events=1000, max_bytes=4 * size)
    assert all(len(body) <= 4 * size for _, body, _ in by_bytes)
    assert [s for _, body, _ in by_bytes for s in _seqs(body)] == list(range(1, 26))


def test_an_event_larger_than_the_byte_limit_travels_alone() -> None:
    rows = [_row(1, "orders"), _row(2, "orders", data="x" * 5000), _row(3, "orders")]
    messages = group_messages(rows, Topology("t"), max_events=1000, max_bytes=1000)
    assert [_seqs(body) for _, body, _ in messages] == [[1], [2], [3]]


def test_entity_names_become_one_subject_token() -> None:
    [(subject, _, _)] = group_messages([_row(1, "order lines.v2")], Topology("t"), max_events=10, max_bytes=1 << 20)
    assert subject == "t.events.order_lines_v2"
    assert Topology("t").filter("order lines.v2") == subject and Topology("t").filter() == "t.events.>"
