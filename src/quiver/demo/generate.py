"""Generate and bulk-load the Quiver demo data set (schema in ``schema.sql``).

The data is deterministic for a given seed and order count, so tests and
benchmarks can rely on exact values. It is deliberately awkward in places:
names with quotes, backslashes and non-ASCII text, bigints above 2**53,
unconstrained numerics with varying scale, arrays whose elements need quoting,
NULLs in every nullable column. Those are the values that catch escaping and
precision bugs in the layers above.

Rows are built column-wise with numpy/pyarrow in bounded chunks, encoded to CSV
by pyarrow and streamed with ``COPY ... FROM STDIN``: there is no per-row Python
code, which is what makes millions of rows load in seconds. The next chunk is
generated in a worker thread while the server ingests the current one.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.rows import TupleRow

from quiver.demo.rows import (
    COLUMNS,
    customer_chunks,
    encode,
    order_chunks,
    products,
)

MIN_ORDERS = 1_000
MAX_ORDERS = 10_000_000

_T = TypeVar("_T")

_DROP_STATEMENTS = (
    "DROP VIEW IF EXISTS customer_order_totals CASCADE",
    "DROP TABLE IF EXISTS order_items, orders, products, customers CASCADE",
    "DROP TYPE IF EXISTS order_status CASCADE",
)
TABLES = ("customers", "products", "orders", "order_items")


@dataclass(frozen=True)
class DemoCounts:
    """Rows loaded per demo table."""

    customers: int
    products: int
    orders: int
    order_items: int


def table_sizes(orders: int) -> tuple[int, int]:
    """(customers, products) for an order count; the order item count is random (1..3 per order)."""
    return max(100, orders // 10), max(50, min(orders // 100, 20_000))


def install_schema(conn: psycopg.Connection) -> None:
    """Drop any previous demo objects and create them afresh from ``schema.sql``."""
    schema = (importlib.resources.files("quiver.demo") / "schema.sql").read_text(encoding="utf-8")
    with conn.transaction():
        for statement in _DROP_STATEMENTS:
            conn.execute(statement)
        # Bytes: run as-is (several statements, no parameters), with no placeholder parsing.
        conn.execute(schema.encode())


def load(conn: psycopg.Connection, orders: int, *, seed: int = 42) -> DemoCounts:
    """Fill the demo tables with ``orders`` orders plus the customers, products and items they need.

    Existing rows are truncated first so ids always run 1..N. It all happens in one
    transaction (a savepoint if the caller has one open): a failed load changes nothing.
    Foreign keys and secondary indexes are dropped for the COPY and recreated afterwards,
    which is several times faster than checking and indexing row by row.
    """
    if not MIN_ORDERS <= orders <= MAX_ORDERS:
        raise ValueError(f"orders must be between {MIN_ORDERS} and {MAX_ORDERS}, got {orders}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    n_customers, n_products = table_sizes(orders)
    product_table, price_cents = products(seed, n_products)
    n_items = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("TRUNCATE order_items, orders, products, customers RESTART IDENTITY")
        with (
            _deferred_indexes_and_foreign_keys(cur),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="quiver-demo") as pool,
        ):
            for chunk in _prefetch(pool, customer_chunks(seed, n_customers)):
                _copy(cur, "customers", chunk)
            _copy(cur, "products", encode(product_table))
            for orders_csv, items_csv, n in _prefetch(pool, order_chunks(seed, orders, n_customers, price_cents)):
                _copy(cur, "orders", orders_csv)
                _copy(cur, "order_items", items_csv)
                n_items += n
        for table in TABLES:
            cur.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({name}, 'id'), coalesce(max(id), 1), max(id) IS NOT NULL)"
                    " FROM {table}"
                ).format(name=sql.Literal(table), table=sql.Identifier(table))
            )
        cur.execute("ANALYZE customers, products, orders, order_items")
    return DemoCounts(customers=n_customers, products=n_products, orders=orders, order_items=n_items)


def main(argv: list[str] | None = None) -> None:
    """Command line: install the demo schema into a database and load it."""
    parser = argparse.ArgumentParser(
        prog="python -m quiver.demo.generate", description="Load the Quiver demo data set."
    )
    parser.add_argument("--database-url", required=True, help="libpq URL of the target database")
    parser.add_argument("--orders", type=int, default=100_000, help=f"{MIN_ORDERS}..{MAX_ORDERS} (default 100000)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if not MIN_ORDERS <= args.orders <= MAX_ORDERS:
        parser.error(f"--orders must be between {MIN_ORDERS} and {MAX_ORDERS}")
    started = time.perf_counter()
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        install_schema(conn)
        counts = load(conn, args.orders, seed=args.seed)
    elapsed = time.perf_counter() - started
    for table in TABLES:
        print(f"{table:<12} {getattr(counts, table):>12,}")
    print(f"loaded in {elapsed:.1f}s")


# --- loading ---------------------------------------------------------------------------------


def _prefetch(pool: ThreadPoolExecutor, items: Iterator[_T]) -> Iterator[_T]:
    """Iterate ``items`` one step ahead in ``pool`` so producing chunk k+1 overlaps the COPY of chunk k.

    The pool must have a single worker: a generator cannot be advanced from two threads at once.
    """
    pending = pool.submit(_step, items)
    while (step := pending.result()) is not None:
        pending = pool.submit(_step, items)
        yield step[0]


def _step(items: Iterator[_T]) -> tuple[_T] | None:
    """The next item wrapped in a 1-tuple, or None when exhausted (None may itself be an item)."""
    for item in items:
        return (item,)
    return None


_FOREIGN_KEYS_QUERY = """
SELECT n.nspname, r.relname, c.conname, pg_get_constraintdef(c.oid), obj_description(c.oid, 'pg_constraint')
FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
WHERE c.contype = 'f' AND c.conrelid = ANY(%s::regclass[])
ORDER BY c.oid
"""
# Indexes not owned by a primary key, unique or exclusion constraint (those stay in place).
_SECONDARY_INDEXES_QUERY = """
SELECT n.nspname, x.relname, pg_get_indexdef(i.indexrelid), obj_description(i.indexrelid, 'pg_class')
FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_namespace n ON n.oid = x.relnamespace
WHERE i.indrelid = ANY(%s::regclass[])
  AND NOT EXISTS (
    SELECT FROM pg_constraint c
    WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))
