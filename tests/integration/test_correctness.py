"""Correctness suite: GraphQL responses must equal an oracle computed with plain SQL.

Every test sends a real query to a `quiver serve` subprocess over the small demo
database and compares the parsed JSON body, key order and JSON types included,
with the result the test assembles itself from psycopg queries on the same data.
The oracle never goes through Quiver: it reads the tables (the view's rows are
recomputed from the base tables) and converts values to the documented output
forms in Python or with explicit ``::text`` casts.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import orjson
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import Server

Db = psycopg.Connection[Any]
Row = dict[str, Any]

# GraphQL field -> SQL expression over alias `t` whose value (after `plain`) is the field's JSON form.
# int8 and numeric are cast to text: their JSON form is PostgreSQL's text form, as a string.
FIELDS: dict[str, dict[str, str]] = {
    "customers": {
        "id": "t.id::text", "uuid": "t.uuid", "email": "t.email", "name": "t.name", "phone": "t.phone",
        "isActive": "t.is_active", "createdAt": "t.created_at", "profile": "t.profile",
    },
    "orders": {
        "id": "t.id::text", "uuid": "t.uuid", "customerId": "t.customer_id::text", "status": "t.status::text",
        "total": "t.total::text", "isPaid": "t.is_paid", "note": "t.note", "placedAt": "t.placed_at",
        "shippedOn": "t.shipped_on", "meta": "t.meta",
    },
    "order_items": {
        "id": "t.id::text", "orderId": "t.order_id::text", "productId": "t.product_id::text",
        "quantity": "t.quantity", "unitPrice": "t.unit_price::text", "discount": "t.discount::text",
    },
    "products": {
        "id": "t.id::text", "sku": "t.sku", "name": "t.name", "description": "t.description",
        "price": "t.price::text", "barcode": "t.barcode::text", "tags": "t.tags", "thumbnail": "t.thumbnail",
        "inStock": "t.in_stock",
    },
    "customer_order_totals": {
        "customerId": "t.customer_id::text", "orderCount": "t.order_count", "totalSpent": "t.total_spent::text",
    },
}
# The view is recomputed from the base tables rather than read back.
SOURCES = {
    "customer_order_totals": (
        "(SELECT c.id AS customer_id, count(o.id)::integer AS order_count, coalesce(sum(o.total), 0) AS total_spent"
        " FROM customers AS c LEFT JOIN orders AS o ON o.customer_id = c.id GROUP BY c.id)"
    ),
}
ALL_FIELDS = {table: " ".join(fields) for table, fields in FIELDS.items()}
# GraphQL root list field -> (table, selected fields, GraphQL orderBy, SQL ORDER BY) for filter tests.
ROOTS = {
    "orders": ("orders", "id customerId status total note shippedOn", "{id: ASC}", "t.id"),
    "customers": ("customers", "id name email phone isActive", "{id: ASC}", "t.id"),
    "products": ("products", "id sku price barcode description inStock", "{id: ASC}", "t.id"),
    "orderItems": ("order_items", "id orderId quantity unitPrice discount", "{id: ASC}", "t.id"),
    "customerOrderTotals": ("customer_order_totals", "customerId orderCount totalSpent", "{customerId: ASC}",
                            "t.customer_id"),
}
SQL_DIRECTIONS = {
    "ASC": "ASC", "DESC": "DESC", "ASC_NULLS_FIRST": "ASC NULLS FIRST", "ASC_NULLS_LAST": "ASC NULLS LAST",
    "DESC_NULLS_FIRST": "DESC NULLS FIRST", "DESC_NULLS_LAST": "DESC NULLS LAST",
}


# --- oracle ----------------------------------------------------------------------------------------


def iso_utc(value: datetime) -> str:
    """PostgreSQL's JSON form of a timestamptz under TimeZone=UTC (fraction without trailing zeros)."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def plain(value: Any) -> Any:
    """A psycopg value in its GraphQL JSON form."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal | float):
        raise TypeError(f"oracle SQL must cast numerics to text, got {value!r}")
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def fetch(db: Db, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    """Rows of ``sql`` as dicts in select-list order, values in JSON form."""
    with db.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params or None)
        return [{key: plain(value) for key, value in row.items()} for row in cur.fetchall()]


def selected(fields: str) -> list[tuple[str, str]]:
    """``"id cheap:total"`` -> [("id", "id"), ("cheap", "total")] (response key, field)."""
    return [tuple(item.split(":")) if ":" in item else (item, item) for item in fields.split()]  # type: ignore[misc]


def rows(
    db: Db, table: str, fields: str, where: str = "TRUE", params: Sequence[Any] = (), order: str = "t.id",
    limit: int | None = None, offset: int | None = None,
) -> list[Row]:
    """The oracle for a list: ``fields`` of ``table`` rows (alias ``t``) matching ``where``, in ``order``."""
    columns = ", ".join(f'{FIELDS[table][field]} AS "{key}"' for key, field in selected(fields))
    sql = f"SELECT {columns} FROM {SOURCES.get(table, table)} AS t WHERE {where} ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if offset is not None:
        sql += f" OFFSET {int(offset)}"
    return fetch(db, sql, params)


def one(db: Db, table: str, fields: str, key: int | str) -> Row | None:
    """The oracle for a by-primary-key root: the row with id ``key``, or None."""
    found = rows(db, table, fields, "t.id = %s", (int(key),))
    return found[0] if found else None


def count(db: Db, table: str, where: str = "TRUE", params: Sequence[Any] = ()) -> int:
    result: int = fetch(db, f"SELECT count(*)::integer AS n FROM {SOURCES.get(table, table)} AS t WHERE {where}",
                        params)[0]["n"]
    return result


# --- client ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    """One HTTP client for the module's queries."""
    with server.client() as http:
        yield http


