"""Faults: a slow subscriber is cut off, a killed one is forgotten, NATS restarts; the others miss nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from quiver.embedded.nats import EmbeddedNats
from quiver.embedded.process import process_alive
from tests.conftest import free_port
from tests.integration.subscriptions.conftest import PROTOCOL, Client, Live, next_seq, start_live, stop_live

SUB = 'subscription($s: BigInt!) { things(where: {kind: {eq: "a"}}, from: {seq: $s}) { id n note } }'


def changes(live: Live, start: int) -> list[tuple[int, int, int]]:
    """(seq, id, n) of every kind-a change from ``start`` (plain SQL over the outbox)."""
    return [(seq, data["id"], data["n"]) for seq, _, data in live.outbox(f"seq >= {start} AND data ->> 'kind' = 'a'")]


def seen(messages: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    return [(m["payload"]["extensions"]["seq"], m["payload"]["data"]["things"]["id"],
             m["payload"]["data"]["things"]["n"]) for m in messages]


class StalledClient:
    """A real WebSocket client (the ``websockets`` protocol) on a socket it stops reading once subscribed."""

    def __init__(self, url: str, query: str, variables: dict[str, Any]) -> None:
        host, port = url.removeprefix("ws://").split("/", 1)[0].split(":")
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.connect((host, int(port)))
        self.protocol = ClientProtocol(parse_uri(url), subprotocols=[Subprotocol(PROTOCOL)])
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while not self.protocol.handshake_exc and self.protocol.state.name == "CONNECTING":
            self.protocol.receive_data(self.socket.recv(65536))
        for message in ({"type": "connection_init"},
                        {"id": "s", "type": "subscribe", "payload": {"query": query, "variables": variables}}):
            self.protocol.send_text(json.dumps(message).encode())
        self._flush()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            self.socket.sendall(data)

    def drain(self, timeout: float) -> tuple[int, int | None, str]:
        """Read everything until the server ends the connection: (text frames, close code, close reason)."""
        self.socket.settimeout(timeout)
        frames, code, reason = 0, None, ""
        while True:
            try:
                data = self.socket.recv(1 << 20)
            except (ConnectionResetError, TimeoutError):
                data = b""
            if not data:
                self.protocol.receive_eof()
            else:
                self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    frames += 1
                elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE and event.data:
                    close = Close.parse(event.data)
                    code, reason = close.code, close.reason
            if not data:
                self.socket.close()
                return frames, code, reason


def test_a_slow_subscriber_is_cut_off_and_the_others_get_everything(scratch_url: str, tmp_path: Path) -> None:
    live = start_live(scratch_url, tmp_path, QUIVER_SUBSCRIPTION_BUFFER="50")
    try:
        start = next_seq(live)
        big = "x" * 16000  # 2,000 messages of 16 kB: more than any socket buffers hold

        async def run() -> tuple[list[dict[str, Any]], tuple[int, int | None, str]]:
            fast = await Client.connect(live.ws_url)
            await fast.subscribe("f", SUB, {"s": str(start)})
            stalled = StalledClient(live.ws_url, SUB, {"s": str(start)})
            got: list[dict[str, Any]] = []

            async def read_fast() -> None:
                while True:
                    got.extend(await fast.nexts(1, timeout=120))

            reader = asyncio.create_task(read_fast())

            def write() -> None:
                for _ in range(10):
                    live.sql(*(f"UPDATE things SET n = n + 1, note = '{big}' WHERE kind = 'a'" for _ in range(20)))

            await asyncio.get_running_loop().run_in_executor(None, write)
            live.wait_published()
            want = changes(live, start)
            deadline = time.monotonic() + 120
            while len(got) < len(want) and time.monotonic() < deadline and not reader.done():
                await asyncio.sleep(0.1)
            reader.cancel()
            await fast.close()
            return got, await asyncio.get_running_loop().run_in_executor(None, stalled.drain, 60.0)

        got, (frames, code, reason) = asyncio.run(run())
        assert seen(got) == changes(live, start)  # the fast one: everything, in order, once
        assert frames < len(got) + 2, "the stalled subscriber was never cut off"
        # The server ended it; when its close frame got through the full socket, it says why.
        assert code in (None, 1013), (code, reason)
        assert code is None or "too slow" in reason
        assert httpx.get(live.server.url + "/health").status_code == 200
    finally:
        stop_live(live)


CLIENT = textwrap.dedent("""
    import asyncio, json, sys, websockets
    async def main():
        async with websockets.connect(sys.argv[1], subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            await ws.recv()
            await ws.send(json.dumps({"id": "k", "type": "subscribe", "payload": {"query": sys.argv[2],
                                      "variables": {"s": sys.argv[3]}}}))
            while True:
                await ws.recv()
                print("got", flush=True)
    asyncio.run(main())
""")


def test_a_killed_subscriber_and_a_nats_restart_lose_nothing_for_the_others(scratch_url: str,
                                                                             tmp_path: Path) -> None:
    nats = EmbeddedNats(tmp_path / "nats", free_port(), free_port())
    nats.start()
    live = start_live(scratch_url, tmp_path, QUIVER_NATS_URL=nats.url)
    victim: subprocess.Popen[bytes] | None = None
    try:
        start = next_seq(live)

        async def run() -> list[dict[str, Any]]:
            nonlocal victim
            client = await Client.connect(live.ws_url)
            await client.subscribe("1", SUB, {"s": str(start)})
            victim = subprocess.Popen([sys.executable, "-c", CLIENT, live.ws_url, SUB, str(start)],
                                      stdout=subprocess.PIPE)
            live.sql("UPDATE things SET n = n + 1 WHERE kind = 'a'")
            assert victim.stdout is not None
            await asyncio.get_running_loop().run_in_executor(None, victim.stdout.readline)  # it is receiving
            victim.send_signal(signal.SIGKILL)  # killed mid-stream
            victim.wait(timeout=30)
            live.sql("UPDATE things SET n = n + 1 WHERE kind = 'a'")
            pid = nats.pid()
            assert pid is not None
            import os

            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while process_alive(pid):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            nats._reap()
            live.sql("UPDATE things SET n = n + 1 WHERE kind = 'a'")  # into the outbox while NATS is down
            await asyncio.sleep(1.0)
            nats.start()
            live.sql("UPDATE things SET n = n + 1 WHERE kind = 'a'")
            live.wait_published(timeout=90)
            want = changes(live, start)
            messages = await client.nexts(len(want), timeout=120)
            try:
                extra = await client.receive(timeout=2.0)
            except TimeoutError:
                extra = None
            assert extra is None, f"a duplicate or unexpected message: {extra}"
            await client.close()
            return messages

        messages = asyncio.run(run())
        assert seen(messages) == changes(live, start)
        assert len(messages) == 40  # 4 updates of the 10 kind-a rows
        assert httpx.get(live.server.url + "/health").status_code == 200
        json.dumps(messages)
    finally:
        if victim is not None and victim.poll() is None:
            victim.kill()
        stop_live(live)
        nats.stop()
