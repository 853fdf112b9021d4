"""The JetStream side: one stream of events, one subject per entity: ``quiver.events.<entity>``.

One subject per entity (not per entity and operation) lets a message carry a run of one
entity's events in ``seq`` order whatever their operations, so messages stay large when
inserts, updates and deletes interleave, and a reader of one entity sees its events in order.

The stream deduplicates publishes by ``Nats-Msg-Id`` (= event_id) within its
duplicate window, so a relay that crashes after publishing and before marking the
outbox rows publishes them again harmlessly. Durability of an acknowledged publish
depends on the server's fsync setting (scripts/services runs it with sync always).

An event too large for one message (the server's ``max_payload``, 1 MiB by default) travels
out of band: its encoded body is an object (key = event_id) in the JetStream Object Store
bucket ``<NAMESPACE>_LARGE_EVENTS`` and the message carries a reference in its place
(``large_reference``; ``LargeEvents`` stores and resolves them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import nats.errors
import orjson
from nats.js import JetStreamContext
from nats.js.api import (
    ObjectMeta,
    ObjectMetaOptions,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import (
    APIError,
    BadObjectMetaError,
    BadRequestError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
)
from nats.js.object_store import OBJ_CHUNKS_PRE_TEMPLATE, OBJ_STREAM_TEMPLATE, ObjectStore

T = TypeVar("T")

log = logging.getLogger("quiver.bus")
_TOKEN = re.compile(r"[^A-Za-z0-9_-]")
HEADROOM = 4096  # headers and framing of a message, kept free below the server's max_payload


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

    @property
    def large_bucket(self) -> str:
        """The Object Store bucket of events too large for a message (its stream is ``OBJ_<bucket>``)."""
        return f"{self.namespace.upper()}_LARGE_EVENTS"

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
    """Create (or update) the events stream and the dead-letter stream.

    The large-event bucket is created next to them by the first event that needs it
    (``LargeEvents.put``): most deployments never store one, and need no third stream.
    """
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


def max_payload(js: JetStreamContext) -> int:
    """The largest message body the connected server takes, minus ``HEADROOM`` for headers and framing."""
    server_limit = getattr(getattr(js, "_nc", None), "max_payload", 0) or 1 << 20
    return int(server_limit) - HEADROOM


# -- large events ----------------------------------------------------------------------------------------------
# A message carries, in place of an event too large for it, this reference (the one definition):
#   {"event_id": <uuid>, "seq": <int>, "entity": <str>, "op": <str>, "occurred_at": <µs>,
#    "$ref": <object key = event_id>, "size": <bytes of the encoded event>}
# The object holds the encoded event exactly as it would have travelled inline (``encode_event``).
# Only small fields are copied into the reference: enough to route, deduplicate, order and list it
# (entity_id is not: a table without a primary key identifies rows by their whole content).
REF = "$ref"
REFERENCE_FIELDS = ("event_id", "seq", "entity", "op", "occurred_at")


def large_reference(event: dict[str, Any], size: int) -> dict[str, Any]:
    """The reference a message carries in place of ``event`` (whose encoded body is ``size`` bytes)."""
    return {**{name: event[name] for name in REFERENCE_FIELDS}, REF: event["event_id"], "size": size}


def is_reference(event: Any) -> bool:
    return isinstance(event, dict) and REF in event


_REFERENCE_TYPES: dict[str, type] = {"event_id": str, "seq": int, "entity": str, "op": str, "occurred_at": int,
                                     REF: str, "size": int}


def reference_problem(reference: dict[str, Any]) -> str | None:
    """Why a reference is malformed; None when it is well formed."""
    for name, kind in _REFERENCE_TYPES.items():
        value = reference.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"large-event reference: field {name} is {type(value).__name__}, not {kind.__name__}"
    return None


class MissingLargeEvent(LookupError):
    """A reference whose object is not in the bucket (deleted, or the bucket is gone): it cannot be resolved."""


class CorruptLargeEvent(ValueError):
    """An object that does not hold the event its reference names (size, digest or content differ)."""


class LargeEvents:
    """The out-of-band store of large events: a JetStream Object Store bucket (``Topology.large_bucket``).

    The bucket is created by the first ``put`` (most deployments never need it). Objects are
    kept like the events stream keeps its messages (no age limit): a reference in the stream or
    in a dead letter must stay resolvable. Chunks are as large as a message may be. Reading uses
    direct gets of the chunks in order (linear, and a missing chunk is an error, not a hang).
    """

    def __init__(self, js: JetStreamContext, topology: Topology) -> None:
        self.js = js
        self.topology = topology
        self.bucket = topology.large_bucket
        self.stream = OBJ_STREAM_TEMPLATE.format(bucket=self.bucket)
        self._store: ObjectStore | None = None

    async def _open(self, create: bool) -> ObjectStore:
        if self._store is None:
            try:
                self._store = await self.js.object_store(self.bucket)
            except NotFoundError:
                if not create:
                    raise MissingLargeEvent(f"the large-event bucket {self.bucket} does not exist") from None
                config = ObjectStoreConfig(storage=StorageType.FILE,
                                           description="events too large for one message, by event_id")
                try:
                    self._store = await self.js.create_object_store(self.bucket, config=config)
                except BadRequestError:  # created meanwhile by another process
                    self._store = await self.js.object_store(self.bucket)
        return self._store

    async def put(self, key: str, body: bytes) -> bool:
        """Store ``body`` under ``key`` unless an identical object is there; True when it was written.

        Idempotent: a relay that publishes the same rows again finds each object stored (complete:
        its metadata is written after its last chunk) and leaves it alone, so a consumer reading
        it meanwhile never sees its chunks replaced.
        """
        store = await self._open(create=True)
        try:
            info = await store.get_info(key)
        except NotFoundError:
            info = None
        if info is not None and info.size == len(body) and info.digest == _digest(body):
            return False
        chunk = max_payload(self.js)
        await store.put(key, body, meta=ObjectMeta(name=key, options=ObjectMetaOptions(max_chunk_size=chunk)))
        return True

    async def get(self, key: str) -> bytes:
        """The object ``key``; ``MissingLargeEvent`` if it is not there, ``CorruptLargeEvent`` if it is damaged."""
        store = await self._open(create=False)
        try:
            info = await store.get_info(key)
        except NotFoundError:
            raise MissingLargeEvent(f"large event {key} is not in the bucket {self.bucket}") from None
        except BadObjectMetaError as error:
            raise CorruptLargeEvent(f"large event {key}: unreadable metadata: {error!r}") from None
        subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=info.nuid)
        data = bytearray()
        seq = 0
        while len(data) < (info.size or 0):
            try:
                chunk = await self.js.get_msg(self.stream, seq=seq + 1, subject=subject, next=True, direct=True)
            except NotFoundError:
                raise MissingLargeEvent(f"large event {key}: chunks missing after {len(data)} of {info.size} "
                                        f"bytes in the bucket {self.bucket}") from None
            data += chunk.data or b""
            seq = chunk.seq or seq + 1
        body = bytes(data)
        if len(body) != info.size or info.digest != _digest(body):
            raise CorruptLargeEvent(f"large event {key}: {len(body)} bytes read, digest mismatch with its metadata")
        return body

    async def resolve(self, reference: dict[str, Any]) -> dict[str, Any]:
        """The event a reference stands for (``MissingLargeEvent`` / ``CorruptLargeEvent`` if it cannot be had)."""
        key = str(reference[REF])
        body = await self.get(key)
        if len(body) != reference.get("size", len(body)):
            raise CorruptLargeEvent(f"large event {key}: {len(body)} bytes, the reference says {reference['size']}")
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise CorruptLargeEvent(f"large event {key}: not JSON: {error}") from None
        if not isinstance(event, dict) or event.get("event_id") != reference.get("event_id") \
                or event.get("seq") != reference.get("seq"):
            raise CorruptLargeEvent(f"large event {key}: the object holds another event")
        return event

    async def resolve_patiently(self, reference: dict[str, Any], backoff: float, max_backoff: float,
                                on_wait: Callable[[], Awaitable[None]]) -> dict[str, Any]:
        """``resolve``, waiting out NATS failures (not answering, unavailable) with capped backoff.

        ``on_wait`` runs before each wait (the consumer keeps its messages in progress). Missing,
        corrupt and other failures are raised.
        """
        attempt = 0
        while True:
            try:
                return await self.resolve(reference)
            except (MissingLargeEvent, CorruptLargeEvent):
                raise
            except APIError as error:
                if not isinstance(error, ServiceUnavailableError | ServerError):
                    raise  # a request JetStream refuses: not an outage
                failure: Exception = error
            except (nats.errors.Error, TimeoutError, OSError) as error:
                failure = error
            attempt += 1
            delay = min(max_backoff, backoff * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.0)
            log.warning("reading large event %s failed (%s: %s), attempt %d, next in %.2fs", reference.get(REF),
                        type(failure).__name__, failure, attempt, delay)
            await on_wait()
            await asyncio.sleep(delay)

    async def resolve_all(self, events: Iterable[dict[str, Any]], concurrency: int = 4) -> list[dict[str, Any]]:
        """``events`` with every reference replaced by its event, in order."""
        events = list(events)
        references = [i for i, event in enumerate(events) if is_reference(event)]
        if not references:
            return events
        limit = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with limit:
                events[index] = await self.resolve(events[index])

        await asyncio.gather(*(one(i) for i in references))
        return events

    async def delete_bucket(self) -> None:
        """Remove the bucket and every object in it (tests and teardown)."""
        with contextlib.suppress(NotFoundError):
            await self.js.delete_object_store(self.bucket)
        self._store = None


def _digest(body: bytes) -> str:
    """The Object Store's digest notation for ``body``."""
    return "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode()


def runs_by_weight(items: Iterable[T], weight: Callable[[T], int], max_weight: int) -> Iterator[list[T]]:
    """``items`` in order, in runs whose weights add up to at most ``max_weight`` (one heavier item alone)."""
    run: list[T] = []
    total = 0
    for item in items:
        w = weight(item)
        if run and total + w > max_weight:
            yield run
            run, total = [], 0
        run.append(item)
        total += w
    if run:
        yield run
