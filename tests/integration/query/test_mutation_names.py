"""Mutations return what they changed whatever the columns are called (``r`` was the compiler's row alias)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.conftest import Server, admin_url, database_url, start_server, stop_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    name = f"quiver_mutation_names_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE r (n int PRIMARY KEY, r int, changed text)")
    running = start_server(url)
    yield running
    stop_server(running)
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def graphql(server: Server, query: str) -> dict[str, object]:
    response = httpx.post(server.url + "/graphql", json={"query": query}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    data = body["data"]
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("alias", ["r", "changed", "n"])
def test_inserted_rows_come_back_as_objects(server: Server, alias: str) -> None:
    base = {"r": 10, "changed": 20, "n": 30}[alias]
    rows = f'[{{n: {base}, r: 5, changed: "x"}}, {{n: {base + 1}, r: 6}}]'
    data = graphql(server, f"mutation {{ insertR(objects: {rows}) {{ {alias}: r key: n note: changed }} }}")
    assert data == {"insertR": [{alias: 5, "key": base, "note": "x"}, {alias: 6, "key": base + 1, "note": None}]}


def test_updated_and_deleted_rows_come_back_as_objects(server: Server) -> None:
    graphql(server, "mutation { insertR(objects: [{n: 100, r: 1}]) { n } }")
    updated = graphql(server, "mutation { updateR(where: {n: {eq: 100}}, set: {r: 2}) { r: n n: r } }")
    assert updated == {"updateR": [{"r": 100, "n": 2}]}
    deleted = graphql(server, "mutation { deleteR(where: {n: {eq: 100}}) { r } }")
    assert deleted == {"deleteR": [{"r": 2}]}
