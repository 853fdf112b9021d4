"""Placeholders found and cast, and the look-alikes left alone (the generated test asks PostgreSQL)."""

from __future__ import annotations

import pytest

from quiver.flight.sql.placeholders import cast_placeholders, placeholders


@pytest.mark.parametrize(("sql", "found"), [
    ("SELECT $1, $2", [1, 2]),
    ("SELECT '$1', $2", [2]),
    ("SELECT E'\\'$1', $2", [2]),
    ("SELECT 'it''s $1', $12", [12]),
    ("SELECT $$ $1 $$, $q$ $2 $q$, $3", [3]),
    ('SELECT 1 AS "a$1", a$1, $4', [4]),
    ("SELECT 1 -- $1\n, $2 /* $3 /* $4 */ $5 */ , $6", [2, 6]),
    ("SELECT name'$1', $2", [2]),
    ("SELECT '$1", []),
])
def test_placeholders(sql: str, found: list[int]) -> None:
    assert [n for _, _, n in placeholders(sql)] == found


def test_cast_rewrites_only_the_named() -> None:
    assert cast_placeholders("SELECT $1, '$1', $2", {1: "numeric"}) == "SELECT ($1::text::numeric), '$1', $2"
    assert cast_placeholders("SELECT $1", {}) == "SELECT $1"
