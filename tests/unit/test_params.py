"""Values reach PostgreSQL as parameters, in their exact text forms."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quiver.schema.model import Kind, PgType
from quiver.sql.params import BadValue, PlaceholderParams, SettingParams, text_form

TEXT = PgType(Kind.TEXT, "text")
JSONB = PgType(Kind.JSON, "jsonb", jsonb=True)
INT8 = PgType(Kind.BIGINT, "bigint")


def test_text_forms_are_exact() -> None:
    assert text_form(2**63 - 1, INT8) == "9223372036854775807"
    assert text_form(Decimal("0.1000"), PgType(Kind.NUMERIC, "numeric")) == "0.1000"
    assert text_form(True, PgType(Kind.BOOL, "boolean")) == "true"
    assert text_form(b"\x00\xff", PgType(Kind.BYTEA, "bytea")) == "\\x00ff"
    assert text_form({"a": [1, "é"]}, JSONB) == '{"a": [1, "é"]}'
    assert text_form(None, TEXT) is None


def test_nul_characters_are_refused_before_sql() -> None:
    with pytest.raises(BadValue):
        text_form("a\x00b", TEXT)


def test_setting_params_keep_values_out_of_sql_text() -> None:
    params = SettingParams()
    hostile = "x'); DROP TABLE orders; --"
    sql = params.value(hostile, TEXT)
    assert hostile not in sql
    assert params.settings == [("quiver.p1", hostile)]
    assert "current_setting('quiver.p1')" in sql


def test_placeholder_params_render_for_psycopg() -> None:
    params = PlaceholderParams()
    sql = f"SELECT {params.value('50%', TEXT)} LIKE '%'"
    assert PlaceholderParams.render(sql) == "SELECT CAST(%s AS text) LIKE '%%'"
    assert params.values == ["50%"]


def test_string_typed_columns_with_an_own_order_compare_in_their_type() -> None:
    from quiver.sql.expr import compares_in_own_type

    for sql_type in ("inet", "cidr", "money", "macaddr", "bit(3)", "bit varying(8)"):
        assert compares_in_own_type(PgType(Kind.OTHER, sql_type)), sql_type
    assert not compares_in_own_type(PgType(Kind.OTHER, "point"))
    params = SettingParams()
    assert params.value("10.0.0.1", PgType(Kind.OTHER, "inet")) == "(SELECT CAST(current_setting('quiver.p1') AS inet))"
