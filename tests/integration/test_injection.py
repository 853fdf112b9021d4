"""Hostile strings in every argument type are data, never SQL.

Each payload goes through variables and, where the type allows, inline literals,
into filters, ordering, pagination, by-key lookups and mutations. The database
must be unchanged except for the rows the mutations were meant to write, and
every answer must be a clean GraphQL response.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest

from tests.conftest import Server, start_server, stop_server

HOSTILE = [
    "'",
    "''",
    "\\",
    "\\'",
    "'; DROP TABLE orders; --",
    "\"; DROP TABLE orders; --",
    "1 OR 1=1",
    "' OR '1'='1",
    "*/ SELECT pg_sleep(5) /*",
    "$1",
    "%s",
    "%(x)s",
    "current_setting('quiver.p1')",
    "$$; DROP TABLE orders; $$",
    "E'\\x27'",
    "Zoë 山田 Łukasz 🚀",
    "\u202e\u0301\ufeff",
    "a" * 100_000,
    "-- comment",
    "\n\r\t",
    "%_%",
]


@pytest.fixture(scope="module")
def target(scratch_template: str) -> Iterator[tuple[Server, str]]:
    from tests.conftest import admin_url, database_url

    name = "quiver_injection_target"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{scratch_template}"')
    url = database_url(name)
    running = start_server(url, QUIVER_MAX_BODY_BYTES=str(4 << 20))
    yield running, url
    stop_server(running)
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fingerprint(url: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        return tuple(
            conn.execute(f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t").fetchone()
            for table in ("customers", "products", "orders", "order_items")
        ) + (conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchone(),)


def ask(server: Server, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    with server.client() as client:
        response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code in (200, 400), response.text[:300]
    body: dict[str, Any] = orjson.loads(response.content)
    assert "data" in body or "errors" in body
    return body


READS = [
    ("query($v: String!) { customers(where: {name: {eq: $v}}) { id } }", "v"),
    ("query($v: String!) { customers(where: {name: {neq: $v}}, limit: 1) { id } }", "v"),
    ("query($v: String!) { customers(where: {email: {like: $v}}) { id } }", "v"),
    ("query($v: String!) { customers(where: {email: {ilike: $v}}) { id } }", "v"),
    ("query($v: String!) { customers(where: {phone: {gt: $v}}, limit: 1) { id } }", "v"),
    ("query($v: String!) { orders(where: {note: {in: [$v, $v]}}) { id } }", "v"),
    ("query($v: String!) { orders(where: {note: {nin: [$v]}}, limit: 1) { id } }", "v"),
    ("query($v: String!) { orders(where: {or: [{note: {eq: $v}}, {not: {note: {lte: $v}}}]}, limit: 1) { id } }", "v"),
    ("query($v: String!) { orders(where: {customer: {name: {eq: $v}}}) { id } }", "v"),
    ("query($v: String!) { customers(limit: 1) { orders(where: {note: {eq: $v}}) { id } } }", "v"),
    ("query($v: String!) { ordersAggregate(where: {note: {ilike: $v}}) { count } }", "v"),
    ("query($v: String!) { orders(after: $v) { id } }", "v"),
    ("query($v: String!) { products(where: {sku: {gte: $v}}, orderBy: [{sku: ASC}], limit: 1) { sku } }", "v"),
]


@pytest.mark.parametrize("payload", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_in_every_read_argument_are_data(target: tuple[Server, str], payload: str) -> None:
    server, url = target
    before = fingerprint(url)
    for query, name in READS:
        body = ask(server, query, {name: payload})
        if body.get("errors"):
            # Only clean rejections: bad cursor, or a value the column type refuses.
            codes = {e["extensions"]["code"] for e in body["errors"]}
            assert codes <= {"GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"}, (query, body)
        else:
            assert body["data"] is not None
    assert fingerprint(url) == before
    # The exact value round-trips where it is compared for equality.
    with psycopg.connect(url) as conn:
        expected = conn.execute("SELECT count(*) FROM customers WHERE name = %s", (payload,)).fetchone()
    assert expected is not None
    got = ask(server, "query($v: String!) { customers(where: {name: {eq: $v}}) { id } }", {"v": payload})
    assert len(got["data"]["customers"]) == expected[0]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($v: BigInt!) { order(id: $v) { id } }", {"v": "1; DROP TABLE orders"}),
        ("query($v: UUID!) { orders(where: {uuid: {eq: $v}}) { id } }", {"v": "'; DROP TABLE orders; --"}),
        ("query($v: Decimal!) { orders(where: {total: {gt: $v}}) { id } }", {"v": "1) OR (1=1"}),
        ("query($v: DateTime!) { orders(where: {placedAt: {lt: $v}}) { id } }", {"v": "now()'); --"}),
        ("query($v: Date!) { orders(where: {shippedOn: {eq: $v}}) { id } }", {"v": "2024-01-01'::date; --"}),
        ("query($v: Int!) { orders(limit: $v) { id } }", {"v": "1; DROP TABLE orders"}),
        ("query($v: OrderStatus!) { orders(where: {status: {eq: $v}}) { id } }", {"v": "paid'; --"}),
        ("query($v: Boolean!) { orders(where: {isPaid: {eq: $v}}) { id } }", {"v": "true OR 1=1"}),
        ("query($v: Bytes!) { products(where: {thumbnail: {eq: $v}}) { id } }", {"v": "'; DROP --"}),
        ("query($v: BigInt!) { order(id: $v) { id } }", {"v": "9" * 400}),
        ("{ orders(where: {note: {eq: \"\\u0000\"}}) { id } }", None),
    ],
)
def test_typed_arguments_refuse_hostile_text(target: tuple[Server, str], query: str, variables: Any) -> None:
    server, url = target
    before = fingerprint(url)
    body = ask(server, query, variables)
    assert body["errors"], body
    assert fingerprint(url) == before


@pytest.mark.parametrize("payload", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_in_mutations_are_stored_verbatim(target: tuple[Server, str], payload: str) -> None:
    server, url = target
    body = ask(server, """mutation($n: String!, $m: JSON!, $t: [String]) {
        insertCustomer(object: {uuid: "aaaaaaaa-0000-4000-8000-000000000001", email: $n, name: $n, profile: $m}) {
          id name email profile }
        updateProducts(where: {id: {eq: "1"}}, set: {description: $n, tags: $t}) { description tags }
    }""", {"n": payload, "m": {payload: [payload]}, "t": [payload, None, payload]})
    assert body.get("errors") is None, body
    created = body["data"]["insertCustomer"]
    assert created["name"] == payload and created["email"] == payload and created["profile"] == {payload: [payload]}
    assert body["data"]["updateProducts"] == [{"description": payload, "tags": [payload, None, payload]}]
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT name, profile FROM customers WHERE id = %s", (int(created["id"]),)).fetchone()
        assert row == (payload, {payload: [payload]})
        conn.execute("DELETE FROM customers WHERE id = %s", (int(created["id"]),))
        conn.commit()
    tables = ask(server, "{ customersAggregate { count } ordersAggregate { count } }")["data"]
    assert tables["ordersAggregate"]["count"] == 1_000
