"""A live table answers like PostgreSQL and follows inserts, updates, key changes, deletes and TRUNCATE."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.conftest import start_server, stop_server
from tests.integration.live.conftest import (
    LiveStack,
    read,
    start_stack,
    stop_stack,
    wait_live,
    watermark,
    without_freshness,
)
from tests.support.stack import keep_log

QUERY = "{ things(orderBy: [{id: ASC}]) { id kind n note } }"


def test_a_live_answer_equals_the_postgresql_answer_after_every_kind_of_change(things: LiveStack) -> None:
    assert things.plain is not None
    first = read(things.live, QUERY)
    assert watermark(first) is not None, first.schema.metadata
    assert first.equals(read(things.plain, QUERY)) or first.to_pylist() == read(things.plain, QUERY).to_pylist()
    things.sql("UPDATE things SET note = 'x' || id WHERE id % 3 = 0",
               "UPDATE things SET id = id + 1000 WHERE id = 5",
               "DELETE FROM things WHERE id = 7",
               "INSERT INTO things VALUES (9999, 'c', NULL, 'new')")
    after = read(things.live, QUERY, fresh=True)
    plain = read(things.plain, QUERY)
    assert without_freshness(after.schema) == plain.schema
    assert after.to_pylist() == plain.to_pylist()
    things.sql("TRUNCATE things", "INSERT INTO things VALUES (1, 'a', 1, 'after')")
    after = read(things.live, QUERY, fresh=True)
    assert after.to_pylist() == [{"id": 1, "kind": "a", "n": 1, "note": "after"}]


ARROW = "application/vnd.apache.arrow.stream"


def test_consistency_over_http_and_its_bad_values(things: LiveStack) -> None:
    """The ``quiver-consistency`` header on Arrow over HTTP; a bad value is a 400 or INVALID_ARGUMENT."""
    things.sql("UPDATE things SET note = 'http' WHERE id = 3")
    response = httpx.post(things.live.url + "/graphql", json={"query": QUERY},
                          headers={"accept": ARROW, "quiver-consistency": "fresh"}, timeout=30)
    assert response.status_code == 200, response.text
    table = pa.ipc.open_stream(response.content).read_all()
    assert watermark(table) is not None and {"id": 3, "kind": "b", "n": 3, "note": "http"} in table.to_pylist()
    bad = httpx.post(things.live.url + "/graphql", json={"query": QUERY},
                     headers={"accept": ARROW, "quiver-consistency": "soon"}, timeout=30)
    assert bad.status_code == 400 and "quiver-consistency must be fresh or any" in bad.text
    client = flight.connect(things.live.flight_url)
    try:
        ticket = json.dumps({"kind": "graphql", "query": QUERY, "consistency": "soon"}).encode()
        with pytest.raises(pa.ArrowException, match="consistency"):
            client.do_get(flight.Ticket(ticket)).read_all()
    finally:
        client.close()


def test_a_fresh_read_that_cannot_catch_up_falls_back_or_says_not_fresh(scratch_url: str, tmp_path: Path) -> None:
    """With the relay stopped nothing committed reaches the dataset: a fresh read then gets PostgreSQL's
    answer (the default fallback) or NOT_FRESH (``QUIVER_LIVE_FRESH_FALLBACK=error``), never stale rows."""
    with psycopg.connect(scratch_url) as conn:
        conn.execute("CREATE TABLE things (id integer PRIMARY KEY, kind text NOT NULL, n integer, note text)")
        conn.execute("INSERT INTO things VALUES (1, 'a', 1, NULL)")
    stack = start_stack(scratch_url, tmp_path, ["things"], QUIVER_LIVE_FRESH_TIMEOUT_MS="300")
    strict = start_server(scratch_url, **{**stack.env, "QUIVER_LIVE_FRESH_FALLBACK": "error"})
    keep_log(strict, tmp_path / "strict.log")
    try:
        wait_live(strict, ["things"])
        stack.pipeline.stop("relay")
        stack.sql("INSERT INTO things VALUES (2, 'b', 2, 'unpublished')")
        answer = read(stack.live, QUERY, fresh=True)
        assert watermark(answer) is None, "a fresh read answered from a dataset that had not caught up"
        assert [row["id"] for row in answer.to_pylist()] == [1, 2]
        stale = read(stack.live, QUERY)  # not fresh: the dataset as it is, saying how fresh
        assert watermark(stale) is not None and [row["id"] for row in stale.to_pylist()] == [1]
        with pytest.raises(pa.ArrowException, match="did not apply every committed change"):
            read(strict, QUERY, fresh=True)
        response = httpx.post(strict.url + "/graphql", json={"query": QUERY},
                              headers={"accept": ARROW, "quiver-consistency": "fresh"}, timeout=30)
        assert response.status_code == 503 and "NOT_FRESH" in response.text, response.text
    finally:
        stop_server(strict)
        stop_stack(stack)
