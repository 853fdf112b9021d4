"""Flight tickets and descriptor commands: UTF-8 JSON with a ``kind``.

* ``{"kind": "graphql", "query": ..., "variables": {...}, "operationName": ..., "compression": "zstd"}``
* ``{"kind": "entity", "entity": "orders", "range": [lo, hi], "compression": ...}`` — a whole
  table or view (every column), optionally one primary-key range ``lo <= pk < hi``
  (``None`` for an open end); GetFlightInfo hands these out as parallel endpoints.
* ``{"kind": "events", "entity": "orders", "from_seq": 0, "follow": true}`` — the event
  stream of one entity (or all), served by ``flight/events.py``.

The same JSON is accepted as ``FlightDescriptor.cmd``; a path descriptor ``[name]``
means the entity ``name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

COMPRESSIONS = ("lz4", "zstd")


class TicketError(ValueError):
    """A ticket or command that cannot be understood (INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class GraphQLTicket:
    query: str
    variables: dict[str, Any] = field(default_factory=dict)
    operation_name: str | None = None
    compression: str | None = None
    kind: Literal["graphql"] = "graphql"

    def encode(self) -> bytes:
        body: dict[str, Any] = {"kind": "graphql", "query": self.query}
        if self.variables:
            body["variables"] = self.variables
        if self.operation_name:
            body["operationName"] = self.operation_name
        if self.compression:
            body["compression"] = self.compression
        return orjson.dumps(body)


@dataclass(frozen=True)
class EntityTicket:
    entity: str
    range: tuple[Any, Any] | None = None
    compression: str | None = None
    kind: Literal["entity"] = "entity"

    def encode(self) -> bytes:
        body: dict[str, Any] = {"kind": "entity", "entity": self.entity}
        if self.range is not None:
            body["range"] = list(self.range)
        if self.compression:
            body["compression"] = self.compression
        return orjson.dumps(body)


@dataclass(frozen=True)
class EventsTicket:
    entity: str | None = None
    from_seq: int = 0
    follow: bool = False
    compression: str | None = None
    kind: Literal["events"] = "events"

    def encode(self) -> bytes:
        body: dict[str, Any] = {"kind": "events", "from_seq": self.from_seq, "follow": self.follow}
        if self.entity:
            body["entity"] = self.entity
        if self.compression:
            body["compression"] = self.compression
        return orjson.dumps(body)


Ticket = GraphQLTicket | EntityTicket | EventsTicket


def parse_events(body: dict[str, Any], compression: str | None) -> EventsTicket:
    entity, from_seq, follow = body.get("entity"), body.get("from_seq", 0), body.get("follow", False)
    if entity is not None and not isinstance(entity, str):
        raise TicketError("`entity` must be a string")
    if not isinstance(from_seq, int) or isinstance(from_seq, bool) or from_seq < 0:
        raise TicketError("`from_seq` must be a non-negative integer")
    if not isinstance(follow, bool):
        raise TicketError("`follow` must be true or false")
    return EventsTicket(entity, from_seq, follow, compression)


def parse(raw: bytes) -> Ticket:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise TicketError(f"ticket is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise TicketError("ticket must be a JSON object with a `kind`")
    compression = body.get("compression")
    if compression is not None and compression not in COMPRESSIONS:
        raise TicketError(f"`compression` must be one of {', '.join(COMPRESSIONS)}")
    kind = body.get("kind")
    if kind == "graphql":
        query, variables, name = body.get("query"), body.get("variables") or {}, body.get("operationName")
        if not isinstance(query, str) or not query.strip():
            raise TicketError("a graphql ticket needs a `query` string")
        if not isinstance(variables, dict):
            raise TicketError("`variables` must be an object")
        if name is not None and not isinstance(name, str):
            raise TicketError("`operationName` must be a string")
        return GraphQLTicket(query, variables, name, compression)
    if kind == "entity":
        entity, bounds = body.get("entity"), body.get("range")
        if not isinstance(entity, str):
            raise TicketError("an entity ticket needs an `entity` name")
        if bounds is not None and (not isinstance(bounds, list) or len(bounds) != 2):
            raise TicketError("`range` must be [low, high]")
        return EntityTicket(entity, tuple(bounds) if bounds is not None else None, compression)
    if kind == "events":
        return parse_events(body, compression)
    raise TicketError(f"unknown ticket kind {kind!r}; expected 'graphql', 'entity' or 'events'")
