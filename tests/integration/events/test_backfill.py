"""``quiver events backfill`` against the real PostgreSQL (and, end to end, the real sinks).

The claim: after a backfill, the fold of an entity's outbox events (``tests/support/fold.py``:
by ``seq``, insert/update/snapshot set a row, delete removes it, truncate removes all) equals
the table row for row, even while other transactions change the table during the backfill, and
even when the backfill is killed and resumed. The 1M-row proof folds in SQL (``FOLD_DIFF``, the
same rules; ~11 s here against ~25 s in Python); the smaller tests fold in Python, and
``test_the_sql_fold_is_the_python_fold`` checks that both folds agree.

Why it holds is shown step by step by the two ordering tests: a writer that is ahead of a chunk
is waited for (and without ``FOR SHARE`` the fold is wrong: the negative control), and a writer
behind a chunk waits for it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from quiver.events import backfill, capture
from quiver.schema.model import Entity
from tests.conftest import Changes, wait_for
from tests.support.fold import canonical, fold, outbox_events, table_rows
from tests.support.pipeline import ROOT, Pipeline, opensearch_url

# The fold of an entity's outbox events against the table, as multisets of row jsonb:
# (folded rows not in the table, table rows not in the fold, table rows).
FOLD_DIFF = """
WITH events AS (
    SELECT o.seq, o.entity_id, o.op, o.data FROM quiver.outbox AS o
    WHERE o.entity = {entity} AND o.seq > coalesce(
        (SELECT max(z.seq) FROM quiver.outbox AS z WHERE z.entity = {entity} AND z.op = 'truncate'), 0)),
folded AS (
    SELECT l.data FROM (SELECT DISTINCT ON (e.entity_id) e.op, e.data FROM events AS e
                        ORDER BY e.entity_id, e.seq DESC) AS l
    WHERE l.op <> 'delete'),
current AS (SELECT to_jsonb(t.*) AS data FROM {table} AS t)
SELECT (SELECT count(*) FROM (SELECT data FROM folded EXCEPT ALL SELECT data FROM current) AS a),
       (SELECT count(*) FROM (SELECT data FROM current EXCEPT ALL SELECT data FROM folded) AS b),
       (SELECT count(*) FROM current)
