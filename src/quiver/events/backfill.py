"""Backfill: every existing row of captured tables as a ``snapshot`` event, merged with the live stream.

Capture only sees changes made after ``install``; the sinks of a table that already had rows
need those rows too. A backfill reads each table in chunks of heap pages (``ctid`` ranges, a
TID range scan: any key type, no index needed), each chunk ONE statement::

    INSERT INTO quiver.outbox (entity, entity_id, op, data)
    SELECT <entity>, <key over x.d>, 'snapshot', x.d
    FROM (SELECT to_jsonb(t.*) AS d FROM ONLY <table> AS t
          WHERE t.ctid >= '(lo,0)'::tid AND t.ctid < '(hi,0)'::tid [AND (<where>)] FOR SHARE OF t) AS x

in its own short READ COMMITTED transaction, which also marks the chunk done in
``quiver.backfill_chunks``. Why the events fold to the table's latest state (the fold takes
the last event of a key by ``seq``):

* a writer that changed a row and has not committed yet: ``FOR SHARE`` waits for it, then
  reads the row's latest version (or skips it if deleted or moved out of the chunk's range).
  The writer's events were written by its statement's trigger before it committed, so the
  snapshot's ``seq`` (taken as the row is inserted, after the wait) is higher;
* a writer that comes after the chunk locked the row waits for the chunk's commit, and its
  trigger runs after its statement: its event's ``seq`` is higher than the snapshot's;
* a row whose update moved it to another chunk's range has an update event carrying its
  whole image anyway (capture writes one for every updated row, changed or not); a row
  inserted later has its insert event;
* a rewrite of the table (VACUUM FULL, CLUSTER, a rewriting ALTER TABLE) moves every row
  without an event. Each chunk records the heap's file node when planned; a chunk that finds
  another (read after its lock, so no rewrite can follow until it commits) plans the new file
  whole and writes nothing itself. Rows read twice are harmless: a snapshot is the row's
  latest state.

The key expression (``quiver.key_sql``) and the entity name (``quiver.entity_of``) are the
live trigger's, read in the chunk's transaction after it locked the table (no DDL can commit
between), so ``entity_id`` equals the live events'. A kill loses nothing and doubles nothing:
a chunk's events and its progress row commit together; a rerun resumes the unfinished run
with the same tables and filter. Workers claim chunks with ``FOR UPDATE SKIP LOCKED``, so
several processes can share one run.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from quiver.events.capture import CHANNEL, OUTBOX, SCHEMA

RUNS = f"{SCHEMA}.backfill_runs"
CHUNKS = f"{SCHEMA}.backfill_chunks"
DEFAULT_CHUNK_PAGES = 128  # 1 MiB of heap: ~17k rows of a narrow table, ~0.15 s here
APPLICATION_NAME = "quiver-backfill"
_LOCK = 0x717569766572  # advisory lock around planning ("quiver")
MAX_RETRIES = 50

DDL = f"""
CREATE TABLE IF NOT EXISTS {RUNS} (
    run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relids      oid[]   NOT NULL,   -- the captured tables, sorted
    entities    text[]  NOT NULL,   -- their entity names when the run started
    where_sql   text,               -- the operator's filter over alias t (NULL: every row)
    chunk_pages integer NOT NULL,
    state       text    NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'abandoned')),
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);
CREATE TABLE IF NOT EXISTS {CHUNKS} (
    run_id     bigint NOT NULL REFERENCES {RUNS} ON DELETE CASCADE,
    relid      oid    NOT NULL,   -- the captured table: entity and key
    scan_relid oid    NOT NULL,   -- the heap read: the table itself or one leaf partition of it
    filenode   oid    NOT NULL,   -- that heap's file when the chunk was planned: a rewrite makes another
    lo_page    bigint NOT NULL,
    hi_page    bigint NOT NULL,   -- exclusive
    rows       bigint,            -- snapshot events the chunk wrote
    done_at    timestamptz,
    PRIMARY KEY (run_id, scan_relid, filenode, lo_page)
);
CREATE INDEX IF NOT EXISTS backfill_chunks_todo ON {CHUNKS} (run_id, relid, scan_relid, filenode, lo_page)
    WHERE done_at IS NULL;
