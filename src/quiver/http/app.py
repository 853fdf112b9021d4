"""The HTTP routes: POST/GET /graphql (JSON, Arrow IPC, SSE), WebSocket /graphql, GraphiQL, /health, /metrics.

The endpoint only answers requests; ``quiver.server`` builds it, loads the schema, opens
the pools and runs the Flight server beside it. The event loop only moves bytes: planning,
execution, serialisation and Arrow IPC encoding run in worker threads, so one heavy request
never stalls the others. Every failure is an answer with a code (``quiver.errors``), never a
traceback or a dropped connection.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import orjson
from graphql import GraphQLError, GraphQLSchema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute

from quiver.auth import token_ok
from quiver.config import Settings
from quiver.db import Database
from quiver.errors import database_error, http_status
from quiver.execute.arrow_plane import ArrowQuery, ArrowRequestError, IpcStream, data_root
from quiver.execute.json_plane import QueryRun, Result, error_body, run_mutation
from quiver.http.graphiql import PAGE, assets
from quiver.http.metrics import Metrics
from quiver.http.sse import MEDIA_TYPE as SSE_TYPE
from quiver.http.sse import sse_response
from quiver.http.subscribe import Subscriptions
from quiver.http.ws import GraphQLWebSocket
from quiver.live.datasets import CONSISTENCIES, LiveDatasets
from quiver.plan.build import PlanError, Prepared, prepare
from quiver.sql.params import BadValue

JSON_TYPE = "application/json"
ARROW_TYPE = "application/vnd.apache.arrow.stream"
GRAPHQL_RESPONSE_TYPE = "application/graphql-response+json"


class BadRequest(Exception):
    """A request that is not a well-formed GraphQL-over-HTTP request (answered 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GraphQLEndpoint:
    """Answers GraphQL over HTTP for one schema; ``schema`` is set once it is loaded."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.metrics = Metrics()
        self.schema: GraphQLSchema | None = None
        self.subscriptions: Subscriptions | None = None  # set by the server: the hub needs NATS settings
        self.live: LiveDatasets | None = None  # set by the server when QUIVER_LIVE_ENTITIES names any

    # -- request parsing ---------------------------------------------------------
    async def read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        limit = self.settings.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BadRequest(413, f"request body exceeds the maximum of {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"request body exceeds the maximum of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def params_from(payload: Any) -> tuple[str, Mapping[str, Any] | None, str | None]:
        if not isinstance(payload, dict):
            raise BadRequest(400, "the request body must be a JSON object")
        query = payload.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequest(400, "the request must have a `query` string")
        variables = payload.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise BadRequest(400, "`variables` must be a JSON object")
        name = payload.get("operationName")
        if name is not None and not isinstance(name, str):
            raise BadRequest(400, "`operationName` must be a string")
        return query, variables, name

    async def parse_request(self, request: Request) -> tuple[str, Mapping[str, Any] | None, str | None]:
        if request.method == "GET":
            args = request.query_params
            try:
                variables = orjson.loads(args["variables"]) if args.get("variables") else None
            except orjson.JSONDecodeError as error:
                raise BadRequest(400, f"`variables` is not valid JSON: {error}") from None
            return self.params_from({"query": args.get("query"), "variables": variables,
                                     "operationName": args.get("operationName")})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (JSON_TYPE, "", "application/graphql+json"):
            raise BadRequest(415, f"unsupported content type {content_type!r}; send application/json")
        body = await self.read_body(request)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise BadRequest(400, f"malformed JSON body: {error}") from None
        return self.params_from(payload)

    # -- the endpoint ----------------------------------------------------------------
    async def graphql(self, request: Request) -> Response:
        try:
            return await self.answer(request)
        except Exception as exc:  # noqa: BLE001 - a bug: INTERNAL with an error id (logged), never a traceback
            return self.failure(database_error(exc), JSON_TYPE)

    async def answer(self, request: Request) -> Response:
        if request.method == "GET" and "text/html" in request.headers.get("accept", "") \
                and "query" not in request.query_params:
            return HTMLResponse(PAGE)
        started = time.perf_counter()
        accept = request.headers.get("accept", "")
        media = GRAPHQL_RESPONSE_TYPE if GRAPHQL_RESPONSE_TYPE in accept else JSON_TYPE
        if SSE_TYPE in accept and self.subscriptions is not None:
            return await self.sse(request, self.subscriptions)
        if not token_ok(request.headers.get("authorization"), self.settings.tokens):
            self.metrics.requests.labels("unknown", "unauthenticated").inc()
            return self.unauthenticated(media)
        try:
            query, variables, name = await self.parse_request(request)
        except BadRequest as bad:
            self.metrics.requests.labels("unknown", "bad_request").inc()
            return Response(error_body([GraphQLError(bad.message, extensions={"code": "BAD_REQUEST"})]),
                            status_code=bad.status, media_type=media)
        schema = self.schema
        assert schema is not None
        try:
            prepared: Prepared = await anyio.to_thread.run_sync(
                prepare, schema, query, variables, name, self.settings.limits())
        except PlanError as error:
            return self.respond_errors(error.errors, media, "invalid")
        kind = prepared.operation.kind
        if kind == "subscription":
            refusal = GraphQLError("subscriptions are served over WebSocket (graphql-transport-ws) or as "
                                   "Server-Sent Events (Accept: text/event-stream)", extensions={"code": "BAD_REQUEST"})
            return self.failure(refusal, media, kind)
        if ARROW_TYPE in accept:
            return await self.arrow_response(prepared.operation, request, started)
        if kind == "mutation" and request.method == "GET":
            refusal = GraphQLError("mutations must be sent with POST", extensions={"code": "METHOD_NOT_ALLOWED"})
            return Response(error_body([refusal]), status_code=405, media_type=media, headers={"Allow": "POST"})
        if kind == "mutation":
            result = await run_mutation(self.db, self.settings, schema, prepared)
        else:
            result = await QueryRun(self.db, self.settings, schema, prepared).start()
        return self.respond(result, media, kind, started)

    async def sse(self, request: Request, subscriptions: Subscriptions) -> Response:
        """GraphQL over Server-Sent Events; tenant tokens apply (``auth.tenant_of``)."""
        allowed, tenant = subscriptions.authorize(request.headers.get("authorization"))
        if not allowed:
            return self.unauthenticated(JSON_TYPE)
        try:
            query, variables, name = await self.parse_request(request)
        except BadRequest as bad:
            return Response(error_body([GraphQLError(bad.message, extensions={"code": "BAD_REQUEST"})]),
                            status_code=bad.status, media_type=JSON_TYPE)
        self.metrics.requests.labels("subscription", "ok").inc()
        return await sse_response(subscriptions, tenant, query, variables, name)

    def unauthenticated(self, media: str) -> Response:
        refusal = GraphQLError("a valid bearer token is required", extensions={"code": "UNAUTHENTICATED"})
        return Response(error_body([refusal]), status_code=401, media_type=media,
                        headers={"WWW-Authenticate": "Bearer"})

    def failure(self, error: GraphQLError, media: str, kind: str = "unknown") -> Response:
        """One error as the whole response, with the HTTP status of its code."""
        self.metrics.requests.labels(kind, "error").inc()
        self.metrics.errors.labels(_code(error, "INTERNAL")).inc()
        return Response(error_body([error]), status_code=http_status(error), media_type=media)

    async def arrow_response(self, operation: Any, request: Request, started: float) -> Response:
        """The same result as an Arrow IPC stream (one root field per request).

        Errors before the first batch are JSON error responses; after it, an in-band final
        batch carrying ``quiver-error`` (see ``IpcStream``).
        """
        compression = request.headers.get("quiver-arrow-compression") or None
        if compression not in (None, "lz4", "zstd"):
            return self.arrow_refusal("quiver-arrow-compression must be lz4 or zstd")
        consistency = request.headers.get("quiver-consistency") or None
        if consistency is not None and consistency not in CONSISTENCIES:
            return self.arrow_refusal("quiver-consistency must be fresh or any")
        try:
            query = ArrowQuery.compile(data_root(operation))
        except (ArrowRequestError, BadValue) as error:
            return self.arrow_refusal(str(error))
        try:
            stream = await anyio.to_thread.run_sync(self.ipc_stream, query, consistency, compression)
        except Exception as exc:  # noqa: BLE001 - e.g. NOT_FRESH: an ordinary error response
            return self.failure(database_error(exc, path=[query.root.key]), JSON_TYPE, "query")
        try:
            head = await anyio.to_thread.run_sync(stream.first)
        except Exception as exc:  # noqa: BLE001 - before the first byte: an ordinary error response
            await anyio.to_thread.run_sync(stream.close)
            return self.failure(database_error(exc, path=[query.root.key]), JSON_TYPE, "query")
        self.metrics.requests.labels("query", "ok").inc()
        return StreamingResponse(self._measured(arrow_ipc_stream(head, stream), "arrow", started),
                                 media_type=ARROW_TYPE)

    def ipc_stream(self, query: ArrowQuery, consistency: str | None, compression: str | None) -> IpcStream:
        """From the live dataset when it can answer (docs/live.md), else from PostgreSQL (blocking)."""
        live = self.live.answer(query, consistency) if self.live is not None else None
        schema, batches = live or (query.schema, query.batches(self.db.adbc, self.settings))
        return IpcStream(query.root.key, schema, batches, compression)

    def arrow_refusal(self, message: str) -> Response:
        error = GraphQLError(message, extensions={"code": "BAD_REQUEST"})
        self.metrics.requests.labels("query", "bad_request").inc()
        return Response(error_body([error]), status_code=400, media_type=JSON_TYPE)

    def respond_errors(self, errors: list[GraphQLError], media: str, outcome: str) -> Response:
        self.metrics.requests.labels("unknown", outcome).inc()
        for error in errors:
            self.metrics.errors.labels(_code(error, "GRAPHQL_VALIDATION_FAILED")).inc()
        status = 400 if media == GRAPHQL_RESPONSE_TYPE else 200
        formatted = [e.formatted for e in errors]
        for item in formatted:
            item.setdefault("extensions", {}).setdefault("code", "GRAPHQL_VALIDATION_FAILED")
        return Response(orjson.dumps({"errors": formatted}), status_code=status, media_type=media)

    def respond(self, result: Result, media: str, kind: str, started: float) -> Response:
        for error in result.errors:
            self.metrics.errors.labels(_code(error, "INTERNAL")).inc()
        outcome = "error" if result.errors else "ok"
        self.metrics.requests.labels(kind, outcome).inc()
        if isinstance(result.body, bytes):
            self.metrics.bytes_sent.labels(kind).inc(len(result.body))
            self.metrics.duration.labels(kind).observe(time.perf_counter() - started)
            return Response(result.body, status_code=result.status, media_type=media)
        return StreamingResponse(self._measured(result.body, kind, started), status_code=result.status,
                                 media_type=media)

    async def _measured(self, body: AsyncIterator[bytes], kind: str, started: float) -> AsyncIterator[bytes]:
        sent = 0
        try:
            async for chunk in body:
                sent += len(chunk)
                yield chunk
        finally:
            with contextlib.suppress(Exception):
                await body.aclose()  # type: ignore[attr-defined]
            self.metrics.bytes_sent.labels(kind).inc(sent)
            self.metrics.duration.labels(kind).observe(time.perf_counter() - started)

    async def health(self, _request: Request) -> Response:
        ok = await self.db.healthy()
        return JSONResponse({"status": "ok" if ok else "unavailable", "database": ok}, status_code=200 if ok else 503)

    async def metrics_page(self, request: Request) -> Response:
        """Prometheus text; with tokens configured it needs one too, unless ``metrics_public``."""
        if not self.settings.metrics_public and not token_ok(request.headers.get("authorization"),
                                                             self.settings.tokens):
            return self.unauthenticated(JSON_TYPE)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def arrow_ipc_stream(head: bytes, stream: IpcStream) -> AsyncIterator[bytes]:
    """Send the encoded chunks; each next batch is read and encoded in a worker thread."""
    try:
        yield head
        while (chunk := await anyio.to_thread.run_sync(stream.next)) is not None:
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stream.close)


def _code(error: GraphQLError, default: str) -> str:
    code = (error.extensions or {}).get("code", default)
    return str(code)


Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def http_app(endpoint: GraphQLEndpoint, lifespan: Lifespan) -> Starlette:
    """The Starlette application serving ``endpoint``; ``lifespan`` starts and stops what it needs."""
    subscriptions = endpoint.subscriptions
    websocket = [WebSocketRoute("/graphql", GraphQLWebSocket(subscriptions).serve)] if subscriptions else []
    app = Starlette(
        routes=[
            Route("/graphql", endpoint.graphql, methods=["GET", "POST"]),
            *websocket,
            Route("/health", endpoint.health, methods=["GET"]),
            Route("/metrics", endpoint.metrics_page, methods=["GET"]),
            assets(),
        ],
        lifespan=lifespan,
    )
    app.state.endpoint = endpoint
    return app
