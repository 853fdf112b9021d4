"""The JetStream side: one stream of events, one subject per entity: ``quiver.events.<entity>``.

One subject per entity (not per entity and operation) lets a message carry a run of one
entity's events in ``seq`` order whatever their operations, so messages stay large when
inserts, updates and deletes interleave, and a reader of one entity sees its events in order.

The stream deduplicates publishes by ``Nats-Msg-Id`` (= event_id) within its
duplicate window, so a relay that crashes after publishing and before marking the
outbox rows publishes them again harmlessly. Durability of an acknowledged publish
depends on the server's fsync setting (scripts/services runs it with sync always).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Topology:
    """Stream and subject names under one namespace (``quiver`` by default; tests use their own)."""

    namespace: str = "quiver"

    @property
    def stream(self) -> str:
        return f"{self.namespace.upper()}_EVENTS"

    @property
    def prefix(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dlq_stream(self) -> str:
        return f"{self.namespace.upper()}_DLQ"

    @property
    def dlq_prefix(self) -> str:
        return f"{self.namespace}.dlq"

    def subject(self, entity: str) -> str:
        return f"{self.prefix}.{entity_token(entity)}"

    def filter(self, entity: str | None = None) -> str:
        """The subject filter for one entity's events, or for all of them."""
        return self.subject(entity) if entity else f"{self.prefix}.>"


DEFAULT = Topology()


def entity_token(entity: str) -> str:
    """An entity name as one subject token."""
    return _TOKEN.sub("_", entity)


async def connect(url: str, name: str = "quiver") -> tuple[Any, JetStreamContext]:
    """A connection that reconnects forever (events wait in the outbox or stream meanwhile)."""
    nc = await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                            connect_timeout=2, allow_reconnect=True)
    return nc, nc.jetstream(timeout=10)


async def ensure_streams(js: JetStreamContext, topology: Topology = DEFAULT,
                         duplicate_window: float = 900.0) -> None:
    """Create (or update) the events stream and the dead-letter stream."""
    for config in (
        StreamConfig(name=topology.stream, subjects=[f"{topology.prefix}.>"], storage=StorageType.FILE,
                     retention=RetentionPolicy.LIMITS, duplicate_window=duplicate_window),
        StreamConfig(name=topology.dlq_stream, subjects=[f"{topology.dlq_prefix}.>"], storage=StorageType.FILE,
                     retention=RetentionPolicy.LIMITS, duplicate_window=duplicate_window),
    ):
        try:
            await js.stream_info(config.name or "")
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
