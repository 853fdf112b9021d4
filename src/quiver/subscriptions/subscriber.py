"""One subscription: its compiled filter and selection, where its messages go, and what it has seen.

The transport (WebSocket, SSE) hands over two callbacks: ``deliver`` takes a list of
messages without blocking and answers False when the subscriber's buffer is over its bound
(the transport then cuts it off), and ``fail`` ends the subscription with an error.
``watermark`` is the highest event ``seq`` the subscriber has been given (or skipped as not
matching); any event at or below it is never delivered again, which is what makes the
switch from replay to live, and a re-published message, free of duplicates.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError

from quiver.plan import nodes
from quiver.sql.images import Fragment, SelectionTemplate, where_fragment

Event = dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """One entity's events of a batch, in ``seq`` order, with their ``seq`` list (for bisection).

    Built once per batch, so that what each of a thousand subscribers is shown costs a
    bisection, not a pass over the batch.
    """

    events: list[Event]
    seqs: list[int]

    @classmethod
    def of(cls, entity: str, events: list[Event]) -> Batch:
        """Its entity's own events only (two entities' subjects can coincide), in ``seq`` order."""
        own = sorted((e for e in events if e.get("entity") == entity), key=lambda e: int(e["seq"]))
        return cls(own, [int(e["seq"]) for e in own])


@dataclass(eq=False)
class Subscriber:
    root: nodes.SubscriptionRoot
    tenant: str | None  # only events with this tenant_id (None: every event)
    deliver: Callable[[list[bytes]], bool]
    fail: Callable[[GraphQLError], None]
    match: Fragment | None = None
    template: SelectionTemplate = field(init=False)
    watermark: int = 0
    since_us: int | None = None  # a replay from a time: events that occurred at or after it (microseconds)
    live: bool = False  # receives the entity feed's batches (else it is replaying, and they wait in `pending`)
    pending: list[list[Event]] = field(default_factory=list)
    ended: bool = False

    def __post_init__(self) -> None:
        self.template = SelectionTemplate.of(self.root.entity, self.root.selection)
        if self.root.where is not None:
            self.match = where_fragment(self.root.where)
        start = self.root.start
        if start is not None and start.seq is not None:
            self.watermark = start.seq - 1
        if start is not None and start.time is not None:
            self.since_us = int(start.time.timestamp() * 1_000_000)

    @property
    def entity(self) -> str:
        """The entity name its events carry (subjects of two entities can coincide: events are checked)."""
        return self.root.entity.event_name

    def take(self, batch: Batch) -> Sequence[int]:
        """The indices (ascending) of the batch's events it is to be shown, advancing the watermark past them all.

        Each event once (those above the watermark); then only those in its time range and of
        its tenant (its filter is applied after this).
        """
        start = bisect_right(batch.seqs, self.watermark)
        end = len(batch.seqs)
        if start < end:
            self.watermark = batch.seqs[-1]
        if self.since_us is None and self.tenant is None:
            return range(start, end)
        since, tenant, events = self.since_us or 0, self.tenant, batch.events
        return [i for i in range(start, end) if int(events[i].get("occurred_at") or 0) >= since
                and (tenant is None or events[i].get("tenant_id") == tenant)]

    def pending_events(self) -> int:
        return sum(len(batch) for batch in self.pending)

    def end(self, error: GraphQLError | None = None) -> None:
        """Stop delivering; with ``error``, tell the client why (once)."""
        if self.ended:
            return
        self.ended = True
        self.pending.clear()
        if error is not None:
            self.fail(error)