def post(client: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> Any:
    """POST one GraphQL request; the parsed body of a successful (200, error-free) response."""
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = orjson.loads(response.content)
    assert "errors" not in body, body["errors"]
    return body


def assert_data(client: httpx.Client, query: str, expected: dict[str, Any],
                variables: dict[str, Any] | None = None) -> None:
    """The response is exactly ``{"data": expected}``: same values, same JSON types, same key order."""
    body = post(client, query, variables)
    assert body == {"data": expected}
    assert orjson.dumps(body) == orjson.dumps({"data": expected}), "same values, but key order or JSON types differ"


# --- scalar forms -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "table", "order_gql", "order_sql"),
    [
        ("orders", "orders", "{id: ASC}", "t.id"),
        ("customers", "customers", "{id: DESC}", "t.id DESC"),
        ("products", "products", "{id: ASC}", "t.id"),
        ("orderItems", "order_items", "{id: ASC}", "t.id"),
        ("customerOrderTotals", "customer_order_totals", "{customerId: ASC}", "t.customer_id"),
    ],
)
def test_every_column_of_every_row(client: httpx.Client, db: Db, root: str, table: str, order_gql: str,
                                   order_sql: str) -> None:
    """Whole tables, every column: BigInt/Decimal strings, UUID, DateTime, Date, JSON, Bytes, text[], enums."""
    fields = ALL_FIELDS[table]
    expected = rows(db, table, fields, order=order_sql)
    assert len(expected) >= 50
    assert_data(client, f"{{ {root}(orderBy: [{order_gql}]) {{ {fields} }} }}", {root: expected})


def test_scalar_edge_values(db: Db) -> None:
    """Self-check of the oracle: exact BigInt text, and timestamps exactly as PostgreSQL's JSON renders them."""
    assert rows(db, "products", "barcode", "t.id = 1") == [{"barcode": "9007199254748912"}]
    assert iso_utc(datetime(2024, 5, 1, 10, 0, 0, 120000, UTC)) == "2024-05-01T10:00:00.12+00:00"
    db.execute("SET TimeZone = 'UTC'")
    rendered = fetch(db, "SELECT to_json(placed_at) #>> '{}' AS json, placed_at AS oracle FROM orders "
                         "WHERE extract(microseconds FROM placed_at)::integer % 10 = 0 ORDER BY id LIMIT 20")
    assert len(rendered) == 20 and all(r["json"] == r["oracle"] for r in rendered)


# --- filters ------------------------------------------------------------------------------------------

