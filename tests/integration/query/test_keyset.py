"""Keyset pagination never drops or repeats a row, and is refused where no unique order exists.

A table or view without a primary key has no unique order: pages by ``after`` would skip
the rows that tie with a page's last row (the bug of issue G). The schema offers neither
``after`` nor ``_cursor`` there. On tables with a key (single and composite), hypothesis
draws an ordering over columns full of steps and NULLs (every direction and NULLS placement),
a filter and a page size; walking the pages with ``after: <last _cursor>`` must give exactly
the unpaged answer of the same query, and that answer must be the table's rows (plain SQL).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Server, admin_url, database_url, start_server, stop_server

DATABASE = "quiver_test_keyset"
SETUP = """
CREATE TABLE steps (id int PRIMARY KEY, a int, b text, c numeric);
INSERT INTO steps SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE g % 3 END,
                        CASE WHEN g % 7 = 0 THEN NULL ELSE chr(97 + g % 4) END, (g % 4) / 2.0
FROM generate_series(1, 90) AS g;
CREATE TABLE pairs (k1 text, k2 int, a int, PRIMARY KEY (k1, k2));
INSERT INTO pairs SELECT chr(97 + g % 3), g / 3, CASE WHEN g % 4 = 0 THEN NULL ELSE g % 2 END
FROM generate_series(0, 59) AS g;
CREATE TABLE loose (a int, b text);  -- no key, duplicate rows
INSERT INTO loose SELECT g % 3, 'x' FROM generate_series(1, 30) AS g;
CREATE VIEW loose_view AS SELECT a, b FROM loose;
CREATE VIEW steps_view AS SELECT id, a FROM steps;
"""
DIRECTIONS = ["ASC", "DESC", "ASC_NULLS_FIRST", "ASC_NULLS_LAST", "DESC_NULLS_FIRST", "DESC_NULLS_LAST"]
TABLES = {"steps": ("steps", ["id", "a", "b", "c"]), "pairs": ("pairs", ["k1", "k2", "a"])}


@pytest.fixture(scope="module")
def keyset_server() -> Iterator[Server]:
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    with psycopg.connect(database_url(DATABASE), autocommit=True) as conn:
        conn.execute(SETUP)
    running = start_server(database_url(DATABASE))
    yield running
    stop_server(running)


def graphql(server: Server, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(server.url + "/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    assert response.status_code in (200, 400), response.text
    body: dict[str, Any] = orjson.loads(response.content)
    return body


def test_lists_without_a_unique_order_offer_no_cursor(keyset_server: Server) -> None:
    schema = graphql(keyset_server, "{ __schema { queryType { fields { name args { name } } } "
                                    "types { name fields { name } } } }")["data"]["__schema"]
    args = {f["name"]: {a["name"] for a in f["args"]} for f in schema["queryType"]["fields"]}
    fields = {t["name"]: {f["name"] for f in t["fields"] or []} for t in schema["types"]}
    assert "after" in args["steps"] and "after" in args["pairs"]
    assert "_cursor" in fields["Step"] and "_cursor" in fields["Pair"]
    for list_field, type_name in (("loose", "Loose"), ("looseView", "LooseView"), ("stepsView", "StepsView")):
        assert list_field in args, sorted(args)
        assert "after" not in args[list_field] and "_cursor" not in fields[type_name]
        refused = graphql(keyset_server, f'{{ {list_field}(after: "W10=") {{ a }} }}')
        assert refused.get("data") is None and "after" in refused["errors"][0]["message"]
        refused = graphql(keyset_server, f"{{ {list_field} {{ a _cursor }} }}")
        assert refused.get("data") is None and "_cursor" in refused["errors"][0]["message"]


def sql_rows(table: str, columns: list[str], where: tuple[str, int] | None) -> list[dict[str, Any]]:
    with psycopg.connect(database_url(DATABASE)) as conn:
        condition = f" WHERE {where[0]} > {int(where[1])}" if where else ""
        pairs = ", ".join(f"'{c}', {c}" for c in columns)
        rows = conn.execute(f"SELECT json_build_object({pairs}) FROM {table}{condition}").fetchall()
    return [orjson.loads(orjson.dumps(row)) for (row,) in rows]


def canonical(rows: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps({k: (float(v) if k == "c" and v is not None else v) for k, v in r.items()},
                               option=orjson.OPT_SORT_KEYS) for r in rows)


ORDERS = st.lists(st.tuples(st.sampled_from(["id", "a", "b", "c", "k1", "k2"]), st.sampled_from(DIRECTIONS)),
                  max_size=3, unique_by=lambda o: o[0])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.sampled_from(sorted(TABLES)), order=ORDERS, page=st.integers(1, 17),
       where=st.none() | st.tuples(st.sampled_from(["a"]), st.integers(-1, 1)))
def test_pages_by_after_are_the_whole_answer_once(keyset_server: Server, table: str,
                                                  order: list[tuple[str, str]], page: int,
                                                  where: tuple[str, int] | None) -> None:
    list_field, columns = TABLES[table]
    order = [(c, d) for c, d in order if c in columns]
    order_gql = ", ".join(f"{{{c}: {d}}}" for c, d in order)
    where_gql = f"where: {{{where[0]}: {{gt: {where[1]}}}}}, " if where else ""
    selection = " ".join(columns)
    whole = graphql(keyset_server, f"{{ {list_field}({where_gql}orderBy: [{order_gql}]) {{ {selection} _cursor }} }}")
    assert "errors" not in whole, whole
    expected = whole["data"][list_field]
    seen: list[dict[str, Any]] = []
    after: str | None = None
    query = (f"query Page($after: String) {{ {list_field}({where_gql}orderBy: [{order_gql}], limit: {page}, "
             f"after: $after) {{ {selection} _cursor }} }}")
    for _ in range(len(expected) + 2):
        body = graphql(keyset_server, query, {"after": after})
        assert "errors" not in body, body
        rows = body["data"][list_field]
        if not rows:
            break
        seen.extend(rows)
        after = rows[-1]["_cursor"]
    if not order:  # no ordering asked for: the unpaged answer may come in any order; pages go by key
        seen, expected = canonical(seen), canonical(expected)  # type: ignore[assignment]
    assert seen == expected, "the pages differ from the unpaged answer (a row dropped, repeated or moved)"
    strip = [{k: v for k, v in r.items() if k != "_cursor"} for r in whole["data"][list_field]]
    assert canonical(strip) == canonical(sql_rows(table, columns, where))