"""

_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
              psycopg.errors.LockNotAvailable)


class BackfillError(Exception):
    """A backfill that cannot start: nothing captured, an unknown entity, a filter that does not parse."""


def plan_ranges(pages: int, chunk_pages: int) -> list[tuple[int, int]]:
    """The page ranges ``[lo, hi)`` covering ``pages`` heap pages, ``chunk_pages`` each (the last shorter)."""
    if chunk_pages < 1:
        raise ValueError("chunk_pages must be at least 1")
    return [(lo, min(lo + chunk_pages, pages)) for lo in range(0, max(pages, 0), chunk_pages)]


def chunk_statement(table: sql.Composable, entity: str, key_sql: str, lo: int, hi: int,
                    where: str | None = None, *, lock: bool = True) -> sql.Composed:
    """The chunk's one statement. ``key_sql`` is ``quiver.key_sql``'s expression over ``x.d``; ``where``
    the operator's own predicate over alias ``t``. Everything is inlined (no parameters): a ``%`` in the
    filter stays itself. ``lock=False`` exists only to show what ``FOR SHARE`` prevents."""
    condition = sql.SQL("t.ctid >= {lo}::tid AND t.ctid < {hi}::tid").format(
        lo=sql.Literal(f"({lo},0)"), hi=sql.Literal(f"({hi},0)"))
    if where is not None:
        condition = sql.SQL("{} AND ({})").format(condition, sql.SQL(where))
    return sql.SQL(
        "INSERT INTO {outbox} (entity, entity_id, op, data) "
        "SELECT {entity}, {key}, 'snapshot', x.d "
        "FROM (SELECT to_jsonb(t.*) AS d FROM ONLY {table} AS t WHERE {condition}{lock}) AS x"
    ).format(outbox=sql.SQL(OUTBOX), entity=sql.Literal(entity), key=sql.SQL(key_sql),
             table=table, condition=condition, lock=sql.SQL(" FOR SHARE OF t" if lock else ""))


@dataclass(frozen=True)
class Run:
    """A backfill run as recorded in ``quiver.backfill_runs``, and its chunks when this invocation began."""

    run_id: int
    entities: tuple[str, ...]
    where: str | None
    chunk_pages: int
    resumed: bool
    chunks: int
    chunks_done: int


@dataclass(frozen=True)
class Result:
    run: Run
    chunks: int  # chunks this invocation wrote
    rows: int  # snapshot events this invocation wrote
    retries: int  # chunk transactions rolled back (deadlock, serialization failure) and tried again
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def ensure_tables(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(DDL)


def captured(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Entity name → relid of every captured table that still exists."""
    if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.captured_tables",)).fetchone() in (None, (None,)):
        raise BackfillError("nothing is captured here: run `quiver events install` first")
    rows = conn.execute(f"SELECT {SCHEMA}.entity_of(relid), relid FROM {SCHEMA}.captured_tables "
                        f"WHERE {SCHEMA}.entity_of(relid) IS NOT NULL ORDER BY 1").fetchall()
    return {str(entity): int(relid) for entity, relid in rows}


def _heaps(conn: psycopg.Connection[Any], relid: int) -> list[tuple[int, int, int]]:
    """(scan relid, file node, pages) of each heap holding the table's rows: itself, or its leaf partitions."""
    rows = conn.execute(
        "SELECT c.oid, pg_relation_filenode(c.oid), pg_relation_size(c.oid) / current_setting('block_size')::bigint "
        "FROM pg_class AS c "
        "WHERE c.relkind = 'r' AND (c.oid = %(relid)s OR c.oid IN ("  # a plain table has no partition tree
        "    SELECT p.relid FROM pg_partition_tree(%(relid)s::regclass) AS p WHERE p.isleaf)) "
        "ORDER BY c.oid", {"relid": relid}).fetchall()
    return [(int(oid), int(node), int(pages)) for oid, node, pages in rows]


def _check_filter(conn: psycopg.Connection[Any], scan_relids: Sequence[int], where: str) -> None:
    for scan_relid in scan_relids:
        table = _table_name(conn, scan_relid)
        if table is None:
            continue
        try:
            with conn.transaction():
                conn.execute(sql.SQL("EXPLAIN SELECT 1 FROM ONLY {} AS t WHERE ({})").format(table, sql.SQL(where)))
        except psycopg.Error as error:
            raise BackfillError(f"--where {where!r}: {error.diag.message_primary or error}") from None


def _table_name(conn: psycopg.Connection[Any], relid: int) -> sql.Composed | None:
    """The table's qualified name; None when it no longer exists."""
    row = conn.execute("SELECT n.nspname, c.relname FROM pg_class AS c "
                       "JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = %s", (relid,)).fetchone()
    return None if row is None else sql.SQL("{}.{}").format(sql.Identifier(row[0]), sql.Identifier(row[1]))


