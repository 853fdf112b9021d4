"""The JetStream side: one stream of events, subjects ``quiver.events.<entity>.<op>``.

The stream deduplicates publishes by ``Nats-Msg-Id`` (= event_id) within its
duplicate window, so a relay that crashes after publishing and before marking the
outbox rows publishes them again harmlessly. Durability of an acknowledged publish
depends on the server's fsync setting (scripts/services runs it with sync always).
"""

from __future__ import annotations

import re
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

STREAM = "QUIVER_EVENTS"
PREFIX = "quiver.events"
DLQ_STREAM = "QUIVER_DLQ"
DLQ_PREFIX = "quiver.dlq"
_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def subject(entity: str, op: str) -> str:
    return f"{PREFIX}.{_TOKEN.sub('_', entity)}.{op}"


async def connect(url: str, name: str = "quiver") -> tuple[Any, JetStreamContext]:
    """A connection that reconnects forever (events wait in the outbox or stream meanwhile)."""
    nc = await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                            connect_timeout=2, allow_reconnect=True)
    return nc, nc.jetstream(timeout=10)


async def ensure_streams(js: JetStreamContext, duplicate_window: float = 900.0) -> None:
    """Create (or update) the events stream and the dead-letter stream."""
    for config in (
        StreamConfig(name=STREAM, subjects=[f"{PREFIX}.>"], storage=StorageType.FILE,
                     retention=RetentionPolicy.LIMITS, duplicate_window=duplicate_window),
        StreamConfig(name=DLQ_STREAM, subjects=[f"{DLQ_PREFIX}.>"], storage=StorageType.FILE,
                     retention=RetentionPolicy.LIMITS, duplicate_window=duplicate_window),
    ):
        try:
            await js.stream_info(config.name or "")
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
