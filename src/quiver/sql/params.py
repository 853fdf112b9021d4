"""How values reach PostgreSQL: never spliced into SQL text.

The compilers ask a binder for an SQL expression standing for a value. Two binders:

* ``PlaceholderParams`` for psycopg: ``%s`` placeholders, values sent as bind parameters.
* ``SettingParams`` for COPY (the ADBC fast path, which cannot bind parameters to
  COPY): each value is sent beforehand as a bind parameter of ``set_config`` into a
  transaction-local setting, and the query reads it back with ``current_setting``.

Either way the SQL text holds only catalog identifiers and constants we generate.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any

from graphql import GraphQLError

from quiver.schema.model import Kind, PgType


class BadValue(GraphQLError):
    """A client value PostgreSQL cannot take (reported as a GraphQL error)."""


def text_form(value: Any, pg_type: PgType) -> str | None:
    """PostgreSQL's text input form of one coerced GraphQL value."""
    if value is None:
        return None
    if pg_type.kind is Kind.JSON:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise BadValue("strings cannot contain the NUL character (U+0000)")
        return value
    raise BadValue(f"unsupported value {value!r}")


class Params(ABC):
    """Collects values; returns typed SQL expressions that stand for them (two binders below)."""

    @abstractmethod
    def value(self, value: Any, pg_type: PgType, sql_type: str | None = None) -> str:
        """An SQL expression of type ``sql_type`` standing for ``value``."""

    @abstractmethod
    def array(self, values: list[Any], pg_type: PgType, sql_type: str | None = None) -> str:
        """An SQL array expression standing for ``values``."""


# Stands for a placeholder while SQL is built; NUL never occurs in identifiers.
_MARK = "\x00p\x00"


class PlaceholderParams(Params):
    """Placeholders with the values in ``self.values`` (psycopg); see ``render``."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def value(self, value: Any, pg_type: PgType, sql_type: str | None = None) -> str:
        self.values.append(text_form(value, pg_type))
        return f"CAST({_MARK} AS {sql_type or pg_type.scalar_sql})"

    def array(self, values: list[Any], pg_type: PgType, sql_type: str | None = None) -> str:
        self.values.append([text_form(v, pg_type) for v in values])
        return f"CAST(CAST({_MARK} AS text[]) AS {sql_type or pg_type.scalar_sql}[])"

    def raw(self, value: str) -> str:
        """A bare placeholder for ``value``, sent as it is (the caller casts it)."""
        self.values.append(value)
        return _MARK

    @staticmethod
    def render(sql: str) -> str:
        """psycopg's form: literal ``%`` doubled, placeholders as ``%s``."""
        return sql.replace("%", "%%").replace(_MARK, "%s")


class SettingParams(Params):
    """Values carried in transaction-local settings ``quiver.p1``, ``quiver.p2`` ..."""

    def __init__(self) -> None:
        self.settings: list[tuple[str, str]] = []

    def _add(self, text: str) -> str:
        name = f"quiver.p{len(self.settings) + 1}"
        self.settings.append((name, text))
        return f"current_setting('{name}')"

    def value(self, value: Any, pg_type: PgType, sql_type: str | None = None) -> str:
        text = text_form(value, pg_type)
        if text is None:
            return f"CAST(NULL AS {sql_type or pg_type.scalar_sql})"
        # A scalar subquery is evaluated once per statement, not once per row.
        return f"(SELECT CAST({self._add(text)} AS {sql_type or pg_type.scalar_sql}))"

    def array(self, values: list[Any], pg_type: PgType, sql_type: str | None = None) -> str:
        texts = json.dumps([text_form(v, pg_type) for v in values], ensure_ascii=False)
        ref = self._add(texts)
        # ARRAY(uncorrelated sub-select) is evaluated once, and unlike a scalar
        # sub-select it is an array expression, so `= ANY(...)` compares elements.
        return (f"CAST(ARRAY(SELECT json_array_elements_text(CAST({ref} AS json))) "
                f"AS {sql_type or pg_type.scalar_sql}[])")
