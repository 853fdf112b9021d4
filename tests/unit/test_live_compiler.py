"""The live compiler (``sql/live.py``): what it answers in DuckDB, and what it refuses by type.

Its answers are compared with PostgreSQL's end to end by ``tests/integration/live/test_generated.py``;
these pin the refusals and the SQL shapes that matter for speed and meaning.
"""

from __future__ import annotations

import pytest

from quiver.plan import nodes
from quiver.schema.model import Column, Entity, Kind, PgType
from quiver.sql.live import LiveTable, NotLive, binary_collation, compile_live


def column(name: str, kind: Kind, sql: str, **type_options: object) -> Column:
    return Column(name, name, PgType(kind, sql, **type_options), True, False, False)  # type: ignore[arg-type]


ID = column("id", Kind.BIGINT, "bigint")
NAME = column("name", Kind.TEXT, "text")
TOTAL = column("total", Kind.NUMERIC, "numeric(12,2)", numeric_precision=12, numeric_scale=2)
LOOSE = column("loose", Kind.NUMERIC, "numeric")
STATUS = column("status", Kind.ENUM, "status", enum_labels=("zeta", "alpha"))
SPAN = column("span", Kind.OTHER, "interval")
ENTITY = Entity("public", "things", "Thing", "things", "thing", False,
                {c.name: c for c in (ID, NAME, TOTAL, LOOSE, STATUS, SPAN)}, ("id",))
TABLE = LiveTable("things")


def listing(**options: object) -> nodes.ListRoot:
    selection = (nodes.ScalarOut("id", ID), nodes.ScalarOut("name", NAME))
    return nodes.ListRoot("things", nodes.ListQuery(ENTITY, selection, **options))  # type: ignore[arg-type]


def test_a_plain_limit_streams_and_an_unordered_page_keeps_the_table_order() -> None:
    sql, params = compile_live(listing(limit=10), TABLE)
    assert sql == 'SELECT "id" AS "id", "name" AS "name" FROM "things" LIMIT 10' and params == []
    sql, _ = compile_live(listing(limit=10, offset=20), TABLE)
    assert sql.endswith("ORDER BY rowid LIMIT 10 OFFSET 20")


def test_filters_keep_three_valued_logic_and_travel_as_parameters() -> None:
    where = nodes.Not(nodes.Compare(TOTAL, "nin", ["1.50", None]))
    sql, params = compile_live(listing(where=where), TABLE)
    assert '(NOT ("total" IS NOT NULL AND NOT (CASE WHEN "total" IS NULL THEN NULL' in sql
    assert "CAST(? AS DECIMAL(12, 2)[])" in sql and params == [["1.50", None]]


@pytest.mark.parametrize(("where", "why"), [
    (nodes.Compare(NAME, "gt", "b"), "`gt` on name"),  # text order follows the collation
    (nodes.Compare(NAME, "ilike", "b%"), "`ilike` on name"),
    (nodes.Compare(STATUS, "lt", "alpha"), "`lt` on status"),  # label order, not text order
    (nodes.Compare(LOOSE, "eq", "1"), "`eq` on loose"),  # unconstrained numeric travels as text
    (nodes.Compare(SPAN, "eq", "P1D"), "`eq` on span"),
])
def test_comparisons_whose_meaning_differs_are_refused(where: nodes.Filter, why: str) -> None:
    with pytest.raises(NotLive, match=why):
        compile_live(listing(where=where), TABLE)


def test_text_orders_only_under_a_code_point_collation() -> None:
    order = (nodes.OrderKey(NAME, "ASC", "LAST"),)
    with pytest.raises(NotLive, match="ordering by name"):
        compile_live(listing(order=order), TABLE)
    sql, _ = compile_live(listing(order=order), LiveTable("things", binary_collation({"name": "C"})))
    assert sql.endswith('ORDER BY "name" ASC NULLS LAST')
    assert binary_collation({"a": "en_US.utf8", "b": "C.UTF-8", "c": "ucs_basic"}) == {"b", "c"}


def test_cursors_are_answered_by_postgresql() -> None:
    with pytest.raises(NotLive, match="cursor"):
        compile_live(listing(after=("1",)), TABLE)
