"""The real services from ``scripts/services``: NATS JetStream and ClickHouse 18.16.

The shared servers come from ``eval "$(scripts/services env)"`` (QUIVER_NATS_URL,
QUIVER_NATS_MONITOR_URL, QUIVER_CLICKHOUSE_URL). Crash, restart and stop behaviour is
checked on private servers on free ports in a tmp dir, never on the shared ones.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StorageType

from quiver.embedded.nats import EmbeddedNats
from quiver.embedded.process import process_alive
from tests.conftest import free_port
from tests.support.servers.clickhouse import ClickHouseServer


def env_url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        pytest.fail(f"{name} is not set: run the suite with `make test` (scripts/services env)")
    return url


def unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive"
        time.sleep(0.02)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- NATS ------------------------------------------------------------------------------------------------------


def test_nats_jetstream_dedup_and_pull_consume() -> None:
    url = env_url("QUIVER_NATS_URL")
    stream = unique("QUIVER_TEST")
    subject = f"quiver.test.{stream}"

    async def scenario() -> None:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
        js = nc.jetstream()
        try:
            await js.add_stream(name=stream, subjects=[f"{subject}.>"], storage=StorageType.FILE)
            first = await js.publish(f"{subject}.a", b"hello", headers={"Nats-Msg-Id": "msg-1"})
            second = await js.publish(f"{subject}.a", b"hello", headers={"Nats-Msg-Id": "msg-1"})
            assert (first.stream, first.seq, first.duplicate) == (stream, 1, None)
            assert second.duplicate is True
            assert second.seq == 1
            assert (await js.stream_info(stream)).state.messages == 1

            sub = await js.pull_subscribe(
                f"{subject}.>", durable="reader", config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
            )
            [msg] = await sub.fetch(1, timeout=5)
            assert (msg.subject, msg.data) == (f"{subject}.a", b"hello")
            assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == "msg-1"
            await msg.ack_sync()
            info = await js.consumer_info(stream, "reader")
            assert (info.num_ack_pending, info.num_pending, info.ack_floor.stream_seq) == (0, 0, 1)
            with pytest.raises(nats.errors.TimeoutError):
                await sub.fetch(1, timeout=0.3)
        finally:
            try:
                await js.delete_stream(stream)
            finally:
                await nc.close()

    asyncio.run(scenario())


def test_nats_fsyncs_every_write() -> None:
    """The shared server runs with ``sync_interval: always`` (an acknowledged publish is on disk)."""
    monitor = env_url("QUIVER_NATS_MONITOR_URL")
    config = httpx.get(f"{monitor}/jsz", timeout=5).json()["config"]
    assert config["sync_always"] is True


@pytest.fixture()
def private_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats", free_port(), free_port())
    yield server
    server.stop(timeout=5)


def test_nats_survives_sigkill_and_restart(private_nats: EmbeddedNats) -> None:
    server = private_nats
    assert server.pid() is None and not server.ready()
    server.start()
    pid = server.pid()
    assert pid is not None and server.ready()
    assert os.getsid(pid) == pid, "the server must run in its own session (it outlives scripts/services)"
    server.start()  # idempotent
    assert server.pid() == pid
    count = 200

    async def publish() -> None:
        nc = await nats.connect(server.url, connect_timeout=5, max_reconnect_attempts=0)
        js = nc.jetstream()
        await js.add_stream(name="CRASH", subjects=["crash.>"], storage=StorageType.FILE)
        acks = await asyncio.gather(
            *(js.publish(f"crash.{i % 7}", f"m{i}".encode(), headers={"Nats-Msg-Id": f"id-{i}"}) for i in range(count))
        )
        assert sorted(ack.seq for ack in acks) == list(range(1, count + 1))
        await nc.close()

    asyncio.run(publish())

    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    assert server.pid() is None
    server.start()
    restarted = server.pid()
    assert restarted is not None and restarted != pid

    async def check() -> None:
        nc = await nats.connect(server.url, connect_timeout=5, max_reconnect_attempts=0)
        js = nc.jetstream()
        assert (await js.stream_info("CRASH")).state.messages == count
        again = await js.publish("crash.0", b"m0", headers={"Nats-Msg-Id": "id-0"})
        assert again.duplicate is True, "the duplicate window survives the crash"
        sub = await js.pull_subscribe("crash.>", durable="after")
        seen: list[bytes] = []
        while len(seen) < count:
            for msg in await sub.fetch(100, timeout=5):
                seen.append(msg.data)
                await msg.ack()
        assert sorted(seen) == sorted(f"m{i}".encode() for i in range(count))
        await nc.close()

    asyncio.run(check())

    server.stop()
    wait_gone(restarted, timeout=0)
    assert server.pid() is None and not server.ready()
    assert not port_open(server.port)
    assert not server.pid_file.exists()
    server.stop()  # idempotent


def test_nats_stop_escalates_to_sigkill(private_nats: EmbeddedNats) -> None:
    server = private_nats
    server.start()
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a stopped process ignores SIGTERM until continued
    began = time.monotonic()
    server.stop(timeout=0.5)
    assert time.monotonic() - began < 10
    assert not process_alive(pid)
    assert server.pid() is None and not port_open(server.port)


# --- ClickHouse ------------------------------------------------------------------------------------------------


def ch_query(client: httpx.Client, sql: str, body: bytes = b"") -> str:
    """Run ``sql`` over HTTP (POST: a GET is read-only); ``body`` holds an INSERT's data."""
    response = client.post("/", params={"query": sql}, content=body)
    assert response.status_code == 200, response.text
    return response.text


