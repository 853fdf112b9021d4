"""A database with keys and every tested type, a Flight SQL test server over it, and clients."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pyarrow.flight as flight
import pytest

from quiver.config import Settings
from quiver.db import AdbcPool
from tests.conftest import admin_url, database_url
from tests.integration.flight.sql.server import SqlOnlyServer

TIMEOUT_MS = 1500

SCHEMA = """
CREATE SCHEMA fsql;
CREATE TABLE fsql.parent (region text NOT NULL, code int NOT NULL, label text, PRIMARY KEY (code, region));
CREATE TABLE fsql.child (
    id bigint PRIMARY KEY,
    parent_code int,
    parent_region text,
    CONSTRAINT child_parent_fk FOREIGN KEY (parent_code, parent_region)
        REFERENCES fsql.parent (code, region) ON DELETE CASCADE ON UPDATE RESTRICT
);
CREATE VIEW fsql.child_view AS SELECT id FROM fsql.child;
CREATE TABLE fsql.typed (
    i int, b bigint, t text, n numeric(12, 3), ts timestamptz, d date, flag bool, u uuid, j jsonb,
    ints int[], texts text[]
);
INSERT INTO fsql.parent VALUES ('eu', 1, 'one'), ('us', 1, NULL), ('eu', 2, 'two');
INSERT INTO fsql.child VALUES (10, 1, 'eu'), (11, 2, 'eu'), (12, NULL, NULL);
INSERT INTO fsql.typed VALUES
    (1, 9007199254740993, 'héllo', 12345.678, '2024-02-29 12:34:56.789+02', '2024-02-29', true,
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, null, "x"]}', '{1,NULL,3}', '{"a",NULL,"c d"}'),
    (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (-2147483648, -1, '', -0.001, '1970-01-01 00:00:00+00', '0001-01-01', false,
     '00000000-0000-0000-0000-000000000000', 'null', '{}', '{}');
"""


@pytest.fixture(scope="session")
def sql_url() -> Iterator[str]:
    """A database of its own (the template's demo data is not needed here); dropped at the end."""
    name = f"quiver_flightsql_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    with psycopg.connect(url) as conn:
        conn.execute(SCHEMA)
    yield url
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sql_server(sql_url: str) -> Iterator[SqlOnlyServer]:
    pool = AdbcPool(sql_url, 4)
    server = SqlOnlyServer(pool, Settings(statement_timeout_ms=TIMEOUT_MS, arrow_batch_bytes=1 << 20))
    yield server
    server.stop()
    pool.close()


@pytest.fixture()
def conn(sql_server: SqlOnlyServer) -> Iterator[Any]:
    """An ADBC Flight SQL DB-API connection: a client nobody here wrote."""
    with flightsql.connect(sql_server.url, autocommit=True) as connection:
        yield connection


@pytest.fixture()
def raw(sql_server: SqlOnlyServer) -> Iterator[flight.FlightClient]:
    """A plain Flight client, for the metadata commands ADBC does not expose one by one."""
    client = flight.FlightClient(sql_server.url)
    yield client
    client.close()


@pytest.fixture()
def pg(sql_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(sql_url) as connection:
        yield connection
