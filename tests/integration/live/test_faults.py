"""A live dataset survives its consumer killed, NATS killed and restarted, TRUNCATE and key updates.

The consumer of a live dataset runs inside ``quiver serve``, so "the consumer killed" is the
server SIGKILLed mid-stream; a restart loads again from a snapshot. NATS is a private server
for this test (SIGKILL, wait until gone, restart on its own store). A writer keeps changing
``ledger`` (random updates, inserts, deletes, key changes, TRUNCATE) through every fault;
after each, the writer pauses and a ``fresh`` live read must equal the table row for row.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from quiver.embedded.nats import EmbeddedNats
from quiver.embedded.process import process_alive
from tests.conftest import free_port
from tests.integration.live.conftest import (
    LEDGER,
    LEDGER_QUERY,
    LiveStack,
    Writer,
    read,
    start_stack,
    stop_stack,
    table_rows,
    wait_live,
    watermark,
)


@pytest.fixture()
def private_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats", free_port(), free_port())
    server.start()
    yield server
    server.stop(timeout=5)


def kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process_alive(pid):
        assert time.monotonic() < deadline, f"{pid} survived SIGKILL"
        time.sleep(0.02)


def assert_equal_to_table(stack: LiveStack, writer: Writer, what: str) -> None:
    """With the writer paused: a fresh live read equals the table, and is answered live."""
    writer.pause()
    try:
        deadline = time.monotonic() + 60
        while True:  # the relay may still be reconnecting: fresh waits at most its timeout, then PostgreSQL answers
            table = read(stack.live, LEDGER_QUERY, fresh=True)
            if watermark(table) is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert watermark(table) is not None, f"after {what}: not answered live"
        assert table.to_pylist() == table_rows(stack.url, "ledger"), f"after {what}"
    finally:
        writer.resume()


def test_the_dataset_equals_the_table_after_every_fault(
        scratch_url: str, tmp_path: Path, private_nats: EmbeddedNats) -> None:
    with psycopg.connect(scratch_url) as conn:
        for statement in LEDGER:
            conn.execute(statement)  # test-written SQL
    stack = start_stack(scratch_url, tmp_path, ["ledger"], plain=False, QUIVER_NATS_URL=private_nats.url,
                        QUIVER_LIVE_FRESH_TIMEOUT_MS="20000")
    writer = Writer(scratch_url, seed=2, pause_s=0.005)
    try:
        writer.start()
        time.sleep(1)
        assert_equal_to_table(stack, writer, "writes")

        kill_and_wait(stack.live.pid)  # the consumer killed, mid-stream
        time.sleep(1)
        stack.restart_live()
        wait_live(stack.live, ["ledger"])
        time.sleep(0.5)
        assert_equal_to_table(stack, writer, "the server (and its consumer) killed and restarted")

        pid = private_nats.pid()
        assert pid is not None
        kill_and_wait(pid)  # NATS killed while the writer, the relay and the dataset run
        time.sleep(2)
        private_nats.start()
        time.sleep(1)
        assert_equal_to_table(stack, writer, "NATS killed and restarted")

        writer.pause()
        stack.sql("UPDATE ledger SET id = id + 500000 WHERE id % 5 = 0",  # key updates, many rows
                  "TRUNCATE ledger",
                  "INSERT INTO ledger SELECT g, g, 'after truncate', 1 FROM generate_series(1, 40) AS g",
                  "UPDATE ledger SET id = -id WHERE id < 10")
        writer.resume()
        time.sleep(0.5)
        assert_equal_to_table(stack, writer, "TRUNCATE and key updates")
        writer.stop()
        assert writer.commits > 50, writer.commits
        final = read(stack.live, LEDGER_QUERY, fresh=True)
        assert final.to_pylist() == table_rows(scratch_url, "ledger")
    finally:
        if writer.is_alive():
            writer.stop()
        stop_stack(stack)
