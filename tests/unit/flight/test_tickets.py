"""Ticket validation: every malformed field is a TicketError naming it; the dataclass API round-trips."""

from __future__ import annotations

import orjson
import pytest

from quiver.errors import STATUSES
from quiver.flight import tickets
from quiver.flight.status import BY_GRPC, InvalidArgument, NotFound, RequestError, to_status


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "entity", "entity": "orders", "range": [{"a": 1}, None]}, "range.0"),
        ({"kind": "entity", "entity": "orders", "range": [1]}, "range"),
        ({"kind": "entity", "entity": 3}, "entity"),
        ({"kind": "events", "from_seq": -1}, "from_seq"),
        ({"kind": "events", "from_seq": "1"}, "from_seq"),
        ({"kind": "events", "follow": 1}, "follow"),
        ({"kind": "graphql", "query": "{ a }", "variables": [1]}, "variables"),
        ({"kind": "graphql", "query": "{ a }", "operationName": 1}, "operationName"),
        ({"kind": "graphql", "query": "{ a }", "compression": "snappy"}, "compression"),
        ({"kind": "graphql", "query": "{ a }", "extra": True}, "extra"),
    ],
)
def test_bad_fields_are_named(body: dict[str, object], field: str) -> None:
    with pytest.raises(tickets.TicketError, match=f"`{field}`"):
        tickets.parse(orjson.dumps(body))


def test_unknown_kinds_and_huge_values_are_bounded() -> None:
    with pytest.raises(tickets.TicketError) as caught:
        tickets.parse(orjson.dumps({"kind": "k" * 300_000}))
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("ticket", [
    tickets.GraphQLTicket("{ a }", {"n": 1}, "Q", "zstd"),
    tickets.EntityTicket("orders", (1, None), "lz4"),
    tickets.EventsTicket("orders", 5, True),
])
def test_encode_parse_round_trip(ticket: tickets.Ticket) -> None:
    assert tickets.parse(ticket.encode()) == ticket


def test_every_code_has_a_flight_class() -> None:
    assert {status.flight for status in STATUSES.values()} <= set(BY_GRPC)


def test_request_errors_become_clean_statuses() -> None:
    assert isinstance(to_status(RequestError("bad")), InvalidArgument)
    assert isinstance(to_status(tickets.TicketError("bad")), InvalidArgument)
    assert str(NotFound("not found: x")) == "not found: x"
    internal = to_status(RuntimeError("secret /work/path.py"))
    assert "internal error" in str(internal) and "/work" not in str(internal)
