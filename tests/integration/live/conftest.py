"""Live dataset stacks: a database with captured tables, the relay, a server keeping tables live, and one not.

The server without live datasets is the oracle's other half: the same query, answered by
PostgreSQL through the ordinary Arrow plane, must give the same schema and the same rows.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.support.pipeline import Pipeline, nats_url

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


def keep_log(server: Server, path: Path) -> None:
    """The server's stderr into ``path`` (a full pipe would block it; the log explains a failure)."""
    stderr = server.process.stderr

    def drain() -> None:
        if stderr is None:
            return
        with open(path, "ab") as out:
            while chunk := os.read(stderr.fileno(), 65536):
                out.write(chunk)
                out.flush()

    threading.Thread(target=drain, daemon=True).start()


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


def start_stack(url: str, workdir: Path, entities: list[str], *, plain: bool = True, **env: str) -> LiveStack:
    namespace = f"live{time.monotonic_ns() % 10**12}"
    nats = env.pop("QUIVER_NATS_URL", nats_url())
    pipeline = Pipeline(url, workdir, namespace, sinks=(), nats=nats)
    pipeline.cli("install")
    pipeline.start("relay")
    settings = {"QUIVER_NATS_URL": nats, "QUIVER_EVENTS_NAMESPACE": namespace, **env}
    live_env = {**settings, "QUIVER_LIVE_ENTITIES": json.dumps(entities)}
    live = start_server(url, **live_env)
    keep_log(live, workdir / "live.log")
    other = start_server(url, **settings) if plain else None
    stack = LiveStack(url, pipeline, live, other, namespace, entities, live_env)
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