ORDER BY i.indexrelid
"""
#: Index builds after the load sort whole tables (20M entries at 10M orders); 64MB would spill to disk.
_LOAD_MAINTENANCE_WORK_MEM = "512MB"


@contextlib.contextmanager
def _deferred_indexes_and_foreign_keys(cur: psycopg.Cursor[TupleRow]) -> Iterator[None]:
    """Drop the demo tables' foreign keys and secondary indexes, then recreate them as they were.

    Definitions and comments are read back from the catalog rather than repeated here, so
    changes to ``schema.sql`` carry over. Checking a foreign key once with a join and building
    an index in one sort beat per-row trigger checks and index inserts by a wide margin.
    If the body raises, nothing is recreated: the enclosing transaction rolls the drops back.
    """
    tables = list(TABLES)
    foreign_keys = cur.execute(_FOREIGN_KEYS_QUERY, (tables,)).fetchall()
    indexes = cur.execute(_SECONDARY_INDEXES_QUERY, (tables,)).fetchall()
    for schema, table, name, _definition, _comment in foreign_keys:
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(schema, table), sql.Identifier(name))
        )
    for schema, name, _definition, _comment in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
    yield
    row = cur.execute("SELECT current_setting('maintenance_work_mem')").fetchone()
    previous_mem = row[0] if row else None
    cur.execute("SELECT set_config('maintenance_work_mem', %s, true)", (_LOAD_MAINTENANCE_WORK_MEM,))
    for schema, name, definition, comment in indexes:
        cur.execute(definition)
        if comment is not None:
            cur.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(sql.Identifier(schema, name), sql.Literal(comment)))
    if previous_mem is not None:
        cur.execute("SELECT set_config('maintenance_work_mem', %s, true)", (previous_mem,))
    for schema, table, name, definition, comment in foreign_keys:
        qualified = sql.Identifier(schema, table)
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(qualified, sql.Identifier(name)) + sql.SQL(definition)
        )
        if comment is not None:
            cur.execute(
                sql.SQL("COMMENT ON CONSTRAINT {} ON {} IS {}").format(
                    sql.Identifier(name), qualified, sql.Literal(comment)
                )
            )


def _copy(cur: psycopg.Cursor[TupleRow], table: str, chunk: pa.Buffer) -> None:
    """COPY one encoded chunk; column order is the order of the generated pyarrow table."""
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS[table]))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(sql.Identifier(table), columns)
    with cur.copy(statement) as copy:
        copy.write(memoryview(chunk))


if __name__ == "__main__":
    main()