def test_clickhouse_version_and_replacing_merge_tree() -> None:
    url = env_url("QUIVER_CLICKHOUSE_URL")
    database = unique("quiver_test")
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/ping").text == "Ok.\n"
        version = ch_query(client, "SELECT version()").strip()
        assert version.startswith("18.16."), version
        ch_query(client, f"CREATE DATABASE {database}")
        try:
            ch_query(
                client,
                f"CREATE TABLE {database}.entities (id UInt64, name String, version UInt32) "
                "ENGINE = ReplacingMergeTree(version) ORDER BY id",
            )
            insert = f"INSERT INTO {database}.entities FORMAT TabSeparated"
            ch_query(client, insert, b"1\talpha\t1\n2\tbeta\t1\n")
            ch_query(client, insert, b"1\talpha-2\t2\n2\tbeta-old\t0\n3\tgamma\t1\n")
            assert ch_query(client, f"SELECT count() FROM {database}.entities").strip() == "5"
            final = ch_query(client, f"SELECT id, name, version FROM {database}.entities FINAL ORDER BY id")
            assert final == "1\talpha-2\t2\n2\tbeta\t1\n3\tgamma\t1\n"
        finally:
            ch_query(client, f"DROP DATABASE IF EXISTS {database}")
        assert database not in ch_query(client, "SELECT name FROM system.databases").split()


def test_clickhouse_private_server_restart_and_stop(tmp_path: Path) -> None:
    server = ClickHouseServer(tmp_path / "clickhouse", free_port(), free_port())
    try:
        assert server.pid() is None and not server.ready()
        server.start()
        pid = server.pid()
        assert pid is not None and server.ready()
        assert os.getsid(pid) == pid
        server.start()  # idempotent
        assert server.pid() == pid
        with httpx.Client(base_url=server.url, timeout=30) as client:
            ch_query(client, "CREATE TABLE default.t (k UInt32, v String) ENGINE = MergeTree() ORDER BY k")
            ch_query(client, "INSERT INTO default.t FORMAT TabSeparated", b"1\tone\n2\ttwo\n")
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        assert server.pid() is None
        server.start()
        restarted = server.pid()
        assert restarted is not None and restarted != pid
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert ch_query(client, "SELECT k, v FROM default.t ORDER BY k") == "1\tone\n2\ttwo\n"
        server.stop()
        assert not process_alive(restarted)
        assert server.pid() is None and not server.ready()
        assert not port_open(server.http_port) and not port_open(server.tcp_port)
        assert not server.pid_file.exists()
    finally:
        server.stop(timeout=5)
