"""The fold of events into table state: what every sink's current-rows read must equal.

Events of one entity in ``seq`` order: ``insert`` and ``update`` set the row under its
``entity_id``, ``delete`` removes it, ``truncate`` removes every row. The result is
compared with the table as a multiset of rows (each row's jsonb, canonical JSON), so the
comparison needs no knowledge of the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import psycopg
from psycopg import sql


def canonical(row: Mapping[str, Any] | str) -> str:
    """A row (a dict, or its JSON text) as JSON with sorted keys."""
    value = orjson.loads(row) if isinstance(row, str) else row
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def fold(events: Iterable[tuple[int, str, str, Mapping[str, Any] | str]]) -> list[str]:
    """``(seq, entity_id, op, data)`` of one entity → its rows (canonical JSON, sorted)."""
    rows: dict[str, str] = {}
    for _seq, entity_id, op, data in sorted(events, key=lambda e: e[0]):
        if op == "truncate":
            rows.clear()
        elif op == "delete":
            rows.pop(entity_id, None)
        elif op in ("insert", "update", "snapshot"):
            rows[entity_id] = canonical(data)
        else:
            raise ValueError(f"unknown op {op!r}")
    return sorted(rows.values())


def outbox_events(conn: psycopg.Connection[Any], entity: str) -> list[tuple[int, str, str, Any]]:
    return conn.execute("SELECT seq, entity_id, op, data FROM quiver.outbox WHERE entity = %s ORDER BY seq",
                        (entity,)).fetchall()


def table_rows(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    query = sql.SQL("SELECT to_jsonb(t.*) FROM {}.{} AS t").format(sql.Identifier(schema), sql.Identifier(table))
    return sorted(canonical(row) for (row,) in conn.execute(query).fetchall())
