"""The benchmarks' databases: created on the server of an admin URL, loaded with demo data once and reused
while their marker comment says the data is what was asked for (loading 1M orders takes minutes)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from quiver.demo import generate

DB_NAME = "quiver_bench"  # the orders database of json_plane and query_planes
BENCH_ORDERS = 1_000_000
#: The FraiseQL v1 view: one jsonb document per row, camelCase keys, int8/numeric as text
#: (as Quiver renders them); timestamptz renders as ISO 8601 like Quiver's under TimeZone=UTC.
VIEW_SQL = """
CREATE OR REPLACE VIEW v_orders AS
SELECT o.id, jsonb_build_object(
    'id', o.id::text,
    'uuid', o.uuid,
    'customerId', o.customer_id::text,
    'status', o.status,
    'total', o.total::text,
    'isPaid', o.is_paid,
    'placedAt', o.placed_at,
    'meta', o.meta
) AS data
FROM orders AS o
"""


def database_url(admin_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``admin_url``."""
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def ensure_database(admin_url: str, name: str) -> str:
    """Database ``name``, created when missing; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(admin_url, name)


def create_database(admin_url: str, name: str, template: str) -> str:
    """A fresh copy of ``template``; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def load_demo(conn: psycopg.Connection, orders: int, marker: str) -> bool:
    """Demo data with ``orders`` orders, unless the ``orders`` table's comment is already ``marker``;
    returns whether it loaded (the comment is set last, so an interrupted load is redone)."""
    row = conn.execute("SELECT obj_description(to_regclass('public.orders'), 'pg_class')").fetchone()
    if row is not None and row[0] == marker:
        return False
    generate.install_schema(conn)
    generate.load(conn, orders)
    conn.execute(sql.SQL("COMMENT ON TABLE orders IS {}").format(sql.Literal(marker)))
    return True


def ensure_bench_database(admin_url: str, name: str = DB_NAME, orders: int = BENCH_ORDERS) -> str:
    """A database with ``orders`` demo orders and the ``v_orders`` view; data is reused when already loaded."""
    url = ensure_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        # Every LIMIT N scan starts at the first heap page, so all servers read the same rows.
        admin.execute(sql.SQL("ALTER DATABASE {} SET synchronize_seqscans = off").format(sql.Identifier(name)))
    with psycopg.connect(url, autocommit=True) as conn:
        if load_demo(conn, orders, f"quiver demo orders={orders} seed=42"):
            conn.execute("VACUUM (ANALYZE) orders")  # settle hint bits and the visibility map before timing
        conn.execute(VIEW_SQL)
    return url


def pg_settings(url: str, *names: str) -> dict[str, str]:
    """PostgreSQL settings by name (``SHOW``), ``?`` when one has no value."""
    out = {}
    with psycopg.connect(url) as conn:
        for name in names:
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            out[name] = str(row[0]) if row else "?"
    return out