FILTERS = [
    # orders: every operator
    pytest.param("orders", "{status: {eq: shipped}}", "t.status = 'shipped'", (), id="eq-enum"),
    pytest.param("orders", '{note: {neq: "Leave at the door"}}', "t.note <> %s", ("Leave at the door",),
                 id="neq-skips-null"),
    pytest.param("orders", '{total: {gt: "2500.50"}}', "t.total > 2500.50", (), id="gt-decimal"),
    pytest.param("orders", '{total: {eq: "47.850"}}', "t.total = 47.85", (), id="eq-decimal-other-scale"),
    pytest.param("orders", '{placedAt: {eq: "2025-01-26T16:24:31.264101+01:00"}}',
                 "t.placed_at = '2025-01-26T15:24:31.264101Z'", (), id="eq-datetime-microseconds-offset"),
    pytest.param("orders", '{shippedOn: {in: ["2025-02-09", "2025-06-22"]}}',
                 "t.shipped_on IN ('2025-02-09', '2025-06-22')", (), id="in-date"),
    pytest.param("orders", "{total: {lte: 77.7}}", "t.total <= 77.7", (), id="lte-decimal-float-literal"),
    pytest.param("orders", '{placedAt: {gte: "2025-11-15T12:00:00+00:00"}}',
                 "t.placed_at >= '2025-11-15T12:00:00+00:00'", (), id="gte-datetime"),
    pytest.param("orders", '{id: {lt: "40"}}', "t.id < 40", (), id="lt-bigint-string"),
    pytest.param("orders", "{id: {lt: 40}}", "t.id < 40", (), id="lt-bigint-int-literal"),
    pytest.param("orders", '{shippedOn: {lte: "2024-02-10"}}', "t.shipped_on <= '2024-02-10'", (), id="lte-date"),
    pytest.param("orders", "{status: {in: [pending, cancelled]}}", "t.status IN ('pending', 'cancelled')", (),
                 id="in-enum"),
    pytest.param("orders", '{note: {nin: ["Leave at the door", "Call before delivery"]}}', "t.note NOT IN (%s, %s)",
                 ("Leave at the door", "Call before delivery"), id="nin-skips-null"),
    pytest.param("orders", '{note: {like: "%the%"}}', "t.note LIKE %s", ("%the%",), id="like"),
    pytest.param("orders", '{note: {ilike: "%THE%"}}', "t.note ILIKE %s", ("%THE%",), id="ilike"),
    pytest.param("orders", "{note: {isNull: true}}", "t.note IS NULL", (), id="isnull-true"),
    pytest.param("orders", "{shippedOn: {isNull: false}}", "t.shipped_on IS NOT NULL", (), id="isnull-false"),
    pytest.param("orders", "{status: {gt: shipped}}", "t.status > 'shipped'", (), id="gt-enum-declaration-order"),
    pytest.param("orders", '{note: {in: ["Tab\\tseparated", "Line one\\nLine two", "Use the back\\\\side entrance"]}}',
                 "t.note IN (%s, %s, %s)", ("Tab\tseparated", "Line one\nLine two", "Use the back\\side entrance"),
                 id="in-escaped-strings"),
    pytest.param("orders", "{isPaid: {neq: true}}", "t.is_paid <> true", (), id="neq-boolean"),
    pytest.param("orders", '{status: {eq: paid}, total: {gte: "100", lt: "1000"}}',
                 "t.status = 'paid' AND t.total >= 100 AND t.total < 1000", (), id="implicit-and"),
    pytest.param("orders", '{and: [{status: {eq: delivered}}, {total: {lt: "300"}}]}',
                 "t.status = 'delivered' AND t.total < 300", (), id="and"),
    pytest.param("orders", '{or: [{id: {lte: "5"}}, {id: {gte: "1996"}}, '
                           '{note: {eq: "🎁 birthday present"}, total: {lt: "500"}}]}',
                 "t.id <= 5 OR t.id >= 1996 OR (t.note = %s AND t.total < 500)", ("🎁 birthday present",), id="or"),
    pytest.param("orders", "{not: {status: {in: [delivered, shipped, paid]}}}",
                 "NOT (t.status IN ('delivered', 'shipped', 'paid'))", (), id="not"),
    pytest.param("orders", """{not: {note: {eq: "O'Reilly's order"}}}""", "NOT (t.note = %s)", ("O'Reilly's order",),
                 id="not-eq-skips-null"),
    pytest.param("orders", "{customer: {isActive: {eq: false}}}",
                 "EXISTS (SELECT 1 FROM customers AS c WHERE c.id = t.customer_id AND NOT c.is_active)", (),
                 id="relation-many-to-one"),
    pytest.param("orders", "{customer: {isActive: {eq: true}}, orderItems: {quantity: {eq: 5}}}",
                 "EXISTS (SELECT 1 FROM customers AS c WHERE c.id = t.customer_id AND c.is_active)"
                 " AND EXISTS (SELECT 1 FROM order_items AS i WHERE i.order_id = t.id AND i.quantity = 5)", (),
                 id="relation-both-ways"),
    pytest.param("orders", "{orderItems: {product: {inStock: {eq: false}}}}",
                 "EXISTS (SELECT 1 FROM order_items AS i JOIN products AS p ON p.id = i.product_id"
                 " WHERE i.order_id = t.id AND NOT p.in_stock)", (), id="relation-two-levels"),
    pytest.param("orders", '{customerId: {in: ["7", "57", "107"]}, not: {orderItems: {quantity: {gte: 3}}}}',
                 "t.customer_id IN (7, 57, 107)"
                 " AND NOT EXISTS (SELECT 1 FROM order_items AS i WHERE i.order_id = t.id AND i.quantity >= 3)", (),
                 id="not-exists"),
    pytest.param("orders", '{meta: {isNull: false}, placedAt: {lt: "2024-01-20T00:00:00Z"}}',
                 "t.meta IS NOT NULL AND t.placed_at < '2024-01-20T00:00:00Z'", (), id="json-isnull-and-zulu"),
    # customers
    pytest.param("customers", """{name: {ilike: "%o'b%"}}""", "t.name ILIKE %s", ("%o'b%",), id="ilike-quote"),
    pytest.param("customers", '{name: {like: "Back\\\\\\\\slash%"}}', "t.name LIKE %s", ("Back\\\\slash%",),
                 id="like-escaped-backslash"),
    pytest.param("customers", '{name: {ilike: "%ZOË%"}}', "t.name ILIKE %s", ("%ZOË%",), id="ilike-non-ascii"),
    pytest.param("customers", '{email: {gte: "customer95@example.com"}}', "t.email >= %s",
                 ("customer95@example.com",), id="gte-text"),
    pytest.param("customers", "{phone: {isNull: true}, isActive: {eq: true}}", "t.phone IS NULL AND t.is_active",
                 (), id="isnull-and-bool"),
    pytest.param("customers", '{phone: {like: "+1-2%"}}', "t.phone LIKE %s", ("+1-2%",), id="like-prefix"),
    pytest.param("customers", '{createdAt: {lt: "2023-03-01T00:00:00-05:00"}}',
                 "t.created_at < '2023-03-01T05:00:00+00:00'", (), id="lt-datetime-offset"),
    pytest.param("customers", '{orders: {status: {eq: cancelled}, total: {gt: "3000"}}}',
                 "EXISTS (SELECT 1 FROM orders AS o WHERE o.customer_id = t.id"
                 " AND o.status = 'cancelled' AND o.total > 3000)", (), id="relation-one-to-many-same-row"),
    pytest.param("customers", "{or: [{phone: {isNull: true}}, {not: {isActive: {eq: true}}}]}",
                 "t.phone IS NULL OR NOT t.is_active", (), id="or-not"),
    # products
    pytest.param("products", '{barcode: {gt: "9007199254900000"}}', "t.barcode > 9007199254900000", (),
                 id="gt-bigint-beyond-2^53"),
    pytest.param("products", '{sku: {like: "SKU-00001_"}}', "t.sku LIKE %s", ("SKU-00001_",), id="like-underscore"),
    pytest.param("products", '{price: {lte: "99.99"}}', "t.price <= 99.99", (), id="lte-price"),
    pytest.param("products", "{description: {isNull: true}}", "t.description IS NULL", (), id="isnull-description"),
    pytest.param("products", "{thumbnail: {isNull: false}, inStock: {eq: true}}",
                 "t.thumbnail IS NOT NULL AND t.in_stock", (), id="bytes-isnull"),
    pytest.param("products", '{sku: {in: ["SKU-000003", "SKU-000011", "SKU-000042"]}}',
                 "t.sku IN ('SKU-000003', 'SKU-000011', 'SKU-000042')", (), id="in-text"),
    pytest.param("products", '{orderItems: {order: {customerId: {eq: "7"}}}}',
                 "EXISTS (SELECT 1 FROM order_items AS i JOIN orders AS o ON o.id = i.order_id"
                 " WHERE i.product_id = t.id AND o.customer_id = 7)", (), id="relation-chain"),
    # order items
    pytest.param("orderItems", '{discount: {gt: "19.5"}}', "t.discount > 19.5", (), id="gt-numeric"),
    pytest.param("orderItems", '{discount: {in: ["0.125", "1.50", "3"]}}', "t.discount IN (0.125, 1.50, 3)", (),
                 id="in-numeric-any-scale"),
    pytest.param("orderItems", '{discount: {nin: ["0", "0.1"]}, orderId: {lte: "300"}}',
                 "t.discount NOT IN (0, 0.1) AND t.order_id <= 300", (), id="nin-numeric"),
    pytest.param("orderItems", '{quantity: {neq: 1}, unitPrice: {lt: "20"}}', "t.quantity <> 1 AND t.unit_price < 20",
                 (), id="neq-int"),
    pytest.param("orderItems", "{quantity: {in: [2, 4]}, orderId: {lt: 100}}",
                 "t.quantity IN (2, 4) AND t.order_id < 100", (), id="in-int"),
    pytest.param("orderItems", "{order: {status: {eq: cancelled}}, product: {inStock: {eq: false}}}",
                 "EXISTS (SELECT 1 FROM orders AS o WHERE o.id = t.order_id AND o.status = 'cancelled')"
                 " AND EXISTS (SELECT 1 FROM products AS p WHERE p.id = t.product_id AND NOT p.in_stock)", (),
                 id="two-relations"),
    # the view
    pytest.param("customerOrderTotals", '{totalSpent: {gte: "40000"}}', "t.total_spent >= 40000", (),
                 id="view-decimal"),
    pytest.param("customerOrderTotals", "{orderCount: {in: [3, 4, 18]}}", "t.order_count IN (3, 4, 18)", (),
                 id="view-in"),
]


@pytest.mark.parametrize(("root", "where_gql", "where_sql", "params"), FILTERS)
def test_filter(client: httpx.Client, db: Db, root: str, where_gql: str, where_sql: str,
                params: tuple[Any, ...]) -> None:
    """`where` selects exactly the rows the equivalent SQL predicate selects."""
    table, fields, order_gql, order_sql = ROOTS[root]
    expected = rows(db, table, fields, where_sql, params, order=order_sql)
    assert 0 < len(expected) < count(db, table), "the filter must select a proper, non-empty subset"
    query = f"{{ {root}(where: {where_gql}, orderBy: [{order_gql}]) {{ {fields} }} }}"
    assert_data(client, query, {root: expected})


