"""Loads the demo data set into a throwaway database and checks the properties other tests rely on.

Needs an admin URL (e.g. the ``postgres`` database) allowed to CREATE DATABASE, from
``QUIVER_TEST_DATABASE_URL`` or else ``QUIVER_TEST_ADMIN_URL`` (what ``scripts/services env`` exports).
Like the other integration tests it fails, rather than skips, without one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from quiver.demo import generate
from quiver.demo import rows as demo_rows

ORDERS = 2_000


def _admin_url() -> str:
    url = os.environ.get("QUIVER_TEST_DATABASE_URL") or os.environ.get("QUIVER_TEST_ADMIN_URL")
    if not url:
        pytest.fail("set QUIVER_TEST_DATABASE_URL (or QUIVER_TEST_ADMIN_URL) to an admin PostgreSQL URL")
    return url


@pytest.fixture(scope="module")
def fresh_url() -> Iterator[str]:
    """A fresh database of our own (not the shared demo one), dropped afterwards."""
    admin_url = _admin_url()
    name = f"quiver_test_demo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(admin_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def loaded(fresh_url: str) -> Iterator[tuple[psycopg.Connection, generate.DemoCounts]]:
    """The demo schema loaded with ORDERS orders, plus an open connection to it."""
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        generate.install_schema(conn)
        counts = generate.load(conn, ORDERS, seed=42)
        yield conn, counts


def _one(conn: psycopg.Connection, query: str) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_counts(loaded: tuple[psycopg.Connection, generate.DemoCounts]) -> None:
    conn, counts = loaded
    assert (counts.customers, counts.products, counts.orders) == (200, 50, ORDERS)
    assert 1.8 * ORDERS < counts.order_items < 2.2 * ORDERS
    for table in generate.TABLES:
        assert _one(conn, f"SELECT count(*) FROM {table}") == getattr(counts, table)


def test_ids_are_contiguous_and_sequences_reset(loaded: tuple[psycopg.Connection, generate.DemoCounts]) -> None:
    conn, counts = loaded
    for table in generate.TABLES:
        n = getattr(counts, table)
        assert conn.execute(f"SELECT min(id), max(id), count(DISTINCT id) FROM {table}").fetchone() == (1, n, n)
        # The next generated id follows the loaded ones instead of colliding with id 1.
        assert _one(conn, f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))") == n + 1


def test_null_ratios(loaded: tuple[psycopg.Connection, generate.DemoCounts]) -> None:
    conn, _ = loaded
    ratios = {
        "customers.phone": (0.15, 0.45),
        "products.description": (0.05, 0.40),
        "products.thumbnail": (0.25, 0.75),
        "orders.note": (0.50, 0.70),
        "order_items.discount": (0.63, 0.77),
    }
    for column, (low, high) in ratios.items():
        table, name = column.split(".")
        ratio = _one(conn, f"SELECT avg(({name} IS NULL)::int)::float8 FROM {table}")
        assert isinstance(ratio, float)
        assert low < ratio < high, f"{column}: {ratio:.2f} NULL"
    inactive = _one(conn, "SELECT avg((NOT is_active)::int)::float8 FROM customers")
    assert isinstance(inactive, float) and 0.02 < inactive < 0.20


def test_foreign_keys_and_indexes_are_back(loaded: tuple[psycopg.Connection, generate.DemoCounts]) -> None:
    conn, _ = loaded
    assert (
        _one(conn, "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL")
        == 0
    )
    assert (
        _one(conn, "SELECT count(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL") == 0
    )
    assert (
        _one(conn, "SELECT count(*) FROM order_items i LEFT JOIN products p ON p.id = i.product_id WHERE p.id IS NULL")
        == 0
    )
    # load() drops foreign keys and secondary indexes for speed; they must all be recreated.
    foreign_keys = conn.execute(
        "SELECT conname FROM pg_constraint WHERE contype = 'f' AND convalidated ORDER BY 1"
    ).fetchall()
    assert [name for (name,) in foreign_keys] == [
        "order_items_order_id_fkey",
        "order_items_product_id_fkey",
        "orders_customer_id_fkey",
    ]
    indexes = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE '%\\_idx' ORDER BY 1"
    ).fetchall()
    assert [name for (name,) in indexes] == [
        "order_items_order_id_idx",
        "order_items_product_id_idx",
        "orders_customer_id_idx",
    ]
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("INSERT INTO orders (uuid, customer_id, total) VALUES (gen_random_uuid(), 999999, 0)")


def test_barcode_round_trips_exactly(loaded: tuple[psycopg.Connection, generate.DemoCounts]) -> None:
    conn, _ = loaded
    expected = demo_rows.BARCODE_BASE + 2 * demo_rows.BARCODE_STEP
    assert expected > 2**53 and int(float(expected)) != expected  # a float64 would corrupt it
    value = _one(conn, "SELECT barcode FROM products WHERE id = 2")
    assert type(value) is int and value == expected
    rows = conn.execute("SELECT id, barcode FROM products").fetchall()
    assert all(barcode == demo_rows.BARCODE_BASE + id_ * demo_rows.BARCODE_STEP for id_, barcode in rows)


def test_values_are_consistent(loaded: tuple[psycopg.Connection, generate.DemoCounts]) -> None:
    conn, _ = loaded
    names: dict[int, str] = dict(conn.execute("SELECT id, name FROM customers WHERE id % 50 = 7").fetchall())
    assert names == {50 * k + 7: demo_rows.TRICKY_NAMES[k] for k in range(4)}
    assert _one(conn, "SELECT count(*) FROM customers WHERE email <> 'customer' || id || '@example.com'") == 0
    assert _one(conn, "SELECT count(DISTINCT uuid) FROM orders") == ORDERS
    assert _one(conn, "SELECT count(*) FROM orders WHERE is_paid <> (status NOT IN ('pending', 'cancelled'))") == 0
    assert (
        _one(conn, "SELECT count(*) FROM orders WHERE (shipped_on IS NULL) <> (status NOT IN ('shipped', 'delivered'))")
        == 0
    )
    assert (
        _one(
            conn,
            "SELECT count(*) FROM orders o JOIN (SELECT order_id, sum(quantity * unit_price) AS s FROM order_items"
            " GROUP BY order_id) i ON i.order_id = o.id WHERE o.total <> i.s",
        )
        == 0
    )
    assert _one(conn, "SELECT count(*) FROM products WHERE price < 1 OR price > 999.99") == 0
    assert _one(conn, "SELECT max(cardinality(tags)) FROM products") == 3
    assert _one(conn, "SELECT max(scale(discount)) FROM order_items") == 6
    assert (
        _one(
            conn,
            "SELECT count(*) FROM order_items WHERE scale(discount) <> scale(trim_scale(discount))",
        )
        == 0
    )
    assert _one(conn, "SELECT count(*) FROM products WHERE thumbnail IS NOT NULL AND length(thumbnail) <> 8") == 0
    assert _one(conn, "SELECT count(*) FROM customers WHERE profile->>'tier' NOT IN ('gold', 'silver', 'bronze')") == 0
    assert _one(conn, "SELECT count(*) FROM orders WHERE placed_at < '2024-01-01Z' OR placed_at >= '2026-01-01Z'") == 0


def test_load_is_deterministic(loaded: tuple[psycopg.Connection, generate.DemoCounts]) -> None:
    conn, counts = loaded
    fingerprint = "SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {} t"
    before = [_one(conn, fingerprint.format(table)) for table in generate.TABLES]
    assert generate.load(conn, ORDERS, seed=42) == counts
    assert [_one(conn, fingerprint.format(table)) for table in generate.TABLES] == before
