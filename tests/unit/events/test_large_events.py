"""Large events and malformed messages, the pure parts: packing references, checking events and references."""

from __future__ import annotations

from typing import Any

import orjson

from quiver.arrow.events import event_problem, events_to_batch
from quiver.events import bus
from quiver.events.consumer import Delivered, _chunks
from quiver.events.relay import pack

LIMIT = 1000  # a payload limit small enough for the test rows


def _row(seq: int, data: str = "{}", entity: str = "orders") -> tuple[Any, ...]:
    return (seq, f"00000000-0000-0000-0000-{seq:012d}", entity, str(seq), "update", 1_700_000_000_000_000 + seq,
            data, ["note"], "alice", None)


def _event(n: int, **changes: Any) -> dict[str, Any]:
    return {"event_id": f"00000000-0000-0000-0000-{n:012d}", "seq": n, "entity": "orders", "entity_id": str(n),
            "op": "insert", "occurred_at": 1_700_000_000_000_000, "data": "{}", "changed": None, "actor": None,
            "tenant_id": None, **changes}


def test_an_event_over_the_payload_limit_travels_as_a_reference_beside_the_others() -> None:
    big = '{"note": "' + "x" * 5000 + '"}'
    packed = pack([_row(1), _row(2, big), _row(3)], bus.Topology("t"), 1000, 1 << 20, payload_limit=LIMIT)
    [(subject, body, msg_id)] = packed.messages  # the reference is small: one message for all three
    assert subject == "t.events.orders" and msg_id == "orders.1-3.3"
    first, reference, third = orjson.loads(body)
    assert first["seq"] == 1 and third["seq"] == 3 and "data" in first
    [(key, stored)] = packed.large
    event = orjson.loads(stored)
    assert key == event["event_id"] == reference["event_id"] == reference[bus.REF]
    assert event["data"] == big and event["changed"] == ["note"]
    assert reference == {"event_id": key, "seq": 2, "entity": "orders", "op": "update",
                         "occurred_at": 1_700_000_000_000_002, "$ref": key, "size": len(stored)}
    assert bus.is_reference(reference) and bus.reference_problem(reference) is None


def test_without_a_payload_limit_nothing_goes_out_of_band() -> None:
    big = '{"note": "' + "x" * 5000 + '"}'
    packed = pack([_row(1), _row(2, big)], bus.Topology("t"), 1000, LIMIT)
    assert packed.large == [] and [len(orjson.loads(b)) for _, b, _ in packed.messages] == [1, 1]


def test_packing_is_deterministic_so_a_republish_is_identical() -> None:
    rows = [_row(s, '{"n": "' + "y" * (3000 * (s % 2)) + '"}') for s in range(1, 9)]
    first = pack(rows, bus.Topology("t"), 1000, 1 << 20, payload_limit=LIMIT)
    again = pack(rows, bus.Topology("t"), 1000, 1 << 20, payload_limit=LIMIT)
    assert first == again and len(first.large) == 4


def test_the_event_check_names_what_is_wrong() -> None:
    assert event_problem(_event(1)) is None
    assert event_problem(_event(1, changed=["a"], actor="x", tenant_id="t")) is None
    assert event_problem([1]) == "not a JSON object but list"
    assert event_problem({k: v for k, v in _event(1).items() if k != "op"}) == "field op is missing"
    assert event_problem(_event(1, seq="1")) == "field seq is str, not int"
    assert event_problem(_event(1, seq=True)) == "field seq is bool, not int"
    assert event_problem(_event(1, occurred_at=1.5)) == "field occurred_at is float, not int"
    assert event_problem(_event(1, seq=1 << 63)) == f"field seq ({1 << 63}) is outside int64"
    assert event_problem(_event(1, actor=7)) == "field actor is int, not str or null"
    assert event_problem(_event(1, changed="note")) == "field changed is not a list of strings or null"
    assert event_problem(_event(1, data={"id": 1})) == "field data is dict, not str"
    events_to_batch([_event(1), _event(2, changed=["a"])])  # what passes the check builds a batch


def test_a_malformed_reference_is_recognised() -> None:
    reference = bus.large_reference(_event(5), 123)
    assert bus.reference_problem(reference) is None
    assert bus.reference_problem({**reference, "size": "123"}) == "large-event reference: field size is str, not int"
    assert bus.reference_problem({"$ref": 7}) == "large-event reference: field event_id is NoneType, not str"
    assert bus.Topology("ns").large_bucket == "NS_LARGE_EVENTS"


def test_writes_are_cut_by_bytes_with_a_larger_event_alone() -> None:
    items = [Delivered(None, _event(i), size) for i, size in enumerate([10, 10, 100, 10, 10, 10])]
    assert [[d.event["seq"] for d in chunk] for chunk in _chunks(items, 30)] == [[0, 1], [2], [3, 4, 5]]
    assert list(_chunks([], 30)) == []