def test_empty_in_lists(client: httpx.Client, db: Db) -> None:
    """`in: []` matches nothing; `nin: []` matches every row whose column is not NULL (NULL never matches nin)."""
    query = """{ emptyIn: orders(where: {note: {in: []}}) { id }
        emptyNin: orders(where: {note: {nin: []}, id: {lte: "30"}}, orderBy: [{id: ASC}]) { id note } }"""
    expected = {"emptyIn": [], "emptyNin": rows(db, "orders", "id note", "t.note IS NOT NULL AND t.id <= 30")}
    assert 0 < len(expected["emptyNin"]) < 30
    assert_data(client, query, expected)


# --- ordering and pagination ----------------------------------------------------------------------------


@pytest.mark.parametrize("direction", list(SQL_DIRECTIONS))
def test_order_nullable_column(client: httpx.Client, db: Db, direction: str) -> None:
    """Each direction on the nullable `note`, ties broken by id descending."""
    expected = rows(db, "orders", "id note", "t.id <= 40", order=f"t.note {SQL_DIRECTIONS[direction]}, t.id DESC")
    assert any(r["note"] is None for r in expected) and any(r["note"] is not None for r in expected)
    query = f'{{ orders(where: {{id: {{lte: "40"}}}}, orderBy: [{{note: {direction}}}, {{id: DESC}}]) {{ id note }} }}'
    assert_data(client, query, {"orders": expected})


@pytest.mark.parametrize(
    ("root", "table", "fields", "args", "order_sql", "limit", "offset"),
    [
        pytest.param("customers", "customers", "id isActive phone name",
                     "orderBy: [{isActive: ASC}, {phone: DESC_NULLS_LAST}, {id: DESC}], limit: 60",
                     "t.is_active, t.phone DESC NULLS LAST, t.id DESC", 60, None, id="bool-phone-id"),
        pytest.param("orders", "orders", "id status shippedOn total",
                     "orderBy: [{status: DESC}, {shippedOn: ASC_NULLS_FIRST}, {total: DESC}, {id: ASC}], "
                     "limit: 100, offset: 100",
                     "t.status DESC, t.shipped_on ASC NULLS FIRST, t.total DESC, t.id", 100, 100,
                     id="enum-date-decimal"),
        pytest.param("products", "products", "id inStock price",
                     "orderBy: [{inStock: DESC}, {price: ASC}]", "t.in_stock DESC, t.price", None, None,
                     id="bool-price"),
        pytest.param("orderItems", "order_items", "id discount",
                     "orderBy: [{discount: DESC_NULLS_LAST}, {id: ASC}], limit: 50, offset: 1150",
                     "t.discount DESC NULLS LAST, t.id", 50, 1150, id="numeric-mixed-scale"),
        pytest.param("customers", "customers", "id name", "orderBy: [{name: ASC}, {id: ASC}]", "t.name, t.id",
                     None, None, id="text-collation"),
        pytest.param("customerOrderTotals", "customer_order_totals", "customerId orderCount totalSpent",
                     "orderBy: [{orderCount: DESC}, {totalSpent: ASC}], limit: 30",
                     "t.order_count DESC, t.total_spent", 30, None, id="view"),
    ],
)
def test_multi_key_order(client: httpx.Client, db: Db, root: str, table: str, fields: str, args: str, order_sql: str,
                         limit: int | None, offset: int | None) -> None:
    """Multi-key orderBy with mixed directions equals SQL ORDER BY."""
    expected = rows(db, table, fields, order=order_sql, limit=limit, offset=offset)
    assert expected
    assert_data(client, f"{{ {root}({args}) {{ {fields} }} }}", {root: expected})


@pytest.mark.parametrize(
    ("limit", "offset"), [(25, 50), (10, None), (None, 1990), (5, 1995), (10, 1998), (3, 5000), (0, None), (1, 0)]
)
def test_limit_offset(client: httpx.Client, db: Db, limit: int | None, offset: int | None) -> None:
    """limit/offset slice the ordered list like SQL LIMIT/OFFSET (past the end: empty)."""
    expected = rows(db, "orders", "id total", order="t.total DESC, t.id", limit=limit, offset=offset)
    args = "".join(f", {name}: {value}" for name, value in (("limit", limit), ("offset", offset)) if value is not None)
    query = f"{{ orders(orderBy: [{{total: DESC}}, {{id: ASC}}]{args}) {{ id total }} }}"
    assert_data(client, query, {"orders": expected})


KEYSETS = [
    pytest.param("orders", '{id: {lte: "150"}}', "t.id <= 150", "{customerId: ASC}, {total: DESC}, {id: ASC}",
                 "t.customer_id, t.total DESC, t.id", 40, id="non-unique-first-key"),
    pytest.param("orders", '{id: {lte: "150"}}', "t.id <= 150", "{note: ASC_NULLS_FIRST}, {status: DESC}, {id: DESC}",
                 "t.note ASC NULLS FIRST, t.status DESC, t.id DESC", 35, id="nullable-nulls-first"),
    pytest.param("orders", '{id: {lte: "150"}}', "t.id <= 150", "{shippedOn: DESC}, {status: ASC}, {id: ASC}",
                 "t.shipped_on DESC, t.status, t.id", 30, id="nullable-desc"),
    pytest.param("orders", '{id: {lte: "400"}}', "t.id <= 400", "{status: ASC}, {placedAt: DESC}",
                 "t.status, t.placed_at DESC", 45, id="enum-then-datetime"),
    pytest.param("customers", "{isActive: {isNull: false}}", "TRUE", "{name: DESC}, {id: ASC}", "t.name DESC, t.id",
                 60, id="text-with-awkward-characters"),
    pytest.param("customers", "{isActive: {isNull: false}}", "TRUE", "{phone: ASC}, {isActive: DESC}, {id: ASC}",
                 "t.phone, t.is_active DESC, t.id", 70, id="nullable-nulls-last"),
    pytest.param("orderItems", '{orderId: {lte: "100"}}', "t.order_id <= 100",
                 "{discount: DESC_NULLS_LAST}, {quantity: DESC}, {id: ASC}",
                 "t.discount DESC NULLS LAST, t.quantity DESC, t.id", 50, id="numeric-mixed-scale"),
    # No view: a view without a primary key has no `after` (docs/graphql.md; tests/integration/query/test_keyset.py).
]