def start(conn: psycopg.Connection[Any], entities: Sequence[str] = (), *, where: str | None = None,
          chunk_pages: int = DEFAULT_CHUNK_PAGES, resume: bool = True) -> Run:
    """The run to work on: the unfinished run of the same tables and filter (``resume``), or a new one
    with every chunk planned. ``entities`` empty means every captured table."""
    if chunk_pages < 1:
        raise BackfillError("--chunk-pages must be at least 1")
    known = captured(conn)
    unknown = sorted(set(entities) - set(known))
    if unknown:
        raise BackfillError(f"not captured: {', '.join(unknown)} (captured: {', '.join(known) or 'none'})")
    chosen = sorted(set(entities) or set(known))
    if not chosen:
        raise BackfillError("no captured table to backfill")
    relids = sorted(known[e] for e in chosen)
    ensure_tables(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        found = conn.execute(
            f"SELECT run_id, chunk_pages FROM {RUNS} WHERE state = 'running' AND relids = %s::oid[] "
            "AND where_sql IS NOT DISTINCT FROM %s ORDER BY run_id DESC LIMIT 1", (relids, where)).fetchone()
        if found is not None and not resume:
            conn.execute(f"UPDATE {RUNS} SET state = 'abandoned', finished_at = clock_timestamp() "
                         "WHERE state = 'running' AND relids = %s::oid[] AND where_sql IS NOT DISTINCT FROM %s",
                         (relids, where))
            found = None
        if found is not None:
            run_id, chunk_pages = int(found[0]), int(found[1])
        else:
            for relid in relids:  # no rewrite between reading a heap's file node and its size
                table = _table_name(conn, relid)
                if table is not None:
                    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(table))
            heaps = {relid: _heaps(conn, relid) for relid in relids}
            if where is not None:
                _check_filter(conn, [scan for hs in heaps.values() for scan, _, _ in hs], where)
            row = conn.execute(f"INSERT INTO {RUNS} (relids, entities, where_sql, chunk_pages) "
                               "VALUES (%s::oid[], %s, %s, %s) RETURNING run_id",
                               (relids, chosen, where, chunk_pages)).fetchone()
            assert row is not None
            run_id = int(row[0])
            for relid, hs in heaps.items():
                for scan, node, pages in hs:
                    _plan(conn, run_id, relid, scan, node, pages, chunk_pages)
        total, done = conn.execute(f"SELECT count(*), count(done_at) FROM {CHUNKS} WHERE run_id = %s",
                                   (run_id,)).fetchone() or (0, 0)
    return Run(run_id, tuple(chosen), where, chunk_pages, found is not None, int(total), int(done))


def _plan(conn: psycopg.Connection[Any], run_id: int, relid: int, scan_relid: int, filenode: int, pages: int,
          chunk_pages: int) -> None:
    """The chunks covering ``pages`` pages of one heap file (those already planned stay as they are)."""
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {CHUNKS} (run_id, relid, scan_relid, filenode, lo_page, hi_page) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(run_id, relid, scan_relid, filenode, lo, hi) for lo, hi in plan_ranges(pages, chunk_pages)])


_CLAIM = (f"SELECT relid, scan_relid, filenode, lo_page, hi_page FROM {CHUNKS} WHERE run_id = %s "
          "AND done_at IS NULL ORDER BY relid, scan_relid, filenode, lo_page LIMIT 1 FOR UPDATE")


class _Pace:
    """At most ``rate`` rows per second over all workers (None: as fast as PostgreSQL goes), so that the
    relay, which publishes in ``seq`` order, keeps up and live events do not queue behind a backlog."""

    def __init__(self, rate: float | None) -> None:
        self.rate, self.rows, self.started, self.lock = rate, 0, time.monotonic(), threading.Lock()

    def delay(self, rows: int) -> float:
        """Seconds to wait after writing ``rows`` more, for the rows written so far to keep to the rate."""
        if not self.rate:
            return 0.0
        with self.lock:
            self.rows += rows
            due = self.started + self.rows / self.rate
        return max(0.0, due - time.monotonic())

    def after(self, rows: int, stop: threading.Event) -> None:
        delay = self.delay(rows)
        if delay:
            stop.wait(delay)  # outside any transaction: no lock is held meanwhile


