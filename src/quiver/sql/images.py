"""Plan -> SQL over events' row images: which subscriptions a change matches, and its JSON.

A subscription's ``where`` and selection are the query language's, so they compile with the
JSON compiler's own parts, over rows rebuilt from the images (``jsonb_populate_record`` of the
table's row type) instead of the table. Filters and values then mean exactly what they mean in
a query, type by type; relations in a filter or a selection are read from the tables by key,
in the same statement for the whole batch (no N+1).

Two statements per batch of one entity's events:

* ``match_statement``: one row per (image, subscription) that matches, for every
  subscription with a filter at once (one ``LATERAL (VALUES ...)`` row per subscription).
* ``SelectionTemplate.statement``: the JSON text of each matched image for one selection.

The images travel as one JSON array parameter (their ``to_jsonb`` text, as captured).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from quiver.plan import nodes
from quiver.schema.model import Entity, Kind, PgType
from quiver.sql.columns import select_typed
from quiver.sql.expr import ROW, Scope, where_sql
from quiver.sql.json import select_list
from quiver.sql.params import Params, PlaceholderParams

ROW_ALIAS = "t1"  # the rebuilt row; the scope's first alias, so inner aliases (t2, ...) never collide
_EVENT = '"quiver event"'  # (d: image text, n: ordinal) — a space: no GraphQL key or t-alias can be it
_MATCH = '"quiver match"'
_BIGINT = PgType(kind=Kind.BIGINT, sql="bigint")
_TEXT = PgType(kind=Kind.TEXT, sql="text")


def _rows(entity: Entity, images: str, ordinals: str | None) -> str:
    """FROM clause: each image with its ordinal, and the table row it stands for as ``t1``."""
    elements = f"jsonb_array_elements(CAST({images} AS jsonb))"
    source = (f"{elements} WITH ORDINALITY AS {_EVENT}(d, n)" if ordinals is None
              else f"ROWS FROM ({elements}, unnest({ordinals})) AS {_EVENT}(d, n)")
    return (f"FROM {source} CROSS JOIN LATERAL jsonb_populate_record(CAST(NULL AS {entity.qualified}), "
            f"{_EVENT}.d) AS {ROW_ALIAS}")


def _images(params: PlaceholderParams, images: list[str]) -> str:
    """The images as one JSON array parameter: one string to send, where a ``text[]`` costs a dump per image."""
    return params.raw("[" + ",".join(images) + "]")


@dataclass(frozen=True)
class Fragment:
    """SQL with placeholder marks and the values they stand for, in text order."""

    sql: str
    values: tuple[Any, ...]


def where_fragment(where: nodes.Filter) -> Fragment:
    """A subscription's filter as a boolean expression over ``t1``."""
    params = PlaceholderParams()
    scope = Scope(params, counter=1)
    return Fragment(where_sql(where, ROW_ALIAS, scope), tuple(params.values))


def match_statement(entity: Entity, filters: Sequence[Fragment], images: list[str]) -> tuple[str, list[Any]]:
    """(ordinal of the image, 1-based index into ``filters``) of every match; ``filters`` must not be empty."""
    params = PlaceholderParams()
    source = _rows(entity, _images(params, images), None)
    values: list[Any] = list(params.values)
    cases = []
    for index, fragment in enumerate(filters, 1):
        cases.append(f"({index}, {fragment.sql})")
        values.extend(fragment.values)
    sql = (f"SELECT {_EVENT}.n, {_MATCH}.i {source} CROSS JOIN LATERAL (VALUES {', '.join(cases)}) "
           f"AS {_MATCH}(i, m) WHERE {_MATCH}.m")
    return PlaceholderParams.render(sql), values


@dataclass(frozen=True)
class SelectionTemplate:
    """One selection's statement, waiting for its images: subscriptions with equal templates share it."""

    entity: Entity
    columns: str  # the select list over t1, with placeholder marks
    values: tuple[Any, ...]

    @classmethod
    def of(cls, entity: Entity, selection: nodes.Selection) -> SelectionTemplate:
        params = PlaceholderParams()
        columns = select_list(selection, entity, ROW_ALIAS, Scope(params, counter=1), ())
        return cls(entity, columns, tuple(params.values))

    @cached_property
    def key(self) -> str:
        """Equal for equal statements (the select list and its values)."""
        return self.columns + "\x00" + json.dumps(self.values, default=str)

    def statement(self, images: list[str], ordinals: list[int]) -> tuple[str, list[Any]]:
        """(ordinal, JSON text of the selection) of each image."""
        params = PlaceholderParams()
        images_sql, ordinals_sql = _images(params, images), params.array(ordinals, _BIGINT)
        rendered = f"(SELECT CAST(row_to_json({ROW}.*) AS text) FROM (SELECT {self.columns}) AS {ROW})"
        sql = f"SELECT {_EVENT}.n, {rendered} {_rows(self.entity, images_sql, ordinals_sql)}"
        return PlaceholderParams.render(sql), [*self.values, *params.values]


def typed_rows(entity: Entity, images: list[str], params: Params) -> str:
    """The images as the Arrow plane's typed columns (``sql/columns.py``) of a whole-row read, in order.

    What a live dataset stores: an event's row converted by the same SQL as a table read,
    so a live answer holds exactly the values a PostgreSQL answer would.
    """
    scope = Scope(params, counter=1)
    columns = select_typed(nodes.whole_row(entity), entity, ROW_ALIAS, scope, ())
    source = _rows(entity, params.value("[" + ",".join(images) + "]", _TEXT), None)
    return f"SELECT {columns} {source} ORDER BY {_EVENT}.n"
