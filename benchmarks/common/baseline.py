"""What the baseline servers share, so that they differ only in the technique they stand for: a Starlette app
over one psycopg 3 async pool (UTC, autocommit) with ``GET /health``, served on loopback by uvicorn from a
command line (``python -m benchmarks.baselines.<name> --database-url URL --port P``)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import uvicorn
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

#: The routes of a baseline's technique, given its pool.
Routes = Callable[[AsyncConnectionPool], list[BaseRoute]]


def pooled_app(database_url: str, pool_size: int, routes: Routes,
               configure: Callable[[AsyncConnection], Awaitable[None]] | None = None) -> Starlette:
    """``routes`` plus ``GET /health`` over a pool of ``pool_size`` connections, opened by the app's lifespan."""
    pool = AsyncConnectionPool(
        database_url, min_size=pool_size, max_size=pool_size, open=False, configure=configure,
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

    return Starlette(routes=[*routes(pool), Route("/health", health, methods=["GET"])], lifespan=lifespan)


def serve(module: str, doc: str | None, create_app: Callable[[str, int], Starlette], url_variable: str,
          default_port: int, argv: list[str] | None = None) -> None:
    """Command line of ``python -m <module>`` (described by the first line of ``doc``): serve
    ``create_app(database_url, pool_size)`` on loopback; the URL may come from ``url_variable``."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=(doc or "").splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get(url_variable), required=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--pool-size", type=int, default=4)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error(f"--database-url (or {url_variable}) is required")
    app = create_app(args.database_url, args.pool_size)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")
