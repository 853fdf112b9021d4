"""The HTTP plane's contract: limits and bad input get clear errors, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import Server, start_server, stop_server


def post(client: httpx.Client, query: str, variables: dict[str, object] | None = None) -> httpx.Response:
    return client.post("/graphql", json={"query": query, "variables": variables})


def errors_of(response: httpx.Response) -> list[dict[str, object]]:
    body = orjson.loads(response.content)
    assert body.get("data") is None
    errors: list[dict[str, object]] = body["errors"]
    assert errors and all(isinstance(e["message"], str) and e["message"] for e in errors)
    return errors


@pytest.fixture(scope="module")
def strict_server(demo_url: str) -> Iterator[Server]:
    """A server with tight limits, to hit each one."""
    running = start_server(
        demo_url, QUIVER_MAX_DEPTH="3", QUIVER_MAX_NODES="12", QUIVER_MAX_LIMIT="100",
        QUIVER_MAX_BODY_BYTES="2000", QUIVER_STATEMENT_TIMEOUT_MS="200",
    )
    yield running
    stop_server(running)


def test_depth_limit(strict_server: Server) -> None:
    with strict_server.client() as client:
        deep = "{ orderItems(limit: 1) { order { customer { orders(limit: 1) { id } } } } }"
        response = post(client, deep)
        (error,) = errors_of(response)
        assert "maximum depth of 3" in str(error["message"])
        assert error["locations"] and error["path"]
        assert error["extensions"] == {"code": "LIMIT_EXCEEDED"}
        assert post(client, "{ orderItems(limit: 1) { order { customer { id } } } }").status_code == 200


def test_selected_nodes_limit(strict_server: Server) -> None:
    with strict_server.client() as client:
        wide = "{ orders(limit: 1) { " + " ".join(f"a{i}: id" for i in range(20)) + " } }"
        (error,) = errors_of(post(client, wide))
        assert "maximum of 12 fields" in str(error["message"])
        assert error["extensions"] == {"code": "LIMIT_EXCEEDED"}


def test_oversized_limit_is_a_validation_error(strict_server: Server) -> None:
    with strict_server.client() as client:
        (error,) = errors_of(post(client, "{ orders(limit: 101) { id } }"))
        assert "exceeds the maximum of 100" in str(error["message"])
        (error,) = errors_of(post(client, "{ orders(limit: -1) { id } }"))
        assert "negative" in str(error["message"])


def test_body_size_limit_is_413(strict_server: Server) -> None:
    with strict_server.client() as client:
        response = post(client, "{ orders(limit: 1) { id } }  #" + "x" * 3000)
        assert response.status_code == 413
        assert "exceeds the maximum of 2000 bytes" in str(errors_of(response)[0]["message"])


@pytest.mark.slow
def test_statement_timeout_is_a_graphql_error(big_url: str) -> None:
    running = start_server(big_url, QUIVER_STATEMENT_TIMEOUT_MS="100")
    try:
        with running.client() as client:
            slow = '{ orders(where: {note: {ilike: "%zz%"}}, orderBy: [{note: DESC}, {total: ASC}]) { id } }'
            response = post(client, slow)
            assert response.status_code == 200
            (error,) = errors_of(response)
            assert error["extensions"] == {"code": "STATEMENT_TIMEOUT", "sqlstate": "57014"}
            assert error["path"] == ["orders"]
            # A timeout that strikes mid-stream still ends in valid JSON carrying the error.
            with client.stream("POST", "/graphql", json={"query": "{ orders { id note meta } }"}) as streamed:
                body = orjson.loads(streamed.read())
            assert [e["extensions"]["code"] for e in body["errors"]] == ["STATEMENT_TIMEOUT"]
            # The server is fine afterwards.
            assert post(client, "{ customersAggregate { count } }").status_code == 200
    finally:
        stop_server(running)


def test_malformed_json_is_400(server: Server) -> None:
    with server.client() as client:
        for body in (b"{bad", b"", b"[]", b'{"query": 5}', b'{"query": "{ orders { id } }", "variables": [1]}'):
            response = client.post("/graphql", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, body
            assert errors_of(response)[0]["extensions"] == {"code": "BAD_REQUEST"}


def test_unsupported_content_type_is_415(server: Server) -> None:
    with server.client() as client:
        response = client.post("/graphql", content=b"query", headers={"content-type": "text/plain"})
        assert response.status_code == 415


@pytest.mark.parametrize(
    ("query", "variables", "fragment"),
    [
        ("{ orders { id nope } }", None, "Cannot query field 'nope'"),
        ("{ nope }", None, "Cannot query field 'nope' on type 'Query'"),
        ("query($n: Int!) { orders(limit: $n) { id } }", {"n": "ten"}, "Int cannot represent"),
        ("query($id: BigInt!) { order(id: $id) { id } }", {"id": "1.5"}, "BigInt cannot represent"),
        ("query($s: [OrderStatus!]) { orders(where: {status: {in: $s}}) { id } }", {"s": ["lost"]},
         "does not exist in 'OrderStatus'"),
        ("{ orders(where: {total: {gt: \"a lot\"}}) { id } }", None, "Decimal cannot represent"),
        ("{ orders(orderBy: [{id: ASC, total: DESC}]) { id } }", None, "exactly one field"),
        ("{ orders(where: {note: {eq: null}}) { id } }", None, "use isNull"),
        ("{ orders(after: \"garbage\") { id } }", None, "not a cursor"),
        ("{ orders { id } ", None, "Syntax Error"),
        ("query A { orders { id } } query B { orders { id } }", None, "Must provide operation name"),
    ],
)
def test_invalid_requests_never_reach_the_database(server: Server, query: str, variables: object,
                                                   fragment: str) -> None:
    with server.client() as client:
        response = client.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200
        errors = errors_of(response)
        assert fragment in " ".join(str(e["message"]) for e in errors)
        # Rejected while planning: the code says so, and no SQLSTATE (nothing ran).
        assert all(e["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"} for e in errors)


def test_graphql_response_media_type_gets_400_for_invalid(server: Server) -> None:
    with server.client() as client:
        response = client.post("/graphql", json={"query": "{ nope }"},
                               headers={"accept": "application/graphql-response+json"})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/graphql-response+json")


def test_get_queries_work_and_get_mutations_are_refused(server: Server) -> None:
    with server.client() as client:
        response = client.get("/graphql", params={"query": "query($n: Int) { orders(limit: $n) { id } }",
                                                  "variables": '{"n": 2}'})
        assert response.status_code == 200
        assert len(orjson.loads(response.content)["data"]["orders"]) == 2
        response = client.get("/graphql", params={"query": "mutation { deleteOrders(where: {}) { id } }"})
        assert response.status_code == 405
        assert client.post("/graphql", json={"query": "{ ordersAggregate { count } }"}).status_code == 200


def test_graphiql_page_for_browsers(server: Server) -> None:
    with server.client() as client:
        response = client.get("/graphql", headers={"accept": "text/html"})
        assert response.status_code == 200
        assert "graphiql" in response.text.lower() and "createFetcher" in response.text


def test_health_and_metrics(server: Server) -> None:
    with server.client() as client:
        assert client.get("/health").json() == {"status": "ok", "database": True}
        post(client, "{ ordersAggregate { count } }")
        metrics = client.get("/metrics").text
        assert 'quiver_http_requests_total{operation="query",outcome="ok"}' in metrics
        assert "quiver_http_request_seconds_bucket" in metrics


def test_introspection_works_for_graphiql(server: Server) -> None:
    from graphql import get_introspection_query

    with server.client() as client:
        body = orjson.loads(post(client, get_introspection_query()).content)
        names = {t["name"] for t in body["data"]["__schema"]["types"]}
        assert {"Order", "Customer", "OrderWhere", "BigInt", "OrderStatus"} <= names


def test_database_gone_is_an_error_response_not_a_500(scratch_url: str) -> None:
    import psycopg

    from tests.conftest import admin_url

    running = start_server(scratch_url)
    try:
        with running.client() as client:
            assert post(client, "{ ordersAggregate { count } }").status_code == 200
            name = scratch_url.rsplit("/", 1)[1]
            with psycopg.connect(admin_url(), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            for query in ("{ ordersAggregate { count } }", "mutation { deleteOrders(where: {}) { id } }"):
                response = post(client, query)
                assert response.status_code in (200, 503)
                extensions = errors_of(response)[0]["extensions"]
                assert isinstance(extensions, dict), extensions
                assert extensions["code"] in ("DATABASE_UNAVAILABLE", "DATABASE_ERROR"), extensions
            assert client.get("/health").status_code == 503
    finally:
        stop_server(running)
