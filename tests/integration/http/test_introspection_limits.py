"""Introspection counts against the request limits, and heavy work never stalls the event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from graphql import get_introspection_query

from tests.conftest import Server, start_server, stop_server

ALIASED = "{" + " ".join(
    f"a{i}: __schema {{ types {{ name fields {{ name type {{ name ofType {{ name }} }} }} }} }}" for i in range(300)
) + "}"
_FRAGMENTS = get_introspection_query()[get_introspection_query().index("fragment FullType"):]
# Allowed only with lenient limits: 400 full introspections in one request, seconds of CPU and ~10+ MB.
HEAVY = "{" + " ".join(f"a{i}: __schema {{ ...Full }}" for i in range(400)) + "} fragment Full on __Schema " \
    "{ queryType { name } types { ...FullType } directives { name args { ...InputValue } } } " + _FRAGMENTS
SPREAD = "{" + " ".join(f"a{i}: __schema {{ ...S }}" for i in range(300)) + "} " \
    "fragment S on __Schema { types { name fields { name type { name ofType { name } } } } }"


def codes(response: httpx.Response) -> list[str]:
    body = orjson.loads(response.content)
    assert body.get("data") is None
    return [e["extensions"]["code"] for e in body["errors"]]


@pytest.mark.parametrize("query", [ALIASED, SPREAD], ids=["aliases", "fragment-spreads"])
def test_300_aliased_introspection_fields_are_refused(server: Server, query: str) -> None:
    with server.client() as client:
        response = client.post("/graphql", json={"query": query})
        assert response.status_code == 200
        assert codes(response) == ["LIMIT_EXCEEDED"]
        assert "maximum of 500 fields" in orjson.loads(response.content)["errors"][0]["message"]
        assert len(response.content) < 10_000  # refused while planning: nothing ran (it was 19 MB)


def test_deep_introspection_is_refused(server: Server) -> None:
    deep = "{ __type(name: \"Order\") { " + "fields { type { ofType { " * 6 + "name" + " } } }" * 6 + " } }"
    with server.client() as client:
        assert codes(client.post("/graphql", json={"query": deep})) == ["LIMIT_EXCEEDED"]


def test_standard_introspection_query_passes_default_limits(server: Server) -> None:
    with server.client() as client:
        for query in (get_introspection_query(), get_introspection_query(
                descriptions=True, specified_by_url=True, directive_is_repeatable=True, schema_description=True,
                input_value_deprecation=True)):
            response = client.post("/graphql", json={"query": query})
            assert response.status_code == 200
            body = orjson.loads(response.content)
            assert "errors" not in body
            assert {"Order", "Customer"} <= {t["name"] for t in body["data"]["__schema"]["types"]}


@pytest.fixture(scope="module")
def lenient_server(demo_url: str) -> Iterator[Server]:
    """Limits high enough that the 300-alias introspection is allowed: a request that takes seconds of CPU."""
    running = start_server(demo_url, QUIVER_MAX_NODES="1000000", QUIVER_MAX_TOKENS="1000000")
    yield running
    stop_server(running)


def test_a_heavy_request_does_not_block_small_ones(lenient_server: Server) -> None:
    heavy: dict[str, object] = {}

    def run_heavy() -> None:
        with lenient_server.client() as client:
            response = client.post("/graphql", json={"query": HEAVY})
            heavy["status"], heavy["size"] = response.status_code, len(response.content)
            heavy["done"] = time.monotonic()

    thread = threading.Thread(target=run_heavy)
    latencies: list[float] = []
    with lenient_server.client() as client:
        thread.start()
        time.sleep(0.3)  # let the heavy request reach the server (the assertions below do not depend on it)
        while thread.is_alive() and len(latencies) < 20:
            started = time.monotonic()
            response = client.post("/graphql", json={"query": "{ __typename }"})
            assert orjson.loads(response.content) == {"data": {"__typename": "Query"}}
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
        answered_during_heavy = len(latencies)
        thread.join(timeout=300)
    assert heavy["status"] == 200 and int(str(heavy["size"])) > 5_000_000, heavy
    # The heavy request took seconds; small ones kept answering meanwhile (a blocked loop answers none).
    assert answered_during_heavy >= 3, (answered_during_heavy, latencies)  # an order, not a duration
