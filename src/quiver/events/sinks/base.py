"""The Sink protocol every destination implements, and the two kinds of failure.

``write`` receives one record batch in ``arrow.events.EVENT_SCHEMA``. It returns only
once the sink has durably accepted every event in it, and must be idempotent: the same
events may arrive again (after a crash, a timeout, a redelivery) and must not show up
twice in the sink's documented query. It raises ``RetryableError`` for failures that
may pass (the sink is down, overloaded, timing out) and ``PermanentError`` for events
the sink will never take (the consumer then isolates them and dead-letters them).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa


class SinkError(Exception):
    """A failed write."""


class RetryableError(SinkError):
    """Try again later: the events stay unacknowledged in JetStream meanwhile."""


class PermanentError(SinkError):
    """The sink rejects these events for good (bad data, mapping conflict, ...).

    ``rejected`` names the refused events (event_id → reason) when the sink knows them, as a
    bulk API's per-item results do; the consumer then dead-letters exactly those and writes
    the rest. Without it the consumer narrows the batch down by bisection.
    """

    def __init__(self, message: str, rejected: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.rejected = dict(rejected or {})


@runtime_checkable
class Sink(Protocol):
    """A destination for events."""

    name: str

    async def setup(self) -> None:
        """Create what the sink needs (tables, templates); idempotent."""

    async def write(self, batch: pa.RecordBatch) -> None:
        """Durably store ``batch``; idempotent per event_id."""

    async def close(self) -> None:
        """Release connections."""
