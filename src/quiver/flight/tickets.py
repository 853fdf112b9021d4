"""Flight tickets and descriptor commands: UTF-8 JSON with a ``kind``.

* ``{"kind": "graphql", "query": ..., "variables": {...}, "operationName": ..., "compression": "zstd",
  "consistency": "fresh"}`` (``consistency``: for live datasets, docs/live.md; ``entity`` tickets take it too)
* ``{"kind": "entity", "entity": "orders", "range": [lo, hi], "compression": ...}`` — a whole
  table or view (every column), optionally one primary-key range ``lo <= pk < hi``
  (``None`` for an open end); GetFlightInfo hands these out as parallel endpoints.
* ``{"kind": "events", "entity": "orders", "from_seq": 0, "follow": true}`` — the event
  stream of one entity (or all), served by ``flight/events.py``.

Each kind is validated by a strict pydantic model (no coercion, no unknown fields), so a
malformed ticket is a ``TicketError`` naming the field, never a TypeError further on.

The same JSON is accepted as ``FlightDescriptor.cmd``; a path descriptor ``[name]``
means the entity ``name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from quiver.errors import bounded

COMPRESSIONS = ("lz4", "zstd")


class TicketError(ValueError):
    """A ticket or command that cannot be understood (INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class GraphQLTicket:
    query: str
    variables: dict[str, Any] = field(default_factory=dict)
    operation_name: str | None = None
    compression: str | None = None
    consistency: str | None = None  # "fresh": a live dataset first applies every change committed before
    kind: Literal["graphql"] = "graphql"

    def encode(self) -> bytes:
        body: dict[str, Any] = {"kind": "graphql", "query": self.query}
        if self.variables:
            body["variables"] = self.variables
        if self.operation_name:
            body["operationName"] = self.operation_name
        if self.compression:
            body["compression"] = self.compression
        if self.consistency:
            body["consistency"] = self.consistency
        return orjson.dumps(body)


@dataclass(frozen=True)
class EntityTicket:
    entity: str
    range: tuple[Any, Any] | None = None
    compression: str | None = None
    consistency: str | None = None
    kind: Literal["entity"] = "entity"

    def encode(self) -> bytes:
        body: dict[str, Any] = {"kind": "entity", "entity": self.entity}
        if self.range is not None:
            body["range"] = list(self.range)
        if self.compression:
            body["compression"] = self.compression
        if self.consistency:
            body["consistency"] = self.consistency
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

Bound = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)] | None
Compression = Literal["lz4", "zstd"] | None
Consistency = Literal["fresh", "any"] | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    kind: str
    compression: Compression = None


class _GraphQL(_Body):
    consistency: Consistency = None
    query: Annotated[StrictStr, Field(min_length=1)]
    variables: dict[str, Any] | None = None
    operationName: StrictStr | None = None  # the GraphQL-over-HTTP spelling


class _Entity(_Body):
    consistency: Consistency = None
    entity: StrictStr
    range: Annotated[list[Bound], Field(min_length=2, max_length=2)] | None = None  # [low, high]


class _Events(_Body):
    entity: StrictStr | None = None
    from_seq: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] = 0
    follow: StrictBool = False


_MODELS: dict[str, type[_Body]] = {"graphql": _GraphQL, "entity": _Entity, "events": _Events}


def _problem(error: ValidationError) -> str:
    """The first validation failure, naming the field; never the (maybe huge) input itself."""
    first = error.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "ticket"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return bounded(f"invalid ticket: `{where}`: {first['msg']}{more}")


def parse(raw: bytes) -> Ticket:
    """A ticket or descriptor command; ``TicketError`` says what is wrong with it."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise TicketError(bounded(f"ticket is not JSON: {error}")) from None
    if not isinstance(body, dict):
        raise TicketError("ticket must be a JSON object with a `kind`")
    kind = body.get("kind")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise TicketError(f"unknown ticket kind {bounded(kind)}; expected 'graphql', 'entity' or 'events'")
    query = body.get("query")
    if model is _GraphQL and (not isinstance(query, str) or not query.strip()):
        raise TicketError("a graphql ticket needs a `query` string")
    try:
        valid = model.model_validate(body)
    except ValidationError as error:
        raise TicketError(_problem(error)) from None
    if isinstance(valid, _GraphQL):
        return GraphQLTicket(valid.query, dict(valid.variables or {}), valid.operationName, valid.compression,
                             valid.consistency)
    if isinstance(valid, _Entity):
        bounds = (valid.range[0], valid.range[1]) if valid.range is not None else None
        return EntityTicket(valid.entity, bounds, valid.compression, valid.consistency)
    assert isinstance(valid, _Events)
    return EventsTicket(valid.entity, valid.from_seq, valid.follow, valid.compression)
