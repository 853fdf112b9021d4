"""The FraiseQL v1 technique as a minimal server: the benchmark baseline for Quiver's JSON plane.

PostgreSQL builds every row as JSON in a view (``jsonb_build_object``, camelCase keys),
the server fetches ``data::text`` for all rows at once as raw bytes (psycopg 3 async pool,
binary results, no per-row parse), joins them and sends one response body.

Run: ``python -m benchmarks.baselines.fraiseql_v1 --database-url URL --port P`` (from the repo root).
It answers ``POST /graphql`` for ``{ orders(limit: N) { ... } }`` (the benchmark's fixed
selection; the view already holds it) and ``GET /health``.
"""

from __future__ import annotations

import re

import orjson
from psycopg import AsyncConnection
from psycopg.types.string import ByteaBinaryLoader
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from benchmarks.common.baseline import pooled_app, serve

#: The view the benchmark creates (``VIEW_SQL`` in ``benchmarks/common/database.py``).
QUERY_SQL = "SELECT data::text FROM v_orders LIMIT %s"
_LIMIT = re.compile(r"\borders\s*\(\s*limit\s*:\s*(\d+)\s*\)")


async def _configure(conn: AsyncConnection) -> None:
    """Rows as raw bytes: text columns read in binary format are handed over untouched."""
    conn.adapters.register_loader("text", ByteaBinaryLoader)


def create_app(database_url: str, pool_size: int = 4) -> Starlette:
    """The baseline ASGI app over ``database_url``."""

    def routes(pool: AsyncConnectionPool) -> list[BaseRoute]:
        async def graphql(request: Request) -> Response:
            payload = orjson.loads(await request.body())
            match = _LIMIT.search(payload.get("query", "")) if isinstance(payload, dict) else None
            if match is None:
                return JSONResponse({"errors": [{"message": "expected { orders(limit: N) { ... } }"}]},
                                    status_code=400)
            async with pool.connection() as conn, conn.cursor() as cur:
                await cur.execute(QUERY_SQL, (int(match.group(1)),), binary=True)
                rows = await cur.fetchall()
            body = b'{"data":{"orders":[' + b",".join(row[0] for row in rows) + b"]}}"
            return Response(body, media_type="application/json")

        return [Route("/graphql", graphql, methods=["POST"])]

    return pooled_app(database_url, pool_size, routes, configure=_configure)


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the baseline on loopback."""
    serve("benchmarks.baselines.fraiseql_v1", __doc__, create_app, "FRAISEQL_DATABASE_URL", 8001, argv)


if __name__ == "__main__":
    main()
