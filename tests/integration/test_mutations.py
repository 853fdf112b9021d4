"""Mutations round-trip, run in one transaction per request, and roll back on failure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest

from tests.conftest import Server, start_server, stop_server


@pytest.fixture()
def writable(scratch_url: str) -> Iterator[tuple[Server, str]]:
    running = start_server(scratch_url)
    yield running, scratch_url
    stop_server(running)


def gql(server: Server, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    with server.client() as client:
        response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200
    body: dict[str, Any] = orjson.loads(response.content)
    return body


NEW_ORDER = """mutation($o: OrderInsert!) {
  insertOrder(object: $o) { id uuid status total isPaid note placedAt meta customer { id } orderItems { id } }
}"""


def test_insert_update_delete_round_trip(writable: tuple[Server, str]) -> None:
    server, url = writable
    order = {"uuid": "0f0e0d0c-0b0a-4908-8706-050403020100", "customerId": "7", "total": "1234567890.25",
             "note": "first 'note'", "placedAt": "2025-01-02T03:04:05.123456+01:00", "meta": {"gift": True, "n": [1]}}
    created = gql(server, NEW_ORDER, {"o": order})["data"]["insertOrder"]
    assert created["uuid"] == order["uuid"] and created["total"] == "1234567890.25"
    assert created["status"] == "pending" and created["isPaid"] is False  # column defaults
    assert created["placedAt"] == "2025-01-02T02:04:05.123456+00:00"
    assert created["meta"] == {"gift": True, "n": [1]} and created["customer"] == {"id": "7"}
    assert created["orderItems"] == []
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT total::text, note FROM orders WHERE id = %s", (int(created["id"]),)).fetchone()
    assert row == ("1234567890.25", "first 'note'")

    updated = gql(server, """mutation($id: BigInt!) {
      updateOrders(where: {id: {eq: $id}}, set: {status: shipped, note: null, shippedOn: "2025-02-01"}) {
        id status note shippedOn } }""", {"id": created["id"]})["data"]["updateOrders"]
    assert updated == [{"id": created["id"], "status": "shipped", "note": None, "shippedOn": "2025-02-01"}]

    many = gql(server, """mutation { insertOrderItems(objects: [
        {orderId: "%s", productId: "1", quantity: 2, unitPrice: "1.50"},
        {orderId: "%s", productId: "2", quantity: 1, unitPrice: "0.99", discount: "0.333333"}]) {
        quantity unitPrice discount product { id } } }""" % (created["id"], created["id"]))  # noqa: UP031
    assert many["data"]["insertOrderItems"] == [
        {"quantity": 2, "unitPrice": "1.50", "discount": None, "product": {"id": "1"}},
        {"quantity": 1, "unitPrice": "0.99", "discount": "0.333333", "product": {"id": "2"}},
    ]
    deleted = gql(server, "mutation($id: BigInt!) { deleteOrders(where: {id: {eq: $id}}) { id } }",
                  {"id": created["id"]})["data"]["deleteOrders"]
    assert deleted == [{"id": created["id"]}]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM order_items WHERE order_id = %s",
                            (int(created["id"]),)).fetchone() == (0,)  # ON DELETE CASCADE


def test_a_failing_statement_rolls_back_the_whole_request(writable: tuple[Server, str]) -> None:
    server, url = writable
    with psycopg.connect(url) as conn:
        before = conn.execute("SELECT count(*), sum(total)::text FROM orders").fetchone()
    body = gql(server, """mutation {
      a: updateOrders(where: {id: {lte: "10"}}, set: {note: "changed"}) { id }
      b: insertOrder(object: {uuid: "11111111-1111-4111-8111-111111111111", customerId: "1", total: "1"}) { id }
      c: insertOrderItems(objects: [{orderId: "1", productId: "1", quantity: 0, unitPrice: "1"}]) { id }
    }""")
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["path"] == ["c"] and error["extensions"]["code"] == "CONSTRAINT_VIOLATION"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*), sum(total)::text FROM orders").fetchone() == before
        assert conn.execute("SELECT count(*) FROM orders WHERE note = 'changed'").fetchone() == (0,)


def test_foreign_key_and_bad_input_errors_are_clear(writable: tuple[Server, str]) -> None:
    server, _ = writable
    body = gql(server, """mutation { insertOrder(object: {uuid: "21111111-1111-4111-8111-111111111111",
        customerId: "999999", total: "1"}) { id } }""")
    assert body["errors"][0]["extensions"]["code"] == "CONSTRAINT_VIOLATION"
    body = gql(server, "mutation { insertOrder(object: {total: \"1\"}) { id } }")
    assert "customerId" in body["errors"][0]["message"]  # required field missing: a validation error
    body = gql(server, 'mutation { updateOrders(where: {id: {eq: "1"}}, set: {}) { id } }')
    assert "names no column" in body["errors"][0]["message"]