@pytest.mark.parametrize(("root", "where_gql", "where_sql", "order_gql", "order_sql", "page"), KEYSETS)
def test_keyset_pagination(client: httpx.Client, db: Db, root: str, where_gql: str, where_sql: str, order_gql: str,
                           order_sql: str, page: int) -> None:
    """Walking pages with `after: <last _cursor>` yields exactly the SQL oracle's consecutive pages."""
    table, fields, _, _ = ROOTS[root]
    expected = rows(db, table, fields, where_sql, order=order_sql)
    assert len(expected) > 2 * page
    query = (f"query Page($after: String) {{ {root}(where: {where_gql}, orderBy: [{order_gql}], limit: {page}, "
             f"after: $after) {{ {fields} _cursor }} }}")
    after: str | None = None
    cursors: list[str] = []
    for start in range(0, len(expected) + 1, page):  # the last page is short or empty
        got = post(client, query, {"after": after})["data"][root]
        page_cursors = [row.pop("_cursor") for row in got]
        assert got == expected[start:start + page], f"page starting at row {start}"
        assert orjson.dumps(got) == orjson.dumps(expected[start:start + page])
        assert all(isinstance(c, str) and c for c in page_cursors)
        cursors += page_cursors
        if got:
            after = page_cursors[-1]
    assert len(set(cursors)) == len(expected)


# --- nested relations --------------------------------------------------------------------------------------


def test_many_to_one(client: httpx.Client, db: Db) -> None:
    """`order { customer { ... } }` between other fields keeps selection order."""
    query = """{ orders(where: {id: {in: ["1", "2", "3", "500", "1999"]}}, orderBy: [{id: DESC}]) {
        id total customer { id name phone isActive profile } placedAt } }"""
    expected = []
    for order in rows(db, "orders", "id total placedAt customerId", "t.id IN (1, 2, 3, 500, 1999)", order="t.id DESC"):
        customer = one(db, "customers", "id name phone isActive profile", order.pop("customerId"))
        expected.append({"id": order["id"], "total": order["total"], "customer": customer,
                         "placedAt": order["placedAt"]})
    assert len(expected) == 5
    assert_data(client, query, {"orders": expected})


def test_many_to_one_chain(client: httpx.Client, db: Db) -> None:
    """orderItem -> product and orderItem -> order -> customer."""
    query = """{ orderItems(where: {id: {lte: "12"}}, orderBy: [{id: ASC}]) {
        id quantity product { sku price tags } order { id status customer { email } } } }"""
    expected = []
    for item in rows(db, "order_items", "id quantity productId orderId", "t.id <= 12"):
        order = one(db, "orders", "id status customerId", item["orderId"])
        assert order is not None
        customer = one(db, "customers", "email", order.pop("customerId"))
        expected.append({"id": item["id"], "quantity": item["quantity"],
                         "product": one(db, "products", "sku price tags", item["productId"]),
                         "order": {**order, "customer": customer}})
    assert_data(client, query, {"orderItems": expected})


def test_one_to_many_with_arguments(client: httpx.Client, db: Db) -> None:
    """`customer { orders(where, orderBy, limit/offset) }`: per-parent limits, relation filters, empty lists."""
    query = """{ customers(where: {id: {lte: "12"}}, orderBy: [{id: ASC}]) {
        id name
        orders(where: {status: {neq: cancelled}}, orderBy: [{placedAt: DESC}], limit: 3) { id status placedAt }
        cheapest: orders(orderBy: [{total: ASC}], limit: 2, offset: 1) { id total }
        none: orders(where: {total: {gt: "99999999"}}) { id }
        pricey: orders(where: {orderItems: {product: {price: {gt: "900"}}}}, orderBy: [{id: ASC}]) { id }
    } }"""
    expected = []
    for customer in rows(db, "customers", "id name", "t.id <= 12"):
        key = (int(customer["id"]),)
        expected.append({
            **customer,
            "orders": rows(db, "orders", "id status placedAt", "t.customer_id = %s AND t.status <> 'cancelled'", key,
                           order="t.placed_at DESC", limit=3),
            "cheapest": rows(db, "orders", "id total", "t.customer_id = %s", key, order="t.total", limit=2, offset=1),
            "none": [],
            "pricey": rows(db, "orders", "id", "t.customer_id = %s AND EXISTS (SELECT 1 FROM order_items AS i JOIN"
                           " products AS p ON p.id = i.product_id WHERE i.order_id = t.id AND p.price > 900)", key),
        })
    assert all(c["orders"] for c in expected) and any(c["pricey"] for c in expected)
    assert_data(client, query, {"customers": expected})


def test_two_levels_deep(client: httpx.Client, db: Db) -> None:
    """customer -> orders -> orderItems -> product, each level ordered."""
    query = """{ customers(where: {id: {in: ["7", "57", "107", "157"]}}, orderBy: [{id: DESC}]) {
        id name orders(orderBy: [{id: ASC}]) {
            id total orderItems(orderBy: [{quantity: DESC}, {id: ASC}]) {
                id quantity unitPrice discount product { sku name barcode thumbnail } } } } }"""
    expected = []
    for customer in rows(db, "customers", "id name", "t.id IN (7, 57, 107, 157)", order="t.id DESC"):
        orders = []
        for order in rows(db, "orders", "id total", "t.customer_id = %s", (int(customer["id"]),)):
            items = []
            for item in rows(db, "order_items", "id quantity unitPrice discount productId", "t.order_id = %s",
                             (int(order["id"]),), order="t.quantity DESC, t.id"):
                product = one(db, "products", "sku name barcode thumbnail", item.pop("productId"))
                items.append({**item, "product": product})
            orders.append({**order, "orderItems": items})
        expected.append({**customer, "orders": orders})
    assert sum(len(c["orders"]) for c in expected) > 10
    assert_data(client, query, {"customers": expected})


def test_whole_graph(client: httpx.Client, db: Db) -> None:
    """Every customer with every order and item: one large nested response (crosses streaming batches)."""
    query = """{ customers(orderBy: [{id: ASC}]) {
        id email orders(orderBy: [{placedAt: ASC}]) { id placedAt meta orderItems(orderBy: [{id: ASC}]) {
            id productId discount } } } }"""
    items: dict[str, list[Row]] = {}
    for item in rows(db, "order_items", "id productId discount orderId"):
        items.setdefault(item.pop("orderId"), []).append(item)
    orders: dict[str, list[Row]] = {}
    for order in rows(db, "orders", "id placedAt meta customerId", order="t.placed_at"):
        orders.setdefault(order.pop("customerId"), []).append({**order, "orderItems": items.get(order["id"], [])})
    expected = [{**c, "orders": orders.get(c["id"], [])} for c in rows(db, "customers", "id email")]
    assert sum(len(o["orderItems"]) for c in expected for o in c["orders"]) == count(db, "order_items")
    assert_data(client, query, {"customers": expected})


