"""``quiver events install`` and ``status`` on a database nobody here wrote: what is captured, what holds the relay.

Real PostgreSQL; the commands run as a user runs them (``python -m quiver.cli``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import ROOT, admin_url, database_url


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUIVER_DATABASE_URL": url, "COLUMNS": "200", "QUIVER_EVENTS_XMIN_WARN_SECONDS": "0"}
    return subprocess.run([sys.executable, "-m", "quiver.cli", "events", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def stranger() -> Iterator[str]:
    name = f"quiver_stranger_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute('CREATE TABLE "Orders" (n int PRIMARY KEY, o text)')
        conn.execute("CREATE TABLE notes (body text)")  # no primary key
    yield url
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_new_tables_are_captured_and_status_says_what_is(stranger: str) -> None:
    installed = run(stranger, "install")
    assert installed.returncode == 0, installed.stderr
    assert "no primary key on notes" in installed.stdout
    assert "captured as they are created" in installed.stdout
    with psycopg.connect(stranger, autocommit=True) as conn:
        conn.execute("CREATE TABLE later (id bigint PRIMARY KEY, v int)")
        conn.execute("INSERT INTO later VALUES (1, 2)")
        conn.execute("CREATE TABLE quiet (id int PRIMARY KEY)")
        conn.execute("SELECT quiver.detach('quiet'::regclass)")  # as if it predated a failed install
        events = conn.execute("SELECT entity, op FROM quiver.outbox ORDER BY seq").fetchall()
    assert events == [("later", "insert")]
    status = run(stranger, "status")
    assert status.returncode == 0, status.stderr
    lines = {line.split("│")[2].strip(): line for line in status.stdout.splitlines() if "│ capture" in line}
    assert "public.later" in lines and "NOT" not in lines["public.later"]
    assert "NOT captured" in lines["public.quiet"]
    assert "content" in lines["public.notes"]
    assert "NOT" not in lines["public.Orders"]


def test_a_writer_in_another_database_is_named_as_holding_the_relay(stranger: str) -> None:
    assert run(stranger, "install").returncode == 0
    other = database_url("postgres")
    with psycopg.connect(other) as idle:
        idle.execute("CREATE TEMP TABLE held (x int)")
        idle.execute("INSERT INTO held VALUES (1)")  # an xid now; idle in transaction from here on
        pid = idle.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        with psycopg.connect(stranger, autocommit=True) as conn:
            conn.execute('INSERT INTO "Orders" VALUES (1, \'a\')')
            ready = conn.execute("SELECT count(*) FROM quiver.outbox "
                                 "WHERE txid < pg_snapshot_xmin(pg_current_snapshot())").fetchone()
        assert ready == (0,), "the relay's gate must hold the event while the other transaction is open"
        status = run(stranger, "status")
        gate = [line for line in status.stdout.splitlines() if "relay gate" in line]
        assert gate and f"pid {pid[0]} in database postgres" in gate[0] and "holds every later event" in gate[0]
        idle.rollback()
    with psycopg.connect(stranger, autocommit=True) as conn:
        ready = conn.execute("SELECT count(*) FROM quiver.outbox "
                             "WHERE txid < pg_snapshot_xmin(pg_current_snapshot())").fetchone()
    assert ready == (1,)
