"""A stream of realistic changes to the demo schema: what the event pipeline must carry.

Used by the demo, the conservation tests and the events benchmark. It mixes single-row
and multi-row statements, COPY, updates that change several columns, deletes, and
transactions that commit out of ``seq`` order (the relay's classic trap).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass
class ChangeStats:
    statements: int = 0
    out_of_order_commits: int = 0


def copy_customers(conn: psycopg.Connection[Any], n: int, tag: str) -> None:
    """COPY ``n`` new customers (one event each)."""
    with conn.cursor().copy("COPY customers (email, name, profile) FROM STDIN") as copy:
        for i in range(n):
            copy.write_row((f"{tag}-{i}@copy.example", f"Copied {tag} {i}", '{"via": "copy"}'))


def mixed_changes(url: str, rounds: int, *, seed: int = 7, per_round: int = 1000) -> ChangeStats:
    """About ``rounds * per_round * 5`` events: inserts (multi-row and COPY), updates, deletes."""
    rng = random.Random(seed)
    stats = ChangeStats()
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE customers ALTER COLUMN uuid SET DEFAULT gen_random_uuid()")
        conn.commit()
        for r in range(rounds):
            tag = f"r{seed}-{r}"
            conn.execute("SET LOCAL quiver.actor = 'workload'")
            conn.execute(
                "INSERT INTO customers (email, name, phone, profile) SELECT 'm' || g || %s, 'Multi ' || g, "
                "CASE WHEN g %% 3 = 0 THEN NULL ELSE '+1-555-' || g END, jsonb_build_object('round', %s::int) "
                "FROM generate_series(1, %s) AS g", (f"-{tag}@multi.example", r, per_round))
            copy_customers(conn, per_round, tag)
            conn.commit()
            conn.execute("SELECT set_config('quiver.tenant_id', %s, true)", (f"tenant-{r % 3}",))
            low = rng.randint(1, 500)
            conn.execute("UPDATE customers SET is_active = NOT is_active, name = name || '.' "
                         "WHERE id IN (SELECT id FROM customers ORDER BY id DESC LIMIT %s)", (per_round,))
            conn.execute("UPDATE orders SET note = %s, status = 'shipped' WHERE id >= %s AND id < %s",
                         (f"round {r} \"quoted\" é", low, low + 200))
            conn.commit()
            conn.execute("DELETE FROM customers WHERE id IN (SELECT c.id FROM customers c WHERE c.email LIKE "
                         "%s AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id) LIMIT %s)",
                         (f"%-{tag}@multi.example", per_round // 2))
            conn.commit()
            for i in range(20):  # single-row statements, each its own transaction
                conn.execute("UPDATE products SET in_stock = NOT in_stock WHERE id = %s", (1 + (r * 20 + i) % 50,))
                conn.commit()
            stats.statements += 26
            stats.out_of_order_commits += out_of_order_commit(url, tag)
    return stats


def out_of_order_commit(url: str, tag: str) -> int:
    """Transaction A writes first (lower seq) but commits after B (higher seq) has committed."""
    with psycopg.connect(url) as first, psycopg.connect(url) as second:
        first.execute("INSERT INTO customers (email, name) VALUES (%s, 'Late committer')", (f"late-{tag}@x",))
        second.execute("INSERT INTO customers (email, name) VALUES (%s, 'Early committer')", (f"early-{tag}@x",))
        second.commit()
        first.commit()
    return 1


def concurrent_updates(url: str, threads: int, statements: int) -> None:
    """Small transactions from several connections at once (commits interleave freely)."""
    def work(index: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(statements):
                conn.execute("UPDATE orders SET total = total + 0.01 WHERE id = %s", (1 + (index * 997 + i) % 1000,))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
