"""Redis dedup in front of a sink: skip events this sink already wrote. An optimisation only.

After a write succeeds, the written event ids are recorded under ``quiver:dedup:<sink>:<id>``
with a TTL; a redelivered batch then skips them instead of writing them again. The sinks
stay idempotent, so losing Redis (or an entry) only costs a duplicate write, never a
duplicate result. Redis down: dedup switches off with a warning and a metric, the
pipeline keeps flowing, and dedup comes back by itself once Redis answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from quiver.events.metrics import EventMetrics

log = logging.getLogger("quiver.dedup")


class RedisDedup:
    def __init__(self, url: str, sink: str, *, ttl_seconds: int = 86_400, retry_after: float = 2.0,
                 metrics: EventMetrics | None = None) -> None:
        self.redis: Redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.sink = sink
        self.ttl = ttl_seconds
        self.retry_after = retry_after
        self.metrics = metrics or EventMetrics()
        self.down_since: float | None = None
        self.metrics.dedup_up.labels(sink).set(1)

    def _key(self, event_id: str) -> str:
        return f"quiver:dedup:{self.sink}:{event_id}"

    @property
    def active(self) -> bool:
        return self.down_since is None or time.monotonic() - self.down_since >= self.retry_after

    def _failed(self, error: Exception) -> None:
        if self.down_since is None:
            log.warning("%s: Redis unavailable (%s); dedup is off until it answers again", self.sink, error)
        self.down_since = time.monotonic()
        self.metrics.dedup_up.labels(self.sink).set(0)

    def _ok(self) -> None:
        if self.down_since is not None:
            log.info("%s: Redis is back; dedup is on again", self.sink)
        self.down_since = None
        self.metrics.dedup_up.labels(self.sink).set(1)

    async def seen(self, event_ids: Sequence[str]) -> set[str]:
        """The ids this sink already wrote (empty while Redis is down)."""
        if not event_ids or not self.active:
            return set()
        try:
            values = await self.redis.mget([self._key(e) for e in event_ids])
        except (RedisError, OSError) as error:
            self._failed(error)
            return set()
        self._ok()
        found = {e for e, v in zip(event_ids, values, strict=True) if v is not None}
        if found:
            self.metrics.dedup_skipped.labels(self.sink).inc(len(found))
        return found

    async def mark(self, event_ids: Sequence[str]) -> None:
        if not event_ids or not self.active:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event_id in event_ids:
                    pipe.set(self._key(event_id), b"1", ex=self.ttl)
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._failed(error)
            return
        self._ok()

    async def close(self) -> None:
        await self.redis.aclose()
