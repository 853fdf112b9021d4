"""A live stack for subscription tests: a scratch database with captured tables, the relay, a server.

``things`` is a table of the test's own (key changes, deletes and TRUNCATE are free there);
the demo tables give relations. Clients are real WebSocket clients (the ``websockets``
library) speaking graphql-transport-ws.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import websockets

from tests.conftest import Server, start_server, stop_server
from tests.support.pipeline import Pipeline, nats_url

PROTOCOL = "graphql-transport-ws"
THINGS = """
CREATE TABLE things (id integer PRIMARY KEY, kind text NOT NULL, n integer,
                     customer_id bigint REFERENCES customers (id), note text);
INSERT INTO things SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, g, 1 + g % 5
FROM generate_series(1, 20) AS g;
"""


@dataclass
class Live:
    url: str
    pipeline: Pipeline
    server: Server
    namespace: str

    @property
    def ws_url(self) -> str:
        return self.server.url.replace("http://", "ws://") + "/graphql"

    def sql(self, *statements: str, tenant: str | None = None) -> None:
        """Run ``statements`` in one committed transaction (as ``tenant`` if given)."""
        with psycopg.connect(self.url) as conn:
            if tenant is not None:
                conn.execute("SELECT set_config('quiver.tenant_id', %s, true)", (tenant,))
            for statement in statements:
                conn.execute(statement)  # test-written SQL

    def outbox(self, condition: str = "TRUE") -> list[tuple[int, str, Any]]:
        """(seq, op, data) of the outbox rows of ``things`` meeting ``condition`` (plain SQL over the images)."""
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(f"SELECT seq, op, data FROM quiver.outbox WHERE entity = 'things' AND ({condition}) "
                                "ORDER BY seq").fetchall()
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    def wait_published(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(self.url) as conn:
                row = conn.execute("SELECT count(*) FROM quiver.outbox WHERE published_at IS NULL").fetchone()
            if row and row[0] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("the relay did not publish the outbox")


def start_live(url: str, workdir: Path, **env: str) -> Live:
    with psycopg.connect(url) as conn:
        conn.execute(THINGS)
    namespace = f"sub{time.monotonic_ns() % 10**12}"
    nats = env.pop("QUIVER_NATS_URL", nats_url())
    pipeline = Pipeline(url, workdir, namespace, sinks=(), nats=nats)
    pipeline.cli("install")
    pipeline.start("relay")
    server = start_server(url, QUIVER_NATS_URL=nats, QUIVER_EVENTS_NAMESPACE=namespace, **env)
    return Live(url, pipeline, server, namespace)


def stop_live(live: Live) -> None:
    stop_server(live.server)
    live.pipeline.stop_all()


@pytest.fixture()
def live(scratch_url: str, tmp_path: Path) -> Iterator[Live]:
    stack = start_live(scratch_url, tmp_path)
    yield stack
    stop_live(stack)


class Client:
    """One graphql-transport-ws connection."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    @classmethod
    async def connect(cls, url: str, payload: dict[str, Any] | None = None, **options: Any) -> Client:
        socket = await websockets.connect(url, subprotocols=[PROTOCOL], **options)  # type: ignore[list-item]
        client = cls(socket)
        await client.send({"type": "connection_init", **({"payload": payload} if payload is not None else {})})
        ack = await client.receive()
        assert ack == {"type": "connection_ack"}, ack
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def receive(self, timeout: float = 30.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.socket.recv(), timeout))
        return message

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        await self.send({"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}})

    async def nexts(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The next ``count`` messages, which must all be ``next``."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            message = await self.receive(max(deadline - time.monotonic(), 0.01))
            assert message["type"] == "next", message
            out.append(message)
        return out

    async def close(self) -> None:
        await self.socket.close()


def next_seq(live: Live) -> int:
    """The ``seq`` the next change will have at least: a subscription ``from`` it misses nothing after now.

    The protocol has no "subscribed" message, so tests start from a ``seq`` instead of racing
    a live-only subscription against their first write.
    """
    with psycopg.connect(live.url) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM quiver.outbox").fetchone()
    assert row is not None
    return int(row[0])
