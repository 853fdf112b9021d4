"""The documented read's one shape: ``VisibleEvent`` tuples, their order, and their Arrow form."""

from __future__ import annotations

import pyarrow as pa
import pytest

from quiver.events.sinks.base import VISIBLE_FIELDS, VISIBLE_SCHEMA, VisibleEvent, by_seq, visible_rows, visible_table

ROWS: list[VisibleEvent] = [
    ("b", 2, "orders", "2", "update", 1_714_557_600_000_002, '{"id": 2}', ["note"], "alice", None),
    ("a", 2, "orders", "1", "insert", -1, "", [], None, "t1"),
    ("c", 2**63 - 1, "", "", "delete", 0, "日本語 ✓", ["", "ü"], "", ""),
]


def test_rows_are_ordered_by_seq_then_event_id() -> None:
    assert [row[0] for row in by_seq(ROWS)] == ["a", "b", "c"]


def test_the_arrow_form_round_trips() -> None:
    table = visible_table(ROWS)
    assert table.schema == VISIBLE_SCHEMA and tuple(table.column_names) == VISIBLE_FIELDS
    assert visible_rows(table) == ROWS
    assert visible_rows(visible_table([])) == []


def test_rows_are_read_by_position_and_a_missing_list_is_empty() -> None:
    """A sink's query names its columns as it likes (``toString(event_id)``): position is what counts."""
    table = visible_table(ROWS[:1]).rename_columns([f"c{i}" for i in range(len(VISIBLE_FIELDS))])
    assert visible_rows(table) == ROWS[:1]
    nulled = table.set_column(7, "c7", pa.array([None], pa.list_(pa.string())))
    assert visible_rows(nulled)[0][7] == []
    with pytest.raises(ValueError, match="10"):
        visible_rows(table.drop_columns(["c9"]))