class _Worker:
    """One connection writing chunks until none is left (or ``stop`` is set)."""

    def __init__(self, url: str, run: Run, stop: threading.Event, on_chunk: Callable[[int], None],
                 pace: _Pace) -> None:
        self.url, self.run, self.stop, self.on_chunk, self.pace = url, run, stop, on_chunk, pace
        self.chunks = self.rows = self.retries = 0
        self.error: BaseException | None = None

    def __call__(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True, application_name=APPLICATION_NAME) as conn:
                conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
                while not self.stop.is_set() and self._one(conn):
                    pass
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self.error = error
            self.stop.set()

    def _one(self, conn: psycopg.Connection[Any]) -> bool:
        """Write one chunk; False when every chunk of the run is done."""
        attempt = 0
        while True:
            try:
                with conn.transaction():
                    # Chunks other workers hold are skipped; when only those are left, wait for them
                    # (one may belong to a killed process whose transaction is about to roll back).
                    claimed = (conn.execute(_CLAIM + " SKIP LOCKED", (self.run.run_id,)).fetchone()
                               or conn.execute(_CLAIM, (self.run.run_id,)).fetchone())
                    if claimed is None:
                        return False
                    relid, scan_relid, filenode, lo, hi = (int(v) for v in claimed)
                    rows = self._write(conn, relid, scan_relid, filenode, lo, hi)
                    conn.execute(f"UPDATE {CHUNKS} SET rows = %s, done_at = clock_timestamp() "
                                 "WHERE run_id = %s AND scan_relid = %s AND filenode = %s AND lo_page = %s",
                                 (rows, self.run.run_id, scan_relid, filenode, lo))
                    if rows:
                        conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
                self.chunks += 1
                self.rows += rows
                self.on_chunk(rows)
                self.pace.after(rows, self.stop)
                return True
            except _RETRYABLE:
                attempt += 1
                self.retries += 1
                if attempt > MAX_RETRIES:
                    raise
                time.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0))

    def _write(self, conn: psycopg.Connection[Any], relid: int, scan_relid: int, filenode: int, lo: int,
               hi: int) -> int:
        table = _table_name(conn, scan_relid)
        if table is None:
            return 0  # dropped meanwhile: its rows are gone (capture wrote a truncate event)
        # The lock FOR SHARE takes anyway, taken first: no DDL changes the key between reading it and using it.
        try:
            with conn.transaction():
                conn.execute(sql.SQL("LOCK TABLE ONLY {} IN ROW SHARE MODE").format(table))
        except psycopg.errors.UndefinedTable:
            return 0  # dropped between the two statements
        heap = conn.execute("SELECT pg_relation_filenode(%s), pg_relation_size(%s) / "
                            "current_setting('block_size')::bigint", (scan_relid, scan_relid)).fetchone()
        if heap is not None and heap[0] is not None and int(heap[0]) != filenode:
            # Rewritten since planned (VACUUM FULL, CLUSTER, a rewriting ALTER TABLE, TRUNCATE): every row
            # has a new place, some in pages already read. Plan the new file whole; this chunk is void.
            _plan(conn, self.run.run_id, relid, scan_relid, int(heap[0]), int(heap[1]), self.run.chunk_pages)
            return 0
        row = conn.execute(f"SELECT {SCHEMA}.entity_of(%s), {SCHEMA}.key_sql(%s)", (relid, relid)).fetchone()
        if row is None or row[0] is None:
            return 0
        entity, key_sql = str(row[0]), str(row[1])
        cursor = conn.execute(chunk_statement(table, entity, key_sql, lo, hi, self.run.where))
        return max(cursor.rowcount, 0)


def run_chunks(url: str, run: Run, *, workers: int = 1, max_rate: float | None = None,
               on_chunk: Callable[[int], None] = lambda rows: None) -> Result:
    """Write the run's unfinished chunks with ``workers`` connections (at most ``max_rate`` rows per second);
    mark the run done when none is left."""
    started = time.monotonic()
    stop = threading.Event()
    pace = _Pace(max_rate)
    crew = [_Worker(url, run, stop, on_chunk, pace) for _ in range(max(1, workers))]
    threads = [threading.Thread(target=w, name=f"backfill-{i}", daemon=True) for i, w in enumerate(crew)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    finally:
        stop.set()
    errors = [w.error for w in crew if w.error is not None]
    if errors:
        raise errors[0]
    with psycopg.connect(url) as conn:
        conn.execute(f"UPDATE {RUNS} SET state = 'done', finished_at = clock_timestamp() WHERE run_id = %s "
                     f"AND state = 'running' AND NOT EXISTS (SELECT 1 FROM {CHUNKS} AS c "
                     "WHERE c.run_id = %s AND c.done_at IS NULL)", (run.run_id, run.run_id))
    return Result(run, sum(w.chunks for w in crew), sum(w.rows for w in crew), sum(w.retries for w in crew),
                  time.monotonic() - started)


def backfill(url: str, entities: Sequence[str] = (), *, where: str | None = None, workers: int = 1,
             chunk_pages: int = DEFAULT_CHUNK_PAGES, resume: bool = True, max_rate: float | None = None,
             on_start: Callable[[Run], None] = lambda run: None,
             on_chunk: Callable[[int], None] = lambda rows: None) -> Result:
    """Start (or resume) a run and write its chunks: the whole backfill of ``quiver events backfill``."""
    with psycopg.connect(url, autocommit=True) as conn:
        run = start(conn, entities, where=where, chunk_pages=chunk_pages, resume=resume)
    on_start(run)
    return run_chunks(url, run, workers=workers, max_rate=max_rate, on_chunk=on_chunk)
