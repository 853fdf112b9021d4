"""What the two subscription transports (WebSocket, SSE) share: who may subscribe, planning, the buffer.

A connection's messages wait in an ``Outbox`` until its socket takes them. The hub only ever
adds to it (never waits); when more than ``subscription_buffer`` messages wait, the outbox
drops them and holds only the reason, and the transport ends the connection with it: a
slow subscriber never slows the feed, the server, or the other subscribers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
from graphql import GraphQLError

from quiver.auth import tenant_of
from quiver.execute.json_plane import QueryRun, run_mutation
from quiver.plan import nodes
from quiver.plan.build import Prepared, prepare
from quiver.subscriptions.hub import Hub
from quiver.subscriptions.subscriber import Subscriber

TOO_SLOW = "TOO_SLOW"


class CutOff(Exception):
    """The connection fell too far behind; ``reason`` is what it is told."""


class Outbox:
    """A connection's queue of outgoing frames, bounded: over the bound it is cut off."""

    def __init__(self, bound: int, on_cut_off: Callable[[str], None] | None = None) -> None:
        self.bound = bound
        self.on_cut_off = on_cut_off  # told at once (a transport blocked on a full socket closes it)
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.reason: str | None = None

    def push(self, frames: list[str]) -> bool:
        """Queue ``frames`` without waiting; False (and cut off) when more than the bound still wait.

        A batch is accepted whole while the queue is within the bound, so a subscriber that keeps
        up is never cut off by one large batch.
        """
        if self.reason is not None:
            return False
        if self.queue.qsize() > self.bound:  # what still waits from earlier batches, not this one
            self.cut_off(f"too slow: more than {self.bound:,} messages were waiting to be sent")
            return False
        for frame in frames:
            self.queue.put_nowait(frame)
        return True

    def cut_off(self, reason: str) -> None:
        """Drop what waits; the reader gets CutOff(reason) next."""
        self.reason = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        if self.on_cut_off is not None:
            self.on_cut_off(reason)

    def finish(self, frames: list[str]) -> None:
        """``frames`` last, then the end (CutOff with an empty reason)."""
        if self.reason is None:
            self.reason = ""
            for frame in frames:
                self.queue.put_nowait(frame)
            self.queue.put_nowait(None)

    async def get(self, timeout: float | None = None) -> str | None:
        """The next frame; None when none came within ``timeout``; raises CutOff at the end."""
        try:
            frame = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if frame is None:
            raise CutOff(self.reason or "")
        return frame

    async def frames(self) -> AsyncIterator[str]:
        """The frames in order; raises CutOff at the end."""
        while True:
            frame = await self.get()
            if frame is not None:
                yield frame


class Subscriptions:
    """Authorises, plans and starts subscriptions for both transports."""

    def __init__(self, endpoint: Any, hub: Hub) -> None:
        self.endpoint = endpoint  # http.app.GraphQLEndpoint (its settings, schema and pools)
        self.hub = hub

    @property
    def bound(self) -> int:
        return int(self.endpoint.settings.subscription_buffer)

    def authorize(self, header: str | None) -> tuple[bool, str | None]:
        """(allowed, tenant) for a bearer header: the token's tenant, if it has one."""
        settings = self.endpoint.settings
        return tenant_of(header, settings.tokens, settings.token_tenants)

    async def plan(self, query: str, variables: Mapping[str, Any] | None, name: str | None) -> Prepared:
        """Parse, validate and plan in a worker thread; raises PlanError."""
        schema, limits = self.endpoint.schema, self.endpoint.settings.limits()
        prepared: Prepared = await anyio.to_thread.run_sync(prepare, schema, query, variables, name, limits)
        return prepared

    async def execute_once(self, prepared: Prepared) -> bytes:
        """A query or mutation sent over a subscription transport: its whole result."""
        endpoint = self.endpoint
        if prepared.operation.kind == "mutation":
            result = await run_mutation(endpoint.db, endpoint.settings, endpoint.schema, prepared)
        else:
            result = await QueryRun(endpoint.db, endpoint.settings, endpoint.schema, prepared).start()
        if isinstance(result.body, bytes):
            return result.body
        return b"".join([chunk async for chunk in result.body])

    def subscriber(self, prepared: Prepared, tenant: str | None, deliver: Callable[[list[bytes]], bool],
                   fail: Callable[[GraphQLError], None]) -> Subscriber:
        """The subscriber of a planned subscription (``hub.subscribe`` starts it); raises GraphQLError."""
        (root,) = prepared.operation.roots  # GraphQL allows one root field per subscription
        if not isinstance(root, nodes.SubscriptionRoot):
            raise GraphQLError("a subscription selects one entity field of Subscription",
                               extensions={"code": "GRAPHQL_VALIDATION_FAILED"})
        return Subscriber(root, tenant, deliver, fail)
