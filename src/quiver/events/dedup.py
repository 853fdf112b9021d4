"""Redis dedup in front of a sink: skip events this sink already wrote. An optimisation only.

After a write succeeds, the written event ids are recorded in Redis sets, one per sink and
range of 100,000 ``seq`` values (``quiver:dedup:<sink>:<seq // 100000>``), each expiring
after the TTL; a redelivered batch then skips them instead of writing them again. A set per
range keeps it to a few Redis commands per batch: one ``SMISMEMBER`` to check and one
``SADD`` + ``EXPIRE`` to record per range, where a key per event cost one command per
event (~20k events/s, slower than the sinks). The sinks
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
BUCKET = 100_000  # seq values per Redis set


class RedisDedup:
    def __init__(self, url: str, sink: str, *, ttl_seconds: int = 86_400, retry_after: float = 2.0,
                 metrics: EventMetrics | None = None) -> None:
        self.redis: Redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=0.5)
        self.sink = sink
        self.ttl = ttl_seconds
        self.retry_after = retry_after
        self.metrics = metrics or EventMetrics()
        self.down_since: float | None = None
        self.metrics.dedup_up.labels(sink).set(1)

    def _key(self, seq: int) -> str:
        return f"quiver:dedup:{self.sink}:{seq // BUCKET}"

    def _buckets(self, events: Sequence[tuple[str, int]]) -> dict[str, list[str]]:
        buckets: dict[str, list[str]] = {}
        for event_id, seq in events:
            buckets.setdefault(self._key(seq), []).append(event_id)
        return buckets

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

    async def seen(self, events: Sequence[tuple[str, int]]) -> set[str]:
        """The ids (of ``(event_id, seq)`` pairs) this sink already wrote; empty while Redis is down."""
        if not events or not self.active:
            return set()
        buckets = self._buckets(events)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, ids in buckets.items():
                    pipe.smismember(key, ids)
                answers = await pipe.execute()
        except (RedisError, OSError) as error:
            self._failed(error)
            return set()
        self._ok()
        found = {e for ids, flags in zip(buckets.values(), answers, strict=True)
                 for e, flag in zip(ids, flags, strict=True) if flag}
        if found:
            self.metrics.dedup_skipped.labels(self.sink).inc(len(found))
        return found

    async def mark(self, events: Sequence[tuple[str, int]]) -> None:
        """Record ``(event_id, seq)`` pairs as written by this sink."""
        if not events or not self.active:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, ids in self._buckets(events).items():
                    pipe.sadd(key, *ids)
                    pipe.expire(key, self.ttl)
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._failed(error)
            return
        self._ok()

    async def close(self) -> None:
        await self.redis.aclose()
