"""Live dataset stacks: a database with captured tables, the relay, a server keeping tables live, and one not.

The server without live datasets is the oracle's other half: the same query, answered by
PostgreSQL through the ordinary Arrow plane, must give the same schema and the same rows.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from psycopg.rows import dict_row

from tests.conftest import Server, start_server, stop_server
from tests.support.pipeline import Pipeline, nats_url
from tests.support.stack import keep_log

FRESHNESS = (b"quiver:source", b"quiver:watermark")


@dataclass
class LiveStack:
    url: str
    pipeline: Pipeline
    live: Server
    plain: Server | None
    namespace: str
    entities: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def sql(self, *statements: str) -> None:
        with psycopg.connect(self.url) as conn:
            for statement in statements:
                conn.execute(statement)  # test-written SQL

    def restart_live(self) -> None:
        """A new live server (after the old one was stopped or killed)."""
        self.live = start_server(self.url, **self.env)
        keep_log(self.live, self.pipeline.workdir / "live.log")


def read(server: Server, query: str, *, fresh: bool = False, variables: dict[str, Any] | None = None) -> pa.Table:
    """One Flight DoGet of a GraphQL ticket."""
    ticket: dict[str, Any] = {"kind": "graphql", "query": query}
    if variables:
        ticket["variables"] = variables
    if fresh:
        ticket["consistency"] = "fresh"
    client = flight.connect(server.flight_url)
    try:
        return client.do_get(flight.Ticket(json.dumps(ticket).encode())).read_all()
    finally:
        client.close()


def watermark(table: pa.Table) -> int | None:
    metadata = table.schema.metadata or {}
    return int(metadata[b"quiver:watermark"]) if metadata.get(b"quiver:source") == b"live" else None


def without_freshness(schema: pa.Schema) -> pa.Schema:
    kept = {k: v for k, v in (schema.metadata or {}).items() if k not in FRESHNESS}
    return schema.with_metadata(kept) if kept else schema.remove_metadata()


def states(server: Server) -> dict[str, tuple[str, str]]:
    """entity -> (state, reason), from /metrics."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    found = {}
    for m in re.finditer(r'^quiver_live_state\{entity="([^"]*)",reason="([^"]*)",state="([^"]*)"\} 1', text, re.M):
        found[m.group(1)] = (m.group(3), m.group(2))
    return found


