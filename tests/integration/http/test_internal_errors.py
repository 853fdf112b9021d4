"""Unexpected failures answer 500 with code INTERNAL and an error id, never a traceback.

In-process (ASGI) with a real schema from the demo database and a deliberately failing
dependency: the only way to make a bug happen on purpose.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from starlette.applications import Starlette

from quiver.config import Settings
from quiver.db import Database
from quiver.errors import STATUSES
from quiver.http import app as http_module
from quiver.http.app import GraphQLEndpoint, http_app
from quiver.server import load_schema

SECRET = "/srv/secret/path.py"


@contextlib.asynccontextmanager
async def _no_lifespan(_app: Starlette) -> AsyncIterator[None]:
    yield


@pytest.fixture(scope="module")
def endpoint(demo_url: str) -> Iterator[GraphQLEndpoint]:
    settings = Settings(database_url=demo_url, flight_port=None)
    running = GraphQLEndpoint(settings, Database(demo_url, 2))
    running.schema = load_schema(settings)[1]
    yield running
    running.db.adbc.close()


def _post(endpoint: GraphQLEndpoint, query: str, accept: str = "application/json") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=http_app(endpoint, _no_lifespan))
        async with httpx.AsyncClient(transport=transport, base_url="http://quiver") as client:
            return await client.post("/graphql", json={"query": query}, headers={"accept": accept})

    return anyio.run(go)


def _broken(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError(f"bug in {SECRET}")


def _assert_internal(response: httpx.Response, caplog: pytest.LogCaptureFixture) -> None:
    assert response.status_code == STATUSES["INTERNAL"].http == 500
    (error,) = orjson.loads(response.content)["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    error_id = error["extensions"]["error_id"]
    assert error_id in error["message"]
    assert SECRET not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the server log has the traceback under that id


@pytest.mark.parametrize("accept", ["application/json", "application/vnd.apache.arrow.stream"])
def test_a_failing_connection_pool_is_internal(endpoint: GraphQLEndpoint, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture, accept: str) -> None:
    monkeypatch.setattr(endpoint.db.adbc, "acquire", _broken)
    with caplog.at_level(logging.ERROR, logger="quiver.errors"):
        _assert_internal(_post(endpoint, "{ orders(limit: 1) { id } }", accept), caplog)


def test_a_bug_while_planning_is_internal(endpoint: GraphQLEndpoint, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(http_module, "prepare", _broken)
    with caplog.at_level(logging.ERROR, logger="quiver.errors"):
        _assert_internal(_post(endpoint, "{ __typename }"), caplog)


def test_an_outage_is_503(endpoint: GraphQLEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    from quiver.errors import Unavailable

    def busy() -> Any:
        raise Unavailable("no connection free within 5 s")

    monkeypatch.setattr(endpoint.db.adbc, "acquire", busy)
    response = _post(endpoint, "{ orders(limit: 1) { id } }")
    assert response.status_code == 503
    assert orjson.loads(response.content)["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"


def test_the_endpoint_still_answers(endpoint: GraphQLEndpoint) -> None:
    response = _post(endpoint, "{ orders(limit: 2) { id } }")
    assert response.status_code == 200
    assert len(orjson.loads(response.content)["data"]["orders"]) == 2


def test_an_unsupported_value_is_422(endpoint: GraphQLEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    from quiver.errors import UnsupportedValue

    def unsupported() -> Any:
        raise UnsupportedValue("total", "more digits than decimal128 holds", row=3)

    monkeypatch.setattr(endpoint.db.adbc, "acquire", unsupported)
    response = _post(endpoint, "{ orders(limit: 1) { id } }", "application/vnd.apache.arrow.stream")
    assert response.status_code == 422
    extensions = orjson.loads(response.content)["errors"][0]["extensions"]
    assert extensions == {"code": "UNSUPPORTED_VALUE", "column": "total", "row": 3}
