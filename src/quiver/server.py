"""The composition root: one schema, one set of pools, the HTTP app and the Flight server.

Everything a running Quiver server is made of is built here and started and stopped
together by the HTTP app's lifespan, so neither plane owns the other: ``http/`` answers
requests, ``flight/`` answers RPCs, and this module wires both to the same schema and pools.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

import anyio
import psycopg
import uvicorn
from graphql import GraphQLSchema
from starlette.applications import Starlette

from quiver.config import Settings
from quiver.db import Database
from quiver.flight.server import QuiverFlightServer
from quiver.http.app import GraphQLEndpoint, http_app
from quiver.http.subscribe import Subscriptions
from quiver.live.datasets import LiveCollector, LiveDatasets
from quiver.schema.graphql import build_schema
from quiver.schema.introspect import introspect
from quiver.schema.model import Model
from quiver.subscriptions.hub import Hub


class StartupError(Exception):
    """A server that cannot start for an expected reason (port taken, database unreachable): one line says why."""


def preflight(settings: Settings) -> None:
    """Check what ``serve`` needs before starting, so each expected failure is one clear sentence."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(settings.database_url)
    except psycopg.ProgrammingError as error:
        reason = " ".join(str(error).split())
        raise StartupError(f"not a PostgreSQL URL: {settings.database_url!r} ({reason})") from None
    where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
    try:
        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[-1].removeprefix("FATAL:  ")
        raise StartupError(f"cannot use the database at {where}: {reason}") from None
    ports = [("HTTP", settings.port)] + ([("Flight", settings.flight_port)] if settings.flight_port else [])
    for plane, port in ports:
        with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and gRPC bind
            try:
                probe.bind((settings.host, port))
            except OSError as error:
                raise StartupError(f"cannot listen for {plane} on {settings.host}:{port}: "
                                   f"{error.strerror or error}") from None


def load_schema(settings: Settings) -> tuple[Model, GraphQLSchema]:
    """Introspect the configured schemas and derive the GraphQL schema (blocking)."""
    with psycopg.connect(settings.database_url, connect_timeout=10) as conn:
        model = introspect(conn, settings.schemas, settings.exclude_tables)
    return model, build_schema(model)


class QuiverServer:
    """The parts of one server and their order of start and stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, settings.pool_size, settings.pool_timeout_seconds)
        self.endpoint = GraphQLEndpoint(settings, self.db)
        self.hub = Hub(settings, self.db.psycopg)
        self.endpoint.subscriptions = Subscriptions(self.endpoint, self.hub)
        self.flight: QuiverFlightServer | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        model, schema = await anyio.to_thread.run_sync(load_schema, self.settings)
        self.endpoint.schema = schema
        await self.db.open()
        live = LiveDatasets(self.settings, model, self.db.adbc) if self.settings.live_entities else None
        try:
            if live is not None:
                await live.start()
                self.endpoint.live = live
                self.endpoint.metrics.registry.register(LiveCollector(live))
            if self.settings.flight_port is not None:
                self.flight = QuiverFlightServer(self.settings, schema, model, self.db.adbc, live)
                self.flight.start()
            yield
        finally:
            if live is not None:
                await live.close()
            await self.hub.close()
            if self.flight is not None:
                await anyio.to_thread.run_sync(self.flight.stop)
                self.flight = None
            await self.db.close()


def create_app(settings: Settings | None = None) -> Starlette:
    """The Quiver ASGI application for ``settings`` (environment QUIVER_* by default).

    Its lifespan loads the schema, opens the pools and runs the Flight server (unless
    ``flight_port`` is None); any ASGI server can run it.
    """
    server = QuiverServer(settings or Settings())
    return http_app(server.endpoint, server.lifespan)


def uvicorn_server(settings: Settings) -> uvicorn.Server:
    """A uvicorn server for ``create_app(settings)`` on the configured host and port."""
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_level="warning",
                            lifespan="on")
    return uvicorn.Server(config)


def serve(settings: Settings | None = None) -> None:
    """Serve HTTP (and Flight) until interrupted (blocking)."""
    uvicorn_server(settings or Settings()).run()