"""


def fold_diff(conn: psycopg.Connection[Any], table: str) -> tuple[int, int, int]:
    conn.execute("SET work_mem = '256MB'")
    row = conn.execute(sql.SQL(FOLD_DIFF).format(entity=sql.Literal(table), table=sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def capture_table(conn: psycopg.Connection[Any], name: str) -> None:
    capture.install(conn, [Entity("public", name, name.title(), name, "", False)])


def python_fold(conn: psycopg.Connection[Any], table: str) -> list[str]:
    return fold(outbox_events(conn, table))


def snapshots(conn: psycopg.Connection[Any], entity: str) -> list[tuple[int, str]]:
    rows = conn.execute("SELECT seq, entity_id FROM quiver.outbox WHERE entity = %s AND op = 'snapshot' ORDER BY seq",
                        (entity,)).fetchall()
    return [(int(seq), str(key)) for seq, key in rows]


def backfill_backends(conn: psycopg.Connection[Any], wait_event: str | None = None) -> int:
    """Backfill connections waiting on a lock (of kind ``wait_event`` when given)."""
    row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                       "AND wait_event_type = 'Lock' AND (%s::text IS NULL OR wait_event = %s)",
                       (backfill.APPLICATION_NAME, wait_event, wait_event)).fetchone()
    return int(row[0]) if row else 0


def waits_on_a_lock(conn: psycopg.Connection[Any], pid: int) -> bool:
    row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


class Writer(threading.Thread):
    """Random changes to ``big`` in short transactions until stopped: updates (some moving rows to other
    pages, some of many rows), key changes, inserts, deletes; a third aimed at the pages of the chunks
    the backfill is writing at that moment. Deadlocks with a chunk roll the transaction back (counted)."""

    def __init__(self, url: str, table: str, seed: int) -> None:
        super().__init__(name="writer", daemon=True)
        self.url, self.table, self.rng = url, sql.Identifier(table), random.Random(seed)
        self.commits = self.rollbacks = 0
        self.next_id = 10_000_000
        self.error: BaseException | None = None
        self.finish = threading.Event()
        self.hot: list[tuple[int, int]] = []

    def run(self) -> None:
        try:
            with psycopg.connect(self.url) as conn:
                while not self.finish.is_set():
                    if self.commits % 10 == 0:
                        self.hot = self._in_flight(conn)
                    try:
                        for _ in range(self.rng.randint(1, 3)):
                            self._statement(conn)
                        conn.commit()
                        self.commits += 1
                    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                        conn.rollback()
                        self.rollbacks += 1
        except BaseException as error:  # noqa: BLE001 - reported by stop()
            self.error = error

    def _in_flight(self, conn: psycopg.Connection[Any]) -> list[tuple[int, int]]:
        try:
            rows = conn.execute("SELECT lo_page, hi_page FROM quiver.backfill_chunks WHERE done_at IS NULL "
                                "ORDER BY run_id DESC, relid, scan_relid, lo_page LIMIT 2").fetchall()
        except psycopg.errors.UndefinedTable:  # no backfill has started yet
            rows = []
        conn.rollback()
        return [(int(lo), int(hi)) for lo, hi in rows]

    def _statement(self, conn: psycopg.Connection[Any]) -> None:
        rng, table = self.rng, self.table
        pick = rng.random()
        some = rng.randint(1, 1_000_000)
        if pick < 0.35 and self.hot:  # a row of a chunk being written now
            lo, hi = rng.choice(self.hot)
            tid = f"({rng.randrange(lo, hi)},{rng.randint(1, 120)})"
            query = ("UPDATE {t} SET v = v + 1, label = label || '+' WHERE ctid = %s::tid" if rng.random() < 0.8
                     else "DELETE FROM {t} WHERE ctid = %s::tid")
            conn.execute(sql.SQL(query).format(t=table), (tid,))
        elif pick < 0.55:
            conn.execute(sql.SQL("UPDATE {t} SET v = v + 1, tags = array_append(tags, 'w') WHERE id = %s").format(
                t=table), (some,))
        elif pick < 0.65:  # many rows, locked in key order: deadlocks with a chunk happen
            conn.execute(sql.SQL("UPDATE {t} SET v = -v WHERE id BETWEEN %s AND %s").format(t=table),
                         (some, some + 30))
        elif pick < 0.75:  # a key change: a delete of the old key and an insert of the new one
            self.next_id += 1
            conn.execute(sql.SQL("UPDATE {t} SET id = %s WHERE id = %s").format(t=table), (self.next_id, some))
        elif pick < 0.9:
            self.next_id += 1
            conn.execute(sql.SQL("INSERT INTO {t} VALUES (%s, 7, 'new', '{{}}')").format(t=table), (self.next_id,))
        else:
            conn.execute(sql.SQL("DELETE FROM {t} WHERE id = %s").format(t=table), (some,))

    def stop(self) -> None:
        self.finish.set()
        self.join(60)
        assert not self.is_alive(), "the writer did not stop"
        if self.error is not None:
            raise AssertionError(f"the writer failed: {self.error!r}") from self.error


def make_big(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL, label text, tags text[])")
        conn.execute("INSERT INTO big SELECT g, g %% 1000, 'row ' || g, ARRAY['t' || g %% 7] "
                     "FROM generate_series(1, %s) AS g", (rows,))
        capture_table(conn, "big")


@pytest.mark.slow
def test_backfill_of_1m_rows_under_concurrent_writes_folds_to_the_table(scratch_url: str) -> None:
    started = time.monotonic()
    make_big(scratch_url, 1_000_000)
    generated = time.monotonic() - started
    writer = Writer(scratch_url, "big", seed=11)
    writer.start()
    wait_for(lambda: writer.commits >= 20 or writer.error is not None, 60, "the writer committed nothing")
    seen = {"chunks": 0, "commits": writer.commits}
    lock = threading.Lock()

    def interleave(rows: int) -> None:
        """Every 4th chunk waits until the writer committed more: writes are spread over the whole backfill."""
        with lock:
            seen["chunks"] += 1
            if seen["chunks"] % 4:
                return
            target = seen["commits"] + 5
        wait_for(lambda: writer.commits >= target or writer.error is not None, 60, "the writer stalled")
        with lock:
            seen["commits"] = writer.commits

    before = writer.commits
    result = backfill.backfill(scratch_url, ["big"], workers=2, chunk_pages=128, on_chunk=interleave)
    during = writer.commits - before
    writer.stop()
    assert result.run.chunks == result.chunks > 0 and not result.run.resumed
    assert during >= 5, (during, result.chunks)
    folding = time.monotonic()
    with psycopg.connect(scratch_url) as conn:
        extra, missing, rows = fold_diff(conn, "big")
        ops: dict[str, int] = dict(conn.execute(
            "SELECT op, count(*) FROM quiver.outbox WHERE entity = 'big' GROUP BY op").fetchall())
        chunks = conn.execute("SELECT count(*), count(done_at), sum(rows) FROM quiver.backfill_chunks "
                              "WHERE run_id = %s", (result.run.run_id,)).fetchone()
    assert (extra, missing) == (0, 0), f"fold vs table: {extra} rows only in the fold, {missing} only in the table"
    assert chunks == (result.chunks, result.chunks, result.rows), chunks
    assert ops["snapshot"] == result.rows and {"update", "insert", "delete"} <= set(ops), ops
    print(f"\n{rows:,} rows; generated and captured in {generated:.1f}s; backfill {result.rows:,} snapshot events "
          f"in {result.seconds:.1f}s ({result.rows_per_second:,.0f} rows/s, 2 workers, {result.chunks} chunks, "
          f"{result.retries} chunk retries) while the writer committed {during} transactions "
          f"({writer.rollbacks} rolled back by deadlocks); live events {ops}; "
          f"SQL fold {time.monotonic() - folding:.1f}s")


def test_the_sql_fold_is_the_python_fold(scratch_url: str) -> None:
    make_big(scratch_url, 3_000)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        conn.execute("UPDATE big SET v = v + 1 WHERE id % 3 = 0")
        conn.execute("UPDATE big SET id = id + 100000 WHERE id % 5 = 0")
        conn.execute("DELETE FROM big WHERE id % 7 = 0")
        backfill.backfill(scratch_url, ["big"], chunk_pages=4)
        assert python_fold(conn, "big") == table_rows(conn, "public", "big")
        assert fold_diff(conn, "big") == (0, 0, len(table_rows(conn, "public", "big")))
        conn.execute("UPDATE big SET v = 0 WHERE id = 1")
        conn.execute("ALTER TABLE big DISABLE TRIGGER quiver_capture_update")  # a change without its event
        conn.execute("UPDATE big SET v = 1 WHERE id = 2")
        assert fold_diff(conn, "big")[:2] == (1, 1)  # the SQL fold sees the difference
        assert python_fold(conn, "big") != table_rows(conn, "public", "big")


def done_chunks(conn: psycopg.Connection[Any]) -> int:
    if conn.execute("SELECT to_regclass('quiver.backfill_chunks')").fetchone() == (None,):
        return 0  # the backfill has not created its tables yet
    row = conn.execute("SELECT count(done_at) FROM quiver.backfill_chunks").fetchone()
    return int(row[0]) if row else 0


def run_cli(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "QUIVER_DATABASE_URL": url}
    return subprocess.Popen([sys.executable, "-m", "quiver.cli", "events", "backfill", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# Blocks the chunk that reaches id 60000 while the test holds advisory lock 4242 (the operator's SQL may
# call any function): the process is surely mid-run when it is killed, inside a chunk that already wrote rows.
BLOCKING_WHERE = "CASE WHEN t.id = 60000 THEN EXISTS (SELECT FROM pg_advisory_xact_lock_shared(4242 + 0 * t.id)) " \
                 "ELSE true END"


def test_killed_backfill_resumes_and_no_chunk_is_lost_or_doubled(scratch_url: str) -> None:
    make_big(scratch_url, 100_000)
    args = ("big", "--workers", "2", "--chunk-pages", "16", "--where", BLOCKING_WHERE)
    with psycopg.connect(scratch_url, autocommit=True) as holder, psycopg.connect(scratch_url, autocommit=True) as conn:
        holder.execute("SELECT pg_advisory_lock(4242)")
        process = run_cli(scratch_url, *args)

        def mid_run() -> bool:
            assert process.poll() is None, process.communicate()
            return done_chunks(conn) >= 3 and backfill_backends(conn, "advisory") == 1

        wait_for(mid_run, 120, "the backfill never reached the blocked chunk")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        total, done = conn.execute("SELECT count(*), count(done_at) FROM quiver.backfill_chunks").fetchone() or (0, 0)
        before: dict[int, Any] = dict(conn.execute(
            "SELECT lo_page, done_at FROM quiver.backfill_chunks WHERE done_at IS NOT NULL").fetchall())
        assert 3 <= done < total, (done, total)  # the blocked chunk is not done
        holder.execute("SELECT pg_advisory_unlock(4242)")  # the orphaned chunk finishes its statement, then aborts
        resumed = run_cli(scratch_url, *args)
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        # (A chunk whose COMMIT was sent just before the kill may have committed since: at least `done`.)
        assert "resuming run 1: " in out and f" of {total:,} chunks already done" in out, out
        runs = conn.execute("SELECT run_id, state FROM quiver.backfill_runs").fetchall()
        chunks = conn.execute("SELECT lo_page, done_at, rows FROM quiver.backfill_chunks ORDER BY lo_page").fetchall()
        events = conn.execute("SELECT count(*), count(DISTINCT entity_id) FROM quiver.outbox "
                              "WHERE op = 'snapshot'").fetchone()
        assert runs == [(1, "done")]
        assert len(chunks) == total and all(at is not None for _, at, _ in chunks)
        assert all(before[lo] == at for lo, at, _ in chunks if lo in before), "a chunk done before the kill was redone"
        # Nothing doubled: the killed chunk's rows rolled back; each row once; the chunks' counts add up.
        assert events == (100_000, 100_000) and sum(rows for _, _, rows in chunks) == 100_000, events
        assert fold_diff(conn, "big") == (0, 0, 100_000)
    print(f"\nkilled with {done} of {total} chunks done; resumed: {out.strip()}")


def test_where_backfills_only_matching_rows(scratch_url: str) -> None:
    make_big(scratch_url, 20_000)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        with pytest.raises(backfill.BackfillError, match="--where"):
            backfill.backfill(scratch_url, ["big"], where="t.nope = 1")
        with pytest.raises(backfill.BackfillError, match="not captured: nope"):
            backfill.backfill(scratch_url, ["nope"])
        assert conn.execute("SELECT count(*) FROM quiver.backfill_runs").fetchone() == (0,)
        result = backfill.backfill(scratch_url, where="t.id % 10 = 0 AND t.label LIKE 'row %'", chunk_pages=8)
        assert result.rows == 2_000 and result.run.entities == ("big",)
        keys = {key for _, key in snapshots(conn, "big")}
        assert keys == {str(i) for i in range(10, 20_001, 10)}
        matching = sorted(canonical(r) for (r,) in conn.execute("SELECT to_jsonb(t.*) FROM big t WHERE id % 10 = 0"))
        assert python_fold(conn, "big") == matching
        # No filter: another run, every row; paced (the pace only ever waits, so it is a lower bound).
        again = backfill.backfill(scratch_url, ["big"], chunk_pages=64, max_rate=20_000)
        assert not again.run.resumed and again.run.run_id != result.run.run_id and again.rows == 20_000
        assert again.seconds >= 1.0
        assert python_fold(conn, "big") == table_rows(conn, "public", "big")


def test_a_table_dropped_after_planning_is_skipped(scratch_url: str) -> None:
    make_big(scratch_url, 2_000)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        run = backfill.start(conn, ["big"], chunk_pages=4)
        conn.execute("DROP TABLE big")
        result = backfill.run_chunks(scratch_url, run, workers=2)
        assert result.rows == 0 and result.chunks == run.chunks > 0
        assert conn.execute("SELECT state FROM quiver.backfill_runs").fetchone() == ("done",)


def make_small(conn: psycopg.Connection[Any], name: str, rows: int) -> None:
    """A table whose pages are full (fillfactor 100): an updated row moves to another page."""
    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v text) WITH (fillfactor = 100)").format(
        sql.Identifier(name)))
    conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'old' FROM generate_series(1, %s) AS g").format(
        sql.Identifier(name)), (rows,))
    capture_table(conn, name)


def write_ahead(url: str, name: str) -> psycopg.Connection[Any]:
    """A transaction, left open, that changed rows 1 (to another page), 2 (its key) and 3 (deleted)."""
    writer = psycopg.connect(url)
    table = sql.Identifier(name)
    writer.execute(sql.SQL("UPDATE {} SET v = 'new' WHERE id = 1").format(table))
    writer.execute(sql.SQL("UPDATE {} SET id = 1000 WHERE id = 2").format(table))
    writer.execute(sql.SQL("DELETE FROM {} WHERE id = 3").format(table))
    moved = writer.execute(sql.SQL("SELECT ctid::text FROM {} WHERE id = 1").format(table)).fetchone()
    assert moved is not None and not moved[0].startswith("(0,"), moved
    return writer


def test_a_chunk_waits_for_a_writer_ahead_of_it_and_reads_its_rows_latest(scratch_url: str) -> None:
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        make_small(conn, "ahead", 500)
        writer = write_ahead(scratch_url, "ahead")
        done: list[backfill.Result] = []
        thread = threading.Thread(target=lambda: done.append(backfill.backfill(scratch_url, ["ahead"], chunk_pages=1)))
        thread.start()
        wait_for(lambda: backfill_backends(conn) == 1, 30, "the chunk did not wait for the writer")
        writer.commit()
        writer.close()
        thread.join(60)
        assert done, "the backfill did not finish"
        assert python_fold(conn, "ahead") == table_rows(conn, "public", "ahead")
        [update] = conn.execute("SELECT seq FROM quiver.outbox WHERE entity = 'ahead' AND op = 'update'").fetchall()
        assert all(seq > update[0] for seq, key in snapshots(conn, "ahead") if key == "1")
        assert "3" not in {key for _, key in snapshots(conn, "ahead")}


def test_negative_control_without_for_share_the_fold_keeps_a_stale_row(scratch_url: str) -> None:
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        make_small(conn, "stale", 500)
        writer = write_ahead(scratch_url, "stale")
        pages = conn.execute("SELECT pg_relation_size('stale') / 8192").fetchone()
        assert pages is not None
        key = conn.execute("SELECT quiver.key_sql('stale'::regclass)").fetchone()
        assert key is not None
        conn.execute(backfill.chunk_statement(sql.SQL("public.stale"), "stale", key[0], 0, int(pages[0]), lock=False))
        writer.commit()
        writer.close()
        folded = python_fold(conn, "stale")
        rows = table_rows(conn, "public", "stale")
        assert folded != rows
        assert canonical({"id": 1, "v": "old"}) in folded and canonical({"id": 2, "v": "old"}) in folded


def test_a_writer_behind_a_chunk_waits_for_its_commit(scratch_url: str) -> None:
    with psycopg.connect(scratch_url, autocommit=True) as conn, psycopg.connect(scratch_url, autocommit=True) as hold:
        make_small(conn, "behind", 10)
        hold.execute("SELECT pg_advisory_lock(4243)")
        where = BLOCKING_WHERE.replace("60000", "2").replace("4242", "4243")
        done: list[backfill.Result] = []
        thread = threading.Thread(target=lambda: done.append(backfill.backfill(scratch_url, ["behind"], where=where)))
        thread.start()
        # The chunk locked row 1 and wrote its snapshot, and now waits at row 2.
        wait_for(lambda: backfill_backends(conn, "advisory") == 1, 30, "the chunk did not reach row 2")
        with psycopg.connect(scratch_url) as writer:
            pid = writer.info.backend_pid
            update = threading.Thread(target=lambda: writer.execute("UPDATE behind SET v = 'after' WHERE id = 1"))
            update.start()
            wait_for(lambda: waits_on_a_lock(conn, pid), 30, "the writer did not wait for the chunk")
            hold.execute("SELECT pg_advisory_unlock(4243)")
            thread.join(60)
            update.join(60)
            writer.commit()
        assert done, "the backfill did not finish"
        [(snapshot, _)] = [s for s in snapshots(conn, "behind") if s[1] == "1"]
        [(update_seq,)] = conn.execute("SELECT seq FROM quiver.outbox WHERE entity = 'behind' AND op = 'update'")
        assert update_seq > snapshot
        assert python_fold(conn, "behind") == table_rows(conn, "public", "behind")


def test_a_partitioned_table_is_read_partition_by_partition(scratch_url: str) -> None:
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE readings (id int, region text, v int, PRIMARY KEY (id, region)) "
                     "PARTITION BY LIST (region)")
        conn.execute("CREATE TABLE readings_eu PARTITION OF readings FOR VALUES IN ('eu')")
        conn.execute("CREATE TABLE readings_us PARTITION OF readings FOR VALUES IN ('us')")
        conn.execute("INSERT INTO readings SELECT g, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END, g "
                     "FROM generate_series(1, 5000) AS g")
        capture_table(conn, "readings")
        result = backfill.backfill(scratch_url, chunk_pages=4)
        heaps = conn.execute("SELECT count(DISTINCT scan_relid) FROM quiver.backfill_chunks").fetchone()
        assert result.rows == 5000 and heaps == (2,)
        assert python_fold(conn, "readings") == table_rows(conn, "public", "readings")


SINKS = ("chdb", "clickhouse", "search")


@pytest.fixture()
def pipeline(scratch_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(scratch_url, tmp_path, f"t{time.monotonic_ns() % 10**12}", SINKS, opensearch=opensearch_url())
    running.cli("install")  # the demo rows exist already: without a backfill the sinks never see them
    yield running
    running.cleanup()


def test_backfilled_rows_reach_every_sink_and_fold_to_the_tables(pipeline: Pipeline) -> None:
    pipeline.start_all()
    with Changes(pipeline.database_url, seed=5, per_round=50, pace=0.2) as load:
        wait_for(lambda: load.rounds >= 1, 60, "no live change committed")
        result = pipeline.cli("backfill", "--workers", "2", "--chunk-pages", "4")
        load.stop(at_least=load.rounds + 1)
    pipeline.wait_drained()
    pipeline.check()  # conservation: every outbox event once in every sink, payloads equal
    with psycopg.connect(pipeline.database_url) as conn:
        tables = {name: table_rows(conn, "public", name) for name in ("customers", "orders", "order_items", "products")}
        backfilled = conn.execute("SELECT count(*) FROM quiver.outbox WHERE op = 'snapshot'").fetchone()
    assert backfilled is not None and backfilled[0] >= 3_000, (backfilled, result.stdout)
    for sink in SINKS:
        events = pipeline.sink_rows(sink)
        for entity, rows in tables.items():
            folded = fold((e[1], e[3], e[4], e[6]) for e in events if e[2] == entity)
            assert folded == rows, f"{sink}: the fold of {entity!r} differs from the table"
    print(f"\n{result.stdout.strip()}")