def test_one_to_many_from_product(client: httpx.Client, db: Db) -> None:
    """product -> orderItems(where, orderBy, limit, offset) -> order -> customer."""
    query = """{ products(where: {id: {lte: "3"}}, orderBy: [{id: ASC}]) {
        sku orderItems(where: {quantity: {gte: 4}}, orderBy: [{id: DESC}], limit: 5, offset: 1) {
            id quantity order { id customer { name } } } } }"""
    expected = []
    for product in rows(db, "products", "sku id", "t.id <= 3"):
        items = []
        for item in rows(db, "order_items", "id quantity orderId", "t.product_id = %s AND t.quantity >= 4",
                         (int(product.pop("id")),), order="t.id DESC", limit=5, offset=1):
            order = one(db, "orders", "id customerId", item.pop("orderId"))
            assert order is not None
            order["customer"] = one(db, "customers", "name", order.pop("customerId"))
            items.append({**item, "order": order})
        expected.append({**product, "orderItems": items})
    assert all(p["orderItems"] for p in expected)
    assert_data(client, query, {"products": expected})


# --- aliases, fragments, directives, __typename ------------------------------------------------------------


def test_aliases(client: httpx.Client, db: Db) -> None:
    """The same root and nested fields twice under different aliases and arguments."""
    query = """{
        first: order(id: "1") { id total }
        second: order(id: "2") { ref: id amount: total again: total }
        cheap: orders(orderBy: [{total: ASC}, {id: ASC}], limit: 3) { id total }
        dear: orders(orderBy: [{total: DESC}, {id: ASC}], limit: 3) { id price: total }
        customer(id: "42") {
            id
            recent: orders(orderBy: [{placedAt: DESC}], limit: 2) { id placedAt }
            biggest: orders(orderBy: [{total: DESC}, {id: ASC}], limit: 2) { id total }
        }
    }"""
    expected = {
        "first": one(db, "orders", "id total", 1),
        "second": one(db, "orders", "ref:id amount:total again:total", 2),
        "cheap": rows(db, "orders", "id total", order="t.total, t.id", limit=3),
        "dear": rows(db, "orders", "id price:total", order="t.total DESC, t.id", limit=3),
        "customer": {
            "id": "42",
            "recent": rows(db, "orders", "id placedAt", "t.customer_id = 42", order="t.placed_at DESC", limit=2),
            "biggest": rows(db, "orders", "id total", "t.customer_id = 42", order="t.total DESC, t.id", limit=2),
        },
    }
    assert_data(client, query, expected)


def test_fragments_and_directives(client: httpx.Client, db: Db) -> None:
    """Named, nested and inline fragments merge (sub-selections too) in first-occurrence order; @skip/@include."""
    query = """{
        orders(where: {id: {lte: "8"}}, orderBy: [{id: ASC}]) {
            id
            customer { id }
            ...OrderBits
            ... on Order { note customer { ...CustomerBits } }
            ... @include(if: false) { meta }
            isPaid @skip(if: false)
            uuid @skip(if: true)
        }
    }
    fragment OrderBits on Order { status total id }
    fragment CustomerBits on Customer { name ... on Customer { email name } }"""
    expected = []
    for order in rows(db, "orders", "id status total note isPaid customerId", "t.id <= 8"):
        customer = one(db, "customers", "id name email", order.pop("customerId"))
        expected.append({"id": order.pop("id"), "customer": customer, **order})
    assert_data(client, query, {"orders": expected})


def test_fragment_on_query_root(client: httpx.Client, db: Db) -> None:
    """A fragment spread on the Query type, fragments nested in it, and the same root field merged."""
    query = """query { ...Roots ordersAggregate { count } order(id: "3") { total id } }
    fragment Roots on Query { order(id: "3") { ...O } }
    fragment O on Order { id customer { id orders(orderBy: [{id: ASC}], limit: 2) { ...Brief } } }
    fragment Brief on Order { id status }"""
    order = one(db, "orders", "id customerId", 3)
    assert order is not None
    customer_id = order.pop("customerId")
    order["customer"] = {"id": customer_id,
                         "orders": rows(db, "orders", "id status", "t.customer_id = %s", (int(customer_id),), limit=2)}
    order["total"] = rows(db, "orders", "total", "t.id = 3")[0]["total"]
    expected = {"order": order, "ordersAggregate": {"count": count(db, "orders")}}
    assert_data(client, query, expected)


def test_typename(client: httpx.Client, db: Db) -> None:
    """`__typename` at the root, on rows, on nested objects and lists, and on aggregates."""
    query = """{
        __typename
        orders(orderBy: [{id: ASC}], limit: 2) {
            __typename id customer { __typename id } orderItems(orderBy: [{id: ASC}]) { __typename id }
        }
        ordersAggregate { __typename count }
        order(id: "1") { kind: __typename }
        customerOrderTotals(orderBy: [{customerId: ASC}], limit: 1) { __typename customerId }
    }"""
    orders = []
    for order in rows(db, "orders", "id customerId", limit=2):
        items = rows(db, "order_items", "id", "t.order_id = %s", (int(order["id"]),))
        orders.append({"__typename": "Order", "id": order["id"],
                       "customer": {"__typename": "Customer", "id": order["customerId"]},
                       "orderItems": [{"__typename": "OrderItem", **item} for item in items]})
    expected = {
        "__typename": "Query",
        "orders": orders,
        "ordersAggregate": {"__typename": "OrderAggregate", "count": count(db, "orders")},
        "order": {"kind": "Order"},
        "customerOrderTotals": [{"__typename": "CustomerOrderTotal", "customerId": "1"}],
    }
    assert_data(client, query, expected)
    assert_data(client, "{ __typename }", {"__typename": "Query"})


def test_list_input_coercion(client: httpx.Client, db: Db) -> None:
    """A single value where a list is expected is a one-item list (GraphQL input coercion)."""
    query = """query($ids: [BigInt!]) {
        literal: orders(orderBy: {total: DESC}, where: {status: {in: cancelled}}, limit: 4) { id total }
        variable: orders(where: {id: {in: $ids}}) { id }
    }"""
    expected = {
        "literal": rows(db, "orders", "id total", "t.status = 'cancelled'", order="t.total DESC", limit=4),
        "variable": [{"id": "5"}],
    }
    assert_data(client, query, expected, {"ids": "5"})


