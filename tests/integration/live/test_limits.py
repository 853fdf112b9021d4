"""What a live dataset cannot hold is not cached, says why (``/metrics``, ``quiver events status``), and
its queries go to PostgreSQL with PostgreSQL's answers: over the memory bound, and a value the Arrow
planes cannot carry arriving on the stream."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pyarrow as pa
import pytest

from tests.conftest import Server, stop_server
from tests.integration.live.conftest import (
    read,
    start_stack,
    states,
    stop_stack,
    wait_live,
    watermark,
    without_freshness,
)


def wait_not_cached(server: Server, entity: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, reason = states(server).get(entity, ("", ""))
        if state == "not cached":
            return reason
        time.sleep(0.1)
    raise AssertionError(f"{entity} still cached: {states(server)}")


def status_lines(url: str, stack_env: dict[str, str], server: Server) -> str:
    done = subprocess.run([sys.executable, "-m", "quiver.cli", "events", "status", "--server", server.url],
                          env={**os.environ, "QUIVER_DATABASE_URL": url, **stack_env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_table_over_the_memory_bound_is_not_cached_and_postgresql_answers(
        scratch_url: str, tmp_path: Path) -> None:
    with psycopg.connect(scratch_url) as conn:
        conn.execute("CREATE TABLE wide (id integer PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO wide SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 40000) AS g")
    stack = start_stack(scratch_url, tmp_path, ["wide"], wait=False, QUIVER_LIVE_MEMORY_MB="1")
    try:
        reason = wait_not_cached(stack.live, "wide")
        assert "QUIVER_LIVE_MEMORY_MB" in reason, reason
        assert stack.plain is not None
        query = "{ wide(orderBy: [{id: DESC}], limit: 5000) { id body } }"
        answer = read(stack.live, query, fresh=True)
        assert watermark(answer) is None, "answered from memory although not cached"
        assert answer.to_pylist() == read(stack.plain, query).to_pylist()
        metrics = httpx.get(stack.live.url + "/metrics", timeout=10).text
        assert 'quiver_live_answers_total{entity="wide",outcome="not cached"}' in metrics, metrics
        status = status_lines(scratch_url, stack.env, stack.live)
        assert "live wide" in status and "not cached" in status, status
    finally:
        stop_stack(stack)


def test_a_value_the_arrow_planes_cannot_carry_stops_the_dataset_and_postgresql_answers(
        scratch_url: str, tmp_path: Path) -> None:
    with psycopg.connect(scratch_url) as conn:
        conn.execute("CREATE TABLE amounts (id integer PRIMARY KEY, amount numeric(10,2))")
        conn.execute("INSERT INTO amounts SELECT g, g / 4.0 FROM generate_series(1, 100) AS g")
    stack = start_stack(scratch_url, tmp_path, ["amounts"])
    try:
        assert stack.plain is not None
        query = "{ amounts(orderBy: [{id: ASC}]) { id amount } }"
        assert watermark(read(stack.live, query)) is not None
        stack.sql("UPDATE amounts SET amount = 'NaN' WHERE id = 7")  # numeric(10,2) admits NaN; decimal128 does not
        reason = wait_not_cached(stack.live, "amounts")
        assert "cannot carry" in reason, reason
        with pytest.raises(pa.ArrowException) as live_error:
            read(stack.live, query)
        with pytest.raises(pa.ArrowException) as plain_error:
            read(stack.plain, query)
        assert type(live_error.value) is type(plain_error.value)
        assert "NaN" in str(live_error.value), live_error.value
        stack.sql("DELETE FROM amounts WHERE id = 7")
        answer = read(stack.live, query)  # not cached for good (until a restart): PostgreSQL answers
        assert watermark(answer) is None
        assert answer.to_pylist() == read(stack.plain, query).to_pylist()
        status = status_lines(scratch_url, stack.env, stack.live)
        assert "live amounts" in status and "cannot carry" in status, status
        stop_server(stack.live)
        stack.restart_live()  # a new server loads it again
        wait_live(stack.live, ["amounts"])
        assert watermark(read(stack.live, query)) is not None
    finally:
        stop_stack(stack)


def test_an_enum_label_added_after_start_reads_as_the_postgresql_path_reads_it(
        scratch_url: str, tmp_path: Path) -> None:
    """Enums are DuckDB ENUMs of the labels known at start; a row with a label added later must read
    from memory exactly as the PostgreSQL path reads it (the Arrow plane's dictionary is the labels
    known at start too)."""
    with psycopg.connect(scratch_url) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
        conn.execute("CREATE TABLE moods (id integer PRIMARY KEY, mood mood NOT NULL)")
        conn.execute("INSERT INTO moods SELECT g, CASE WHEN g % 2 = 0 THEN 'sad' ELSE 'ok' END::mood "
                     "FROM generate_series(1, 50) AS g")
    stack = start_stack(scratch_url, tmp_path, ["moods"])
    try:
        assert stack.plain is not None
        query = "{ moods(orderBy: [{id: ASC}]) { id mood } }"
        live = read(stack.live, query)
        assert watermark(live) is not None and live.to_pylist() == read(stack.plain, query).to_pylist()
        stack.sql("ALTER TYPE mood ADD VALUE 'glad'")
        stack.sql("INSERT INTO moods VALUES (51, 'glad')", "UPDATE moods SET mood = 'glad' WHERE id = 2")
        answer = read(stack.live, query, fresh=True)
        plain = read(stack.plain, query)
        assert watermark(answer) is not None
        assert without_freshness(answer.schema) == plain.schema and answer.to_pylist() == plain.to_pylist()
    finally:
        stop_stack(stack)
