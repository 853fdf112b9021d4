"""The placeholder lexer agrees with PostgreSQL's on generated SQL full of look-alikes.

Each statement mixes real ``$n`` parameters with ``$n`` inside standard, ``E''`` and dollar-quoted
strings, quoted identifiers, identifiers containing ``$``, and both kinds of comment. PostgreSQL is
the oracle: the statement run with its parameters bound must give the same columns and values as
the statement with every placeholder the lexer found replaced by the bound value itself. A missed
placeholder leaves a parameter nobody binds (an error); a false one changes a string.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.pq import ExecStatus

from quiver.flight.sql.placeholders import cast_placeholders, placeholders

CHARS = st.sampled_from(list("ab e$1234'\"\\-*/\n;xé"))
TEXT = st.text(CHARS, max_size=12)


@st.composite
def string_constant(draw: st.DrawFn) -> str:
    body = draw(TEXT)
    kind = draw(st.sampled_from(["standard", "escape", "dollar", "unicode"]))
    if kind == "standard":
        return "'" + body.replace("'", "''") + "'"
    if kind == "unicode":
        return "U&'" + body.replace("'", "''").replace("\\", "\\\\") + "'"
    if kind == "escape":
        return "E'" + body.replace("\\", "\\\\").replace("'", "\\'") + "'"
    tag = draw(st.sampled_from(["", "q", "t1"]))
    if f"${tag}$" in body + "$" or body.endswith("$"):
        body = body.replace("$", "")
    return f"${tag}${body}${tag}$"


@st.composite
def alias(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return '"' + draw(TEXT.filter(lambda t: "\x00" not in t and t.strip() != "")).replace('"', '""') + '"'
    return draw(st.from_regex(r"[a-z][a-z0-9$]{0,6}", fullmatch=True))


@st.composite
def comment(draw: st.DrawFn) -> str:
    body = draw(TEXT)
    if draw(st.booleans()):
        return "-- " + body.replace("\n", " ") + "\n"
    return "/* " + body.replace("*/", "").replace("/*", "").replace("/", "") + " */"


@st.composite
def statement(draw: st.DrawFn) -> tuple[str, int]:
    count = draw(st.integers(1, 3))
    items = []
    for _ in range(draw(st.integers(1, 6))):
        expression = draw(st.one_of(st.integers(1, count).map(lambda n: f"${n}::int"), string_constant()))
        named = f"{expression} AS {draw(alias())}" if draw(st.booleans()) else expression
        items.append(named + (draw(comment()) if draw(st.booleans()) else ""))
    items += [f"${n}::int AS p{n}" for n in range(1, count + 1)]  # every parameter is used
    return "SELECT " + ", ".join(items), count


Row = tuple[Any, ...]


def run(pg: psycopg.Connection[Row], sql: str, parameters: list[bytes]) -> tuple[list[bytes | None], list[Any]]:
    result = pg.pgconn.exec_params(sql.encode(), parameters)
    assert result.status == ExecStatus.TUPLES_OK, (sql, result.error_message)
    names = [result.fname(i) for i in range(result.nfields)]
    return names, [result.get_value(0, i) for i in range(result.nfields)]


@pytest.fixture(scope="module")
def pg(sql_url: str) -> Iterator[psycopg.Connection[Row]]:
    with psycopg.connect(sql_url, autocommit=True) as connection:
        yield connection


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=statement())
def test_the_lexer_finds_what_postgres_binds(pg: psycopg.Connection[Row], case: tuple[str, int]) -> None:
    sql, count = case
    values = [str(1_000_000 + n).encode() for n in range(1, count + 1)]
    expected = run(pg, sql, values)
    inlined, last = [], 0
    for start, end, n in placeholders(sql):
        inlined += [sql[last:start], f"({1_000_000 + n})"]
        last = end
    assert run(pg, "".join(inlined) + sql[last:], []) == expected
    casted = cast_placeholders(sql, {n: "integer" for n in range(1, count + 1)})
    assert run(pg, casted, values) == expected
