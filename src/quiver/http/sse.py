"""GraphQL over Server-Sent Events (the graphql-sse "distinct connections" mode).

A GET or POST to /graphql with ``Accept: text/event-stream`` answers ``text/event-stream``:
one ``event: next`` per result (the same messages as the WebSocket's ``next`` payloads),
and ``event: complete`` at the end. A refused request (validation, a filter PostgreSQL
refuses, NATS unreachable) is one ``next`` with ``errors`` and then ``complete``. A comment
line every ``KEEPALIVE`` seconds keeps idle connections open through proxies. A connection
too slow to take its messages gets a last ``next`` whose error has code ``TOO_SLOW``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from graphql import GraphQLError
from starlette.responses import StreamingResponse

from quiver.errors import database_error
from quiver.execute.json_plane import error_body
from quiver.http.subscribe import TOO_SLOW, CutOff, Outbox, Subscriptions
from quiver.plan.build import PlanError
from quiver.subscriptions.subscriber import Subscriber

KEEPALIVE = 15.0
MEDIA_TYPE = "text/event-stream"


def _event(kind: str, data: bytes | str = b"") -> str:
    text = data.decode() if isinstance(data, bytes) else data
    return f"event: {kind}\ndata: {text}\n\n"


def _errors(errors: list[GraphQLError]) -> str:
    formatted = error_body(errors, data_null=False).decode()
    return _event("next", formatted) + _event("complete")


async def sse_response(subscriptions: Subscriptions, tenant: str | None, query: str,
                       variables: Mapping[str, Any] | None, name: str | None) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_stream(subscriptions, tenant, query, variables, name), media_type=MEDIA_TYPE,
                             headers=headers)


async def _stream(subscriptions: Subscriptions, tenant: str | None, query: str,
                  variables: Mapping[str, Any] | None, name: str | None) -> AsyncIterator[str]:
    outbox = Outbox(subscriptions.bound)
    subscriber: Subscriber | None = None
    try:
        try:
            prepared = await subscriptions.plan(query, variables, name)
            if prepared.operation.kind != "subscription":
                yield _event("next", await subscriptions.execute_once(prepared)) + _event("complete")
                return

            def fail(error: GraphQLError) -> None:
                outbox.finish([_errors([error])])

            subscriber = subscriptions.subscriber(
                prepared, tenant, lambda messages: outbox.push([_event("next", m) for m in messages]), fail)
            await subscriptions.hub.subscribe(subscriber)
        except PlanError as error:
            yield _errors(error.errors)
            return
        except GraphQLError as error:
            yield _errors([error])
            return
        except Exception as exc:  # noqa: BLE001 - classified (an outage, else INTERNAL with an id)
            yield _errors([database_error(exc)])
            return
        while True:
            frame = await outbox.get(KEEPALIVE)
            yield ": keepalive\n\n" if frame is None else frame
    except CutOff as cut:
        if str(cut):
            yield _errors([GraphQLError(str(cut), extensions={"code": TOO_SLOW})])
    finally:
        if subscriber is not None:
            subscriptions.hub.unsubscribe(subscriber)
