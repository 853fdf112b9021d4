"""The FraiseQL v1 technique as a minimal server: the benchmark baseline for Quiver's JSON plane.

PostgreSQL builds every row as JSON in a view (``jsonb_build_object``, camelCase keys),
the server fetches ``data::text`` for all rows at once as raw bytes (psycopg 3 async pool,
binary results, no per-row parse), joins them and sends one response body.

Run: ``python benchmarks/baselines/fraiseql_v1.py --database-url URL --port P``.
It answers ``POST /graphql`` for ``{ orders(limit: N) { ... } }`` (the benchmark's fixed
selection; the view already holds it) and ``GET /health``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import AsyncIterator

import orjson
import uvicorn
from psycopg import AsyncConnection
from psycopg.types.string import ByteaBinaryLoader
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

#: The view the benchmark creates (see ``benchmarks/json_plane.py``).
QUERY_SQL = "SELECT data::text FROM v_orders LIMIT %s"
_LIMIT = re.compile(r"\borders\s*\(\s*limit\s*:\s*(\d+)\s*\)")


async def _configure(conn: AsyncConnection) -> None:
    """Rows as raw bytes: text columns read in binary format are handed over untouched."""
    conn.adapters.register_loader("text", ByteaBinaryLoader)


def create_app(database_url: str, pool_size: int = 4) -> Starlette:
    """The baseline ASGI app over ``database_url``."""
    pool = AsyncConnectionPool(
        database_url, min_size=pool_size, max_size=pool_size, open=False, configure=_configure,
        kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    async def graphql(request: Request) -> Response:
        payload = orjson.loads(await request.body())
        match = _LIMIT.search(payload.get("query", "")) if isinstance(payload, dict) else None
        if match is None:
            return JSONResponse({"errors": [{"message": "expected { orders(limit: N) { ... } }"}]}, status_code=400)
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(QUERY_SQL, (int(match.group(1)),), binary=True)
            rows = await cur.fetchall()
        body = b'{"data":{"orders":[' + b",".join(row[0] for row in rows) + b"]}}"
        return Response(body, media_type="application/json")

    async def health(_request: Request) -> Response:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/graphql", graphql, methods=["POST"]), Route("/health", health, methods=["GET"])],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the baseline on loopback."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", default=os.environ.get("FRAISEQL_DATABASE_URL"), required=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--pool-size", type=int, default=4)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or FRAISEQL_DATABASE_URL) is required")
    app = create_app(args.database_url, args.pool_size)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
