"""A typical Python GraphQL stack: the benchmark baseline for Quiver's query planes.

Strawberry (code-first schema) with an ``Order`` type holding the benchmark's 8 fields,
a root resolver that runs ``SELECT ... FROM orders LIMIT %s`` with psycopg 3 (async pool,
default text results) and returns ``Order`` objects, served by Strawberry's ASGI app under
uvicorn. graphql-core resolves every field of every object; the response is encoded with
the stdlib ``json`` module (Strawberry's default). Values have Quiver's forms: int8 as a
string (a ``BigInt`` scalar), numeric as a string (Strawberry's ``Decimal``), timestamps in
ISO 8601 in UTC, ``meta`` as a JSON object.

Run: ``python benchmarks/baselines/strawberry_app.py --database-url URL --port P``.
It answers ``POST /graphql`` and ``GET /health``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import decimal
import os
import uuid
from collections.abc import AsyncIterator
from typing import NewType

import strawberry
import uvicorn
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

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
    pool = AsyncConnectionPool(
        database_url, min_size=pool_size, max_size=pool_size, open=False,
        kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    async def health(_request: Request) -> Response:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        return JSONResponse({"status": "ok"})

    graphql_app = OrdersGraphQL(create_schema(), pool)
    return Starlette(
        routes=[Route("/graphql", graphql_app, methods=["GET", "POST"]), Route("/health", health, methods=["GET"])],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the baseline on loopback."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", default=os.environ.get("STRAWBERRY_DATABASE_URL"), required=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--pool-size", type=int, default=4)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or STRAWBERRY_DATABASE_URL) is required")
    app = create_app(args.database_url, args.pool_size)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
