"""Key changes, TRUNCATE, DDL and new tables end to end: each sink's events fold to the table.

Real PostgreSQL, NATS, chDB, ClickHouse and OpenSearch. The fold (``tests/support/fold.py``)
is the documented way to read current rows from any sink: by entity, in ``seq`` order,
insert/update/snapshot set a row, delete removes it, truncate removes all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.fold import fold, table_rows
from tests.support.pipeline import Pipeline, opensearch_url

SINKS = ("chdb", "clickhouse", "search")


@pytest.fixture()
def pipeline(scratch_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        conn.execute('CREATE TABLE "Key Moves" (n int PRIMARY KEY, o text, r int)')
        conn.execute('CREATE TABLE pairs (a text, "B" int, v jsonb, PRIMARY KEY (a, "B"))')
        conn.execute("CREATE TABLE wiped (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), v int)")
    running = Pipeline(scratch_url, tmp_path, f"t{time.monotonic_ns() % 10**12}", SINKS, opensearch=opensearch_url())
    running.cli("install")
    yield running
    running.cleanup()


def test_key_updates_truncate_and_ddl_reach_every_sink_as_the_table(pipeline: Pipeline) -> None:
    pipeline.start_all()
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        conn.execute("""INSERT INTO "Key Moves" SELECT g, 'row ' || g, g FROM generate_series(1, 50) AS g""")
        conn.execute('UPDATE "Key Moves" SET n = n + 100 WHERE n % 3 = 0')  # key changes
        conn.execute('UPDATE "Key Moves" SET n = -n, r = r + 1 WHERE n <= 20')  # keys and values at once
        conn.execute("INSERT INTO pairs SELECT 'k' || g, g, jsonb_build_object('g', g) FROM generate_series(1, 20) g")
        conn.execute("""UPDATE pairs SET "B" = "B" * 10 WHERE "B" % 2 = 0""")  # composite key changes
        conn.execute("INSERT INTO wiped (v) SELECT g FROM generate_series(1, 30) AS g")
        conn.execute("TRUNCATE wiped")
        conn.execute("INSERT INTO wiped (v) VALUES (7)")
        conn.execute('ALTER TABLE "Key Moves" RENAME COLUMN o TO label')  # re-images the entity
        conn.execute('UPDATE "Key Moves" SET label = label || \'!\' WHERE n < 10')
        conn.execute("CREATE TABLE later (id bigint PRIMARY KEY, v text)")  # captured by itself
        conn.execute("INSERT INTO later SELECT g, 'v' || g FROM generate_series(1, 10) AS g")
        conn.execute("DELETE FROM later WHERE id > 5")
        ops = {op for (op,) in conn.execute("SELECT DISTINCT op FROM quiver.outbox")}
        assert {"insert", "update", "delete", "truncate", "snapshot"} <= ops, ops
        tables = {"Key Moves": table_rows(conn, "public", "Key Moves"), "pairs": table_rows(conn, "public", "pairs"),
                  "wiped": table_rows(conn, "public", "wiped"), "later": table_rows(conn, "public", "later")}
    pipeline.wait_drained()
    pipeline.check()  # conservation: every event once in every sink, payloads equal
    assert len(tables["wiped"]) == 1 and len(tables["later"]) == 5
    for sink in SINKS:
        events = pipeline.sink_rows(sink)
        for entity, rows in tables.items():
            folded = fold((e[1], e[3], e[4], e[6]) for e in events if e[2] == entity)
            assert folded == rows, f"{sink}: the fold of {entity!r} differs from the table"