# --- variables ----------------------------------------------------------------------------------------------

Expect = Callable[[Db], dict[str, Any]]
VARIABLES: list[Any] = [
    pytest.param(
        "query($id: BigInt!) { order(id: $id) { id customerId total } }", {"id": "17"},
        lambda db: {"order": one(db, "orders", "id customerId total", 17)}, id="bigint",
    ),
    pytest.param(
        "query($id: BigInt!, $l: Int) { orders(where: {id: {gte: $id}}, orderBy: [{id: DESC}], limit: $l) { id } }",
        {"id": 1990, "l": None},
        lambda db: {"orders": rows(db, "orders", "id", "t.id >= 1990", order="t.id DESC")},
        id="bigint-as-number-null-limit",
    ),
    pytest.param(
        "query($code: BigInt!) { products(where: {barcode: {eq: $code}}) { id barcode } }",
        {"code": "9007199254764750"},
        lambda db: {"products": rows(db, "products", "id barcode", "t.barcode = 9007199254764750")},
        id="bigint-beyond-2^53",
    ),
    pytest.param(
        "query($min: Decimal!, $max: Decimal!) { orders(where: {total: {gte: $min, lt: $max}}, orderBy: [{id: ASC}])"
        " { id total } }", {"min": "1000.10", "max": "1100"},
        lambda db: {"orders": rows(db, "orders", "id total", "t.total >= 1000.10 AND t.total < 1100")}, id="decimal",
    ),
    pytest.param(
        "query($s: OrderStatus!) { orders(where: {status: {eq: $s}}, orderBy: [{id: DESC}], limit: 20) { id status } }",
        {"s": "cancelled"},
        lambda db: {"orders": rows(db, "orders", "id status", "t.status = 'cancelled'", order="t.id DESC", limit=20)},
        id="enum",
    ),
    pytest.param(
        "query($no: [OrderStatus!]!) { orders(where: {status: {nin: $no}, id: {lte: 200}}, orderBy: [{id: ASC}])"
        " { id status } }", {"no": ["delivered", "paid"]},
        lambda db: {"orders": rows(db, "orders", "id status",
                                   "t.status NOT IN ('delivered', 'paid') AND t.id <= 200")},
        id="enum-list",
    ),
    pytest.param(
        "query($from: DateTime!, $to: DateTime!) { orders(where: {placedAt: {gte: $from, lt: $to}},"
        " orderBy: [{placedAt: ASC}]) { id placedAt } }",
        {"from": "2025-03-01T02:00:00+02:00", "to": "2025-03-08T00:00:00+00:00"},
        lambda db: {"orders": rows(db, "orders", "id placedAt", "t.placed_at >= '2025-03-01T00:00:00Z'"
                                   " AND t.placed_at < '2025-03-08T00:00:00Z'", order="t.placed_at")},
        id="datetime-offset",
    ),
    pytest.param(
        "query($d: Date!) { orders(where: {shippedOn: {gte: $d}}, orderBy: [{shippedOn: ASC}, {id: ASC}]) "
        "{ id shippedOn } }", {"d": "2025-12-20"},
        lambda db: {"orders": rows(db, "orders", "id shippedOn", "t.shipped_on >= '2025-12-20'",
                                   order="t.shipped_on, t.id")},
        id="date",
    ),
    pytest.param(
        "query($ids: [BigInt!]!) { orders(where: {id: {in: $ids}}, orderBy: [{id: ASC}]) { id customerId } }",
        {"ids": ["3", "1", "4", "1", "5", "9", "2", "6"]},
        lambda db: {"orders": rows(db, "orders", "id customerId", "t.id IN (3, 1, 4, 5, 9, 2, 6)")},
        id="bigint-list",
    ),
    pytest.param(
        "query($qs: [Int!]!, $n: Int!, $skip: Int) { orderItems(where: {quantity: {in: $qs}},"
        " orderBy: [{quantity: DESC}, {id: ASC}], limit: $n, offset: $skip) { id quantity } }",
        {"qs": [1, 5], "n": 15, "skip": 3},
        lambda db: {"orderItems": rows(db, "order_items", "id quantity", "t.quantity IN (1, 5)",
                                       order="t.quantity DESC, t.id", limit=15, offset=3)},
        id="int-list-limit-offset",
    ),
    pytest.param(
        "query($where: OrderWhere!, $order: [OrderOrderBy!]!, $limit: Int!, $offset: Int) {"
        " orders(where: $where, orderBy: $order, limit: $limit, offset: $offset) { id note total customerId } }",
        {"where": {"or": [{"note": {"like": "%door%"}}, {"customer": {"name": {"like": "Zo%"}}}],
                   "placedAt": {"lt": "2025-06-01T00:00:00+00:00"}},
         "order": [{"total": "DESC"}, {"id": "ASC"}], "limit": 10, "offset": 2},
        lambda db: {"orders": rows(
            db, "orders", "id note total customerId",
            "(t.note LIKE %s OR EXISTS (SELECT 1 FROM customers AS c WHERE c.id = t.customer_id AND c.name LIKE %s))"
            " AND t.placed_at < '2025-06-01T00:00:00+00:00'", ("%door%", "Zo%"), order="t.total DESC, t.id",
            limit=10, offset=2)},
        id="input-objects",
    ),
    pytest.param(
        "query($w: CustomerWhere) { customers(where: $w, orderBy: [{id: ASC}]) { id name } }",
        {"w": {"name": {"like": "Back\\\\slash%"}}},
        lambda db: {"customers": rows(db, "customers", "id name", "t.name LIKE %s", ("Back\\\\slash%",))},
        id="string-like-backslash",
    ),
    pytest.param(
        "query($active: Boolean!, $noPhone: Boolean!) { customers(where: {isActive: {eq: $active},"
        " phone: {isNull: $noPhone}}, orderBy: [{id: ASC}]) { id isActive phone } }",
        {"active": False, "noPhone": False},
        lambda db: {"customers": rows(db, "customers", "id isActive phone", "NOT t.is_active AND t.phone IS NOT NULL")},
        id="booleans",
    ),
    pytest.param(
        "query($limit: Int = 3, $withNote: Boolean!) { orders(orderBy: [{id: ASC}], limit: $limit)"
        " { id note @include(if: $withNote) total } }", {"withNote": True},
        lambda db: {"orders": rows(db, "orders", "id note total", limit=3)}, id="default-and-include-true",
    ),
    pytest.param(
        "query($limit: Int = 3, $withNote: Boolean!) { orders(orderBy: [{id: ASC}], limit: $limit)"
        " { id note @include(if: $withNote) total } }", {"withNote": False, "limit": 4},
        lambda db: {"orders": rows(db, "orders", "id total", limit=4)}, id="include-false",
    ),
]


