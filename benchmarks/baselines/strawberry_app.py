"""A typical Python GraphQL stack: the benchmark baseline for Quiver's query planes.

Strawberry (code-first schema) with an ``Order`` type holding the benchmark's 8 fields,
a root resolver that runs ``SELECT ... FROM orders LIMIT %s`` with psycopg 3 (async pool,
default text results) and returns ``Order`` objects, served by Strawberry's ASGI app under
uvicorn. graphql-core resolves every field of every object; the response is encoded with
the stdlib ``json`` module (Strawberry's default). Values have Quiver's forms: int8 as a
string (a ``BigInt`` scalar), numeric as a string (Strawberry's ``Decimal``), timestamps in
ISO 8601 in UTC, ``meta`` as a JSON object.

Run: ``python -m benchmarks.baselines.strawberry_app --database-url URL --port P`` (from the repo root).
It answers ``POST /graphql`` and ``GET /health``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import NewType

import strawberry
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from benchmarks.common.baseline import pooled_app, serve

#: int8 travels as a string, as in Quiver (JavaScript clients cannot hold every int8 as a number).
BigInt = NewType("BigInt", int)

QUERY_SQL = "SELECT id, uuid, customer_id, status, total, is_paid, placed_at, meta FROM orders LIMIT %s"


@strawberry.type
class Order:
    """A customer's purchase (8 of the demo table's columns)."""

    id: BigInt
    uuid: uuid.UUID
    customer_id: BigInt
    status: str
    total: decimal.Decimal
    is_paid: bool
    placed_at: dt.datetime
    meta: JSON


@strawberry.type
class Query:
    """The root query type."""

    @strawberry.field
    async def orders(self, info: Info, limit: int = 100) -> list[Order]:
        """The first ``limit`` orders."""
        pool: AsyncConnectionPool = info.context["pool"]
        async with pool.connection() as conn, conn.cursor(row_factory=class_row(Order)) as cur:
            await cur.execute(QUERY_SQL, (limit,))
            return await cur.fetchall()


Context = dict[str, object]


class OrdersGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with the connection pool in the context."""

    def __init__(self, schema: strawberry.Schema, pool: AsyncConnectionPool) -> None:
        super().__init__(schema, graphql_ide=None)
        self.pool = pool

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        return {"request": request, "response": response, "pool": self.pool}


def create_schema() -> strawberry.Schema:
    """The code-first schema, with the ``BigInt`` scalar."""
    big_int = strawberry.scalar(name="BigInt", serialize=str, parse_value=int)
    return strawberry.Schema(query=Query, config=StrawberryConfig(scalar_map={BigInt: big_int}))


def create_app(database_url: str, pool_size: int = 4) -> Starlette:
    """The baseline ASGI app over ``database_url``."""

    def routes(pool: AsyncConnectionPool) -> list[BaseRoute]:
        return [Route("/graphql", OrdersGraphQL(create_schema(), pool), methods=["GET", "POST"])]

    return pooled_app(database_url, pool_size, routes)


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the baseline on loopback."""
    serve("benchmarks.baselines.strawberry_app", __doc__, create_app, "STRAWBERRY_DATABASE_URL", 8002, argv)


if __name__ == "__main__":
    main()