def wait_live(server: Server, entities: list[str], timeout: float = 120.0) -> None:
    """Until every dataset is live (they are named by list field, ``entities`` maybe by table)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = states(server)
        if len(now) == len(entities) and all(state == "live" for state, _ in now.values()):
            return
        if any(state == "not cached" for state, _ in now.values()):
            raise AssertionError(f"not cached: {now}")
        time.sleep(0.1)
    raise AssertionError(f"not live in {timeout} s: {states(server)}")


def start_stack(url: str, workdir: Path, entities: list[str], *, plain: bool = True, wait: bool = True,
                installed: Callable[[], None] | None = None, **env: str) -> LiveStack:
    """Capture installed, a relay, then (after ``installed()``, e.g. starting a writer) the servers."""
    namespace = f"live{time.monotonic_ns() % 10**12}"
    nats = env.pop("QUIVER_NATS_URL", nats_url())
    pipeline = Pipeline(url, workdir, namespace, sinks=(), nats=nats)
    pipeline.cli("install")
    pipeline.start("relay")
    if installed is not None:
        installed()
    settings = {"QUIVER_NATS_URL": nats, "QUIVER_EVENTS_NAMESPACE": namespace, **env}
    live_env = {**settings, "QUIVER_LIVE_ENTITIES": json.dumps(entities)}
    live = start_server(url, **live_env)
    keep_log(live, workdir / "live.log")
    other = start_server(url, **settings) if plain else None
    stack = LiveStack(url, pipeline, live, other, namespace, entities, live_env)
    if wait:
        wait_live(live, entities)
    return stack


def stop_stack(stack: LiveStack) -> None:
    for server in (stack.live, stack.plain):
        if server is not None and server.process.poll() is None:
            stop_server(server)
    stack.pipeline.stop_all()


@pytest.fixture()
def things(scratch_url: str, tmp_path: Path) -> Iterator[LiveStack]:
    """``things`` (a table of the test's own) live, on a copy of the demo database."""
    with psycopg.connect(scratch_url) as conn:
        conn.execute("CREATE TABLE things (id integer PRIMARY KEY, kind text NOT NULL, n integer, note text)")
        conn.execute("INSERT INTO things SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, g, NULL "
                     "FROM generate_series(1, 200) AS g")
    stack = start_stack(scratch_url, tmp_path, ["things"])
    yield stack
    stop_stack(stack)


def table_rows(url: str, table: str) -> list[dict[str, Any]]:
    """The table as PostgreSQL holds it now, by key, as dicts (the live answers' form)."""
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall()  # test-written SQL


class Writer(threading.Thread):
    """One writer changing ``ledger`` in small random transactions; after each commit it records
    the table's state under the transaction's highest outbox seq (with one writer, the state at
    that watermark). ``pause``/``resume`` hold it between transactions; ``stop`` ends it."""

    def __init__(self, url: str, seed: int = 0, pause_s: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.url, self.random, self.pause_s = url, random.Random(seed), pause_s
        self.states: dict[int, list[dict[str, Any]]] = {}
        self.last_seq = 0
        self.commits = 0
        self.outage_errors = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._idle = threading.Event()
        self.next_id = 100_000

    def statements(self) -> list[str]:
        r = self.random
        out = []
        for _ in range(r.randint(1, 6)):
            kind = r.random()
            key = r.randint(1, 400)
            if kind < 0.45:
                out.append(f"UPDATE ledger SET balance = balance + {r.randint(-500, 500)}.25, n = n + 1 "
                           f"WHERE id = {key}")
            elif kind < 0.6:
                self.next_id += 1
                out.append(f"INSERT INTO ledger VALUES ({self.next_id}, {r.randint(0, 9999)}.50, 'new', 0)")
            elif kind < 0.72:
                out.append(f"DELETE FROM ledger WHERE id = {key}")
            elif kind < 0.84:
                self.next_id += 1
                out.append(f"UPDATE ledger SET id = {self.next_id} WHERE id = {key}")
            elif kind < 0.97:
                out.append(f"UPDATE ledger SET tag = 't{r.randint(0, 9)}' WHERE id % 7 = {r.randint(0, 6)}")
            else:
                out.append("TRUNCATE ledger")
                out.append("INSERT INTO ledger SELECT g, g, 'again', 0 FROM generate_series(1, 50) AS g")
        return out

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=False) as conn:
                while not self._halt.is_set():
                    if not self._running.is_set():
                        self._idle.set()
                        self._running.wait(0.1)
                        continue
                    self._idle.clear()
                    for statement in self.statements():
                        conn.execute(statement)  # test-written SQL
                    found = conn.execute("SELECT max(seq) FROM quiver.outbox "
                                         "WHERE txid = pg_current_xact_id()").fetchone()
                    conn.commit()
                    seq = found[0] if found else None
                    if seq is not None:
                        self.last_seq = int(seq)
                        with conn.cursor(row_factory=dict_row) as cursor:
                            self.states[int(seq)] = cursor.execute("SELECT * FROM ledger ORDER BY id").fetchall()
                        conn.commit()
                        self.commits += 1
                    if self.pause_s:
                        time.sleep(self.pause_s)
        except BaseException as error:  # noqa: BLE001 - reported by check()
            self.error = error

    def pause(self) -> None:
        self._running.clear()
        assert self._idle.wait(30), "the writer did not pause"

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._halt.set()
        self._running.set()
        self.join(30)
        if self.error is not None:
            raise self.error


LEDGER = ("CREATE TABLE ledger (id integer PRIMARY KEY, balance numeric(12,2) NOT NULL, tag text, n integer)",
          "INSERT INTO ledger SELECT g, g * 10, 't' || (g % 10), 0 FROM generate_series(1, 300) AS g")
LEDGER_QUERY = "{ ledger(orderBy: [{id: ASC}]) { id balance tag n } }"
