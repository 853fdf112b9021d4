"""Flight SQL on ``quiver serve`` itself: the same port, the same tokens, beside Quiver's own tickets."""

from __future__ import annotations

from collections.abc import Iterator

import adbc_driver_flightsql.dbapi as flightsql
import orjson
import psycopg
import pyarrow.flight as flight
import pytest
from adbc_driver_flightsql import DatabaseOptions

from tests.conftest import Server, start_server, stop_server

TOKEN = "sql-secret-token"


@pytest.fixture(scope="module")
def served(demo_url: str) -> Iterator[Server]:
    running = start_server(demo_url, QUIVER_TOKENS=f'["{TOKEN}"]')
    yield running
    stop_server(running)


def test_sql_and_graphql_on_one_port_with_the_same_token(served: Server, demo_url: str) -> None:
    auth = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {TOKEN}"}
    with flightsql.connect(served.flight_url, db_kwargs=auth, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) AS n FROM orders WHERE id <= $1 GROUP BY status ORDER BY status", (500,))
        got = cur.fetch_arrow_table().to_pylist()
    with psycopg.connect(demo_url) as pg:
        expected = pg.execute("SELECT o.status::text, count(*) FROM orders AS o WHERE o.id <= 500 "
                              "GROUP BY o.status ORDER BY o.status").fetchall()  # enum order
    assert [(r["status"], r["n"]) for r in got] == [(s, n) for s, n in expected]
    client = flight.connect(served.flight_url)
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())])
    ticket = flight.Ticket(orjson.dumps({"kind": "graphql", "query": "{ orders(limit: 3) { id } }"}))
    assert client.do_get(ticket, options).read_all().num_rows == 3


def test_sql_without_the_token_is_refused(served: Server) -> None:
    with flightsql.connect(served.flight_url, autocommit=True) as conn, conn.cursor() as cur, \
            pytest.raises(Exception, match="(?i)unauthenticated|token") as caught:
        cur.execute("SELECT 1")
        cur.fetch_arrow_table()
    assert "Traceback" not in str(caught.value)
