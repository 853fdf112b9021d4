"""GraphQL over WebSocket, the ``graphql-transport-ws`` protocol (graphql-ws; GraphiQL, Apollo, urql use it).

The client sends ``connection_init`` (its bearer token in the upgrade request's
``Authorization`` header or in the payload as ``{"Authorization": "Bearer ..."}``, which is
where GraphiQL's Headers tab puts it), then ``subscribe`` messages; each subscription's
results arrive as ``next`` messages until ``complete``. Queries and mutations work too (one
``next``). Protocol violations close the socket with the protocol's codes (4400 bad message,
4401 not initialised, 4403 forbidden, 4408 no init in time, 4409 duplicate id, 4429 a second
init); a connection too slow to take its messages is closed with 1013 and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.websockets import WebSocket, WebSocketDisconnect

from quiver.errors import database_error
from quiver.execute.json_plane import error_body
from quiver.http.subscribe import CutOff, Outbox, Subscriptions
from quiver.plan.build import PlanError
from quiver.subscriptions.subscriber import Subscriber

PROTOCOL = "graphql-transport-ws"
INIT_TIMEOUT = 10.0  # seconds for the client's connection_init
log = logging.getLogger("quiver.http.ws")


class Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _frame(kind: str, op_id: str | None = None, payload: bytes | None = None) -> str:
    head = b'{"type":' + orjson.dumps(kind) + (b',"id":' + orjson.dumps(op_id) if op_id is not None else b"")
    return (head + (b',"payload":' + payload if payload is not None else b"") + b"}").decode()


class GraphQLWebSocket:
    """The ASGI WebSocket endpoint at /graphql."""

    def __init__(self, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions

    async def serve(self, websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols") or []
        if offered and PROTOCOL not in offered:
            await websocket.close(4406, "Subprotocol not acceptable")
            return
        await websocket.accept(subprotocol=PROTOCOL if offered else None)
        await Connection(self.subscriptions, websocket).run()


class Connection:
    """One client: its state, its operations and its outbox."""

    def __init__(self, subscriptions: Subscriptions, websocket: WebSocket) -> None:
        self.subscriptions = subscriptions
        self.websocket = websocket
        self.outbox = Outbox(subscriptions.bound, on_cut_off=self.cut_off)
        self.sender: asyncio.Task[None] | None = None
        self.acknowledged = False
        self.tenant: str | None = None
        self.operations: dict[str, asyncio.Task[None]] = {}
        self.subscribers: dict[str, Subscriber] = {}

    def cut_off(self, reason: str) -> None:
        """Too slow: stop the send in flight (its socket is full) so the close goes out now."""
        if self.sender is not None:
            self.sender.cancel()

    async def run(self) -> None:
        sender = self.sender = asyncio.create_task(self.send_all())
        receiver = asyncio.create_task(self.receive_all())
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            code, reason = 1000, ""
            for task in done:
                error = CutOff(self.outbox.reason or "") if task.cancelled() else task.exception()
                if isinstance(error, Close):
                    code, reason = error.code, error.reason
                elif isinstance(error, CutOff):
                    code, reason = 1013, str(error)[:120]  # a close reason holds at most 123 bytes
                elif error is not None and not isinstance(error, WebSocketDisconnect):
                    log.error("websocket connection failed", exc_info=error)
                    code, reason = 1011, "internal error"
            if receiver in done and code == 1000:
                return  # the client went away
            with contextlib.suppress(Exception):
                await self.websocket.close(code, reason)
        finally:
            for task in (sender, receiver, *self.operations.values()):
                task.cancel()
            for subscriber in self.subscribers.values():
                self.subscriptions.hub.unsubscribe(subscriber)

    async def send_all(self) -> None:
        async for frame in self.outbox.frames():
            await self.websocket.send_text(frame)

    async def receive_all(self) -> None:
        try:
            first = await asyncio.wait_for(self.receive(), INIT_TIMEOUT)
        except TimeoutError:
            raise Close(4408, "Connection initialisation timeout") from None
        if first is None:
            return
        await self.handle(first)
        while (message := await self.receive()) is not None:
            await self.handle(message)

    async def receive(self) -> dict[str, Any] | None:
        event = await self.websocket.receive()
        if event["type"] == "websocket.disconnect":
            return None
        raw = event.get("text") if event.get("text") is not None else event.get("bytes")
        try:
            message = orjson.loads(raw or b"")
        except orjson.JSONDecodeError:
            raise Close(4400, "Invalid message: not JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise Close(4400, "Invalid message: an object with a `type` is expected")
        return message

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "connection_init":
            self.initialise(message.get("payload"))
        elif kind == "ping":
            self.outbox.push([_frame("pong")])
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            self.subscribe(message)
        elif kind == "complete":
            self.complete(message.get("id"))
        else:
            raise Close(4400, f"Invalid message: unknown type {kind[:60]!r}")

    def initialise(self, payload: Any) -> None:
        if self.acknowledged:
            raise Close(4429, "Too many initialisation requests")
        header = self.websocket.headers.get("authorization")
        if isinstance(payload, dict):
            inner = payload.get("headers")
            headers: dict[str, Any] = inner if isinstance(inner, dict) else payload
            offered = headers.get("Authorization") or headers.get("authorization")
            header = offered if isinstance(offered, str) else header
        allowed, self.tenant = self.subscriptions.authorize(header)
        if not allowed:
            raise Close(4403, "Forbidden: a valid bearer token is required")
        self.acknowledged = True
        self.outbox.push([_frame("connection_ack")])

    def subscribe(self, message: dict[str, Any]) -> None:
        if not self.acknowledged:
            raise Close(4401, "Unauthorized")
        op_id, payload = message.get("id"), message.get("payload")
        if not isinstance(op_id, str) or not op_id or not isinstance(payload, dict):
            raise Close(4400, "Invalid message: subscribe needs an `id` string and a `payload` object")
        if op_id in self.operations:
            raise Close(4409, f"Subscriber for {op_id[:80]} already exists")
        query, variables, name = payload.get("query"), payload.get("variables"), payload.get("operationName")
        if not isinstance(query, str) or (variables is not None and not isinstance(variables, dict)) or (
                name is not None and not isinstance(name, str)):
            raise Close(4400, "Invalid message: the payload needs a `query` string (and object `variables`)")
        self.operations[op_id] = asyncio.create_task(self.operate(op_id, query, variables, name))

    def complete(self, op_id: Any) -> None:
        if not isinstance(op_id, str):
            raise Close(4400, "Invalid message: complete needs an `id` string")
        task = self.operations.pop(op_id, None)
        subscriber = self.subscribers.pop(op_id, None)
        if subscriber is not None:
            self.subscriptions.hub.unsubscribe(subscriber)
        if task is not None and not task.done():
            task.cancel()

    async def operate(self, op_id: str, query: str, variables: dict[str, Any] | None, name: str | None) -> None:
        """Plan and run one operation; a subscription stays registered until completed or failed."""
        try:
            prepared = await self.subscriptions.plan(query, variables, name)
            if prepared.operation.kind != "subscription":
                body = await self.subscriptions.execute_once(prepared)
                self.outbox.push([_frame("next", op_id, body), _frame("complete", op_id)])
                self.operations.pop(op_id, None)
                return

            def deliver(messages: list[bytes]) -> bool:
                return self.outbox.push([_frame("next", op_id, m) for m in messages])

            def fail(error: GraphQLError) -> None:
                self.subscribers.pop(op_id, None)
                self.operations.pop(op_id, None)
                self.outbox.push([_frame("next", op_id, error_body([error], data_null=False)),
                                  _frame("complete", op_id)])

            subscriber = self.subscriptions.subscriber(prepared, self.tenant, deliver, fail)
            self.subscribers[op_id] = subscriber  # before it starts: a `complete` meanwhile ends it
            await self.subscriptions.hub.subscribe(subscriber)
        except PlanError as error:
            self.refuse(op_id, error.errors)
        except GraphQLError as error:
            self.subscribers.pop(op_id, None)
            self.refuse(op_id, [error])
        except Exception as exc:  # noqa: BLE001 - classified (an outage, else INTERNAL with an id)
            self.refuse(op_id, [database_error(exc)])

    def refuse(self, op_id: str, errors: list[GraphQLError]) -> None:
        self.operations.pop(op_id, None)
        formatted = [e.formatted for e in errors]
        for item in formatted:
            item.setdefault("extensions", {}).setdefault("code", "GRAPHQL_VALIDATION_FAILED")
        self.outbox.push([_frame("error", op_id, orjson.dumps(formatted))])
