"""The ASGI application: POST/GET /graphql, GraphiQL, /health, /metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import orjson
import psycopg
from graphql import GraphQLError, GraphQLSchema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from quiver.config import Settings
from quiver.db import Database
from quiver.execute.json_plane import QueryRun, Result, error_body, run_mutation
from quiver.http.graphiql import PAGE
from quiver.http.metrics import Metrics
from quiver.plan.build import PlanError, prepare
from quiver.schema.graphql import build_schema
from quiver.schema.introspect import introspect

JSON_TYPE = "application/json"
GRAPHQL_RESPONSE_TYPE = "application/graphql-response+json"


class BadRequest(Exception):
    """A request that is not a well-formed GraphQL-over-HTTP request (answered 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def load_schema(settings: Settings) -> GraphQLSchema:
    with psycopg.connect(settings.database_url, connect_timeout=10) as conn:
        model = introspect(conn, settings.schemas, settings.exclude_tables)
    return build_schema(model)


class GraphQLEndpoint:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, settings.pool_size)
        self.metrics = Metrics()
        self.schema: GraphQLSchema | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.schema = await anyio.to_thread.run_sync(load_schema, self.settings)
        await self.db.open()
        try:
            yield
        finally:
            await self.db.close()

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
        if request.method == "GET" and "text/html" in request.headers.get("accept", "") \
                and "query" not in request.query_params:
            return HTMLResponse(PAGE)
        started = time.perf_counter()
        media = GRAPHQL_RESPONSE_TYPE if GRAPHQL_RESPONSE_TYPE in request.headers.get("accept", "") else JSON_TYPE
        try:
            query, variables, name = await self.parse_request(request)
        except BadRequest as bad:
            self.metrics.requests.labels("unknown", "bad_request").inc()
            return Response(error_body([GraphQLError(bad.message, extensions={"code": "BAD_REQUEST"})]),
                            status_code=bad.status, media_type=media)
        assert self.schema is not None
        try:
            prepared = prepare(self.schema, query, variables, name, self.settings.limits())
        except PlanError as error:
            return self.respond_errors(error.errors, media, "invalid")
        kind = prepared.operation.kind
        if kind == "mutation" and request.method == "GET":
            refusal = GraphQLError("mutations must be sent with POST", extensions={"code": "METHOD_NOT_ALLOWED"})
            return Response(error_body([refusal]), status_code=405, media_type=media, headers={"Allow": "POST"})
        if kind == "mutation":
            result = await run_mutation(self.db, self.settings, self.schema, prepared)
        else:
            result = await QueryRun(self.db, self.settings, self.schema, prepared).start()
        return self.respond(result, media, kind, started)

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

    async def metrics_page(self, _request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _code(error: GraphQLError, default: str) -> str:
    code = (error.extensions or {}).get("code", default)
    return str(code)


def create_app(settings: Settings | None = None) -> Starlette:
    """The Quiver HTTP application for ``settings`` (environment QUIVER_* by default)."""
    endpoint = GraphQLEndpoint(settings or Settings())
    app = Starlette(
        routes=[
            Route("/graphql", endpoint.graphql, methods=["GET", "POST"]),
            Route("/health", endpoint.health, methods=["GET"]),
            Route("/metrics", endpoint.metrics_page, methods=["GET"]),
        ],
        lifespan=endpoint.lifespan,
    )
    app.state.endpoint = endpoint
    return app