@pytest.mark.parametrize(("query", "variables", "expect"), VARIABLES)
def test_variables(client: httpx.Client, db: Db, query: str, variables: dict[str, Any], expect: Expect) -> None:
    """Variables of every input kind are coerced and applied like literals."""
    expected = expect(db)
    assert any(v for v in expected.values())
    assert_data(client, query, expected, variables)


def test_uuid_and_bytes_variables(client: httpx.Client, db: Db) -> None:
    """UUID (sent upper-case) and Bytes (base64) variables taken from the data itself."""
    target = one(db, "orders", "uuid", 77)
    product = rows(db, "products", "id thumbnail", "t.thumbnail IS NOT NULL", limit=1, offset=5)[0]
    assert target is not None
    query = """query($u: UUID!, $b: Bytes!) {
        orders(where: {uuid: {eq: $u}}) { id uuid }
        products(where: {thumbnail: {eq: $b}}, orderBy: [{id: ASC}]) { id thumbnail }
    }"""
    expected = {
        "orders": rows(db, "orders", "id uuid", "t.uuid = %s", (target["uuid"],)),
        "products": rows(db, "products", "id thumbnail", "t.thumbnail = %s", (base64.b64decode(product["thumbnail"]),)),
    }
    assert expected["orders"] and expected["products"] == [product]
    assert_data(client, query, expected, {"u": target["uuid"].upper(), "b": product["thumbnail"]})


# --- nulls, by-key roots, aggregates, the view ------------------------------------------------------------------


def test_nulls(client: httpx.Client, db: Db) -> None:
    """Nullable columns come back as JSON null."""
    query = """{
        orders(where: {note: {isNull: true}, shippedOn: {isNull: true}}, orderBy: [{id: ASC}], limit: 5) {
            id note shippedOn }
        products(where: {description: {isNull: true}, thumbnail: {isNull: true}}, orderBy: [{id: ASC}]) {
            id description thumbnail }
        orderItems(where: {discount: {isNull: true}}, orderBy: [{id: ASC}], limit: 5) { id discount }
        customers(where: {phone: {isNull: true}}, orderBy: [{id: ASC}], limit: 5) { id phone }
    }"""
    expected = {
        "orders": rows(db, "orders", "id note shippedOn", "t.note IS NULL AND t.shipped_on IS NULL", limit=5),
        "products": rows(db, "products", "id description thumbnail",
                         "t.description IS NULL AND t.thumbnail IS NULL"),
        "orderItems": rows(db, "order_items", "id discount", "t.discount IS NULL", limit=5),
        "customers": rows(db, "customers", "id phone", "t.phone IS NULL", limit=5),
    }
    for found in expected.values():
        assert found and all(v is None for row in found for k, v in row.items() if k != "id")
    assert_data(client, query, expected)


def test_by_primary_key(client: httpx.Client, db: Db) -> None:
    """By-key roots return the row with every column, or null for a missing id."""
    query = f"""{{
        order(id: "5") {{ {ALL_FIELDS["orders"]} }}
        five: order(id: 5) {{ id }}
        missing: order(id: "999999") {{ id total }}
        customer(id: "7") {{ {ALL_FIELDS["customers"]} }}
        product(id: "11") {{ {ALL_FIELDS["products"]} }}
        orderItem(id: "3999") {{ {ALL_FIELDS["order_items"]} }}
        noItem: orderItem(id: "0") {{ id }}
    }}"""
    expected = {
        "order": one(db, "orders", ALL_FIELDS["orders"], 5),
        "five": {"id": "5"},
        "missing": None,
        "customer": one(db, "customers", ALL_FIELDS["customers"], 7),
        "product": one(db, "products", ALL_FIELDS["products"], 11),
        "orderItem": one(db, "order_items", ALL_FIELDS["order_items"], 3999),
        "noItem": None,
    }
    assert expected["order"] and expected["customer"] and expected["product"] and expected["orderItem"]
    assert_data(client, query, expected)


def test_aggregates(client: httpx.Client, db: Db) -> None:
    """`count` with and without filters, relation filters included, on every table and the view."""
    query = """{
        all: ordersAggregate { count }
        paid: ordersAggregate(where: {isPaid: {eq: true}}) { count }
        activeCustomers: ordersAggregate(where: {customer: {isActive: {eq: true}}}) { count }
        none: ordersAggregate(where: {id: {lt: "0"}}) { count }
        customersAggregate(where: {orders: {status: {eq: cancelled}}}) { count }
        productsAggregate { count }
        orderItemsAggregate(where: {discount: {isNull: false}}) { count }
        customerOrderTotalsAggregate(where: {orderCount: {gte: 15}}) { count }
    }"""
    expected = {
        "all": {"count": count(db, "orders")},
        "paid": {"count": count(db, "orders", "t.is_paid")},
        "activeCustomers": {"count": count(db, "orders", "EXISTS (SELECT 1 FROM customers AS c"
                                                         " WHERE c.id = t.customer_id AND c.is_active)")},
        "none": {"count": 0},
        "customersAggregate": {"count": count(
            db, "customers", "EXISTS (SELECT 1 FROM orders AS o WHERE o.customer_id = t.id AND o.status = 'cancelled')"
        )},
        "productsAggregate": {"count": count(db, "products")},
        "orderItemsAggregate": {"count": count(db, "order_items", "t.discount IS NOT NULL")},
        "customerOrderTotalsAggregate": {"count": count(db, "customer_order_totals", "t.order_count >= 15")},
    }
    assert expected["all"] == {"count": 2000}
    assert_data(client, query, expected)


def test_view(client: httpx.Client, db: Db) -> None:
    """`customerOrderTotals` equals the aggregate recomputed from orders."""
    query = """{ customerOrderTotals(where: {orderCount: {gte: 12}}, orderBy: [{totalSpent: DESC}, {customerId: ASC}],
        limit: 15) { customerId orderCount totalSpent } }"""
    expected = rows(db, "customer_order_totals", "customerId orderCount totalSpent", "t.order_count >= 12",
                    order="t.total_spent DESC, t.customer_id", limit=15)
    assert len(expected) == 15
    assert_data(client, query, {"customerOrderTotals": expected})
