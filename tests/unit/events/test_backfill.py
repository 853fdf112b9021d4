"""The backfill's pure parts: the chunk plan and the chunk's one statement."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from quiver.events.backfill import _Pace, chunk_statement, plan_ranges


@given(pages=st.integers(0, 5_000), chunk_pages=st.integers(1, 600))
def test_the_plan_covers_every_page_once(pages: int, chunk_pages: int) -> None:
    ranges = plan_ranges(pages, chunk_pages)
    covered = [page for lo, hi in ranges for page in range(lo, hi)]
    assert covered == list(range(pages))
    assert all(0 < hi - lo <= chunk_pages for lo, hi in ranges)
    assert len(ranges) == -(-pages // chunk_pages)


def test_the_plan_of_an_empty_table_is_empty_and_chunks_have_pages() -> None:
    assert plan_ranges(0, 128) == []
    assert plan_ranges(5, 2) == [(0, 2), (2, 4), (4, 5)]
    with pytest.raises(ValueError):
        plan_ranges(10, 0)


def render(**kwargs: object) -> str:
    args = {"table": sql.SQL("public.t"), "entity": "sales.o'rders", "key_sql": "(x.d ->> 'id')", "lo": 128,
            "hi": 256, **kwargs}
    return chunk_statement(**args).as_string(None)  # type: ignore[arg-type]


def test_the_chunk_is_one_insert_select_over_a_tid_range_for_share() -> None:
    text = render()
    assert text.startswith("INSERT INTO quiver.outbox (entity, entity_id, op, data) SELECT 'sales.o''rders', "
                           "(x.d ->> 'id'), 'snapshot', x.d FROM (SELECT to_jsonb(t.*) AS d FROM ONLY public.t AS t")
    assert "WHERE t.ctid >= '(128,0)'::tid AND t.ctid < '(256,0)'::tid FOR SHARE OF t) AS x" in text
    assert ";" not in text


def test_the_filter_is_the_operators_sql_in_parentheses_percent_and_all() -> None:
    text = render(where="t.id % 10 = 0 OR t.name LIKE 'a%'")
    assert "t.ctid < '(256,0)'::tid AND (t.id % 10 = 0 OR t.name LIKE 'a%') FOR SHARE OF t" in text


def test_without_the_lock_only_for_the_negative_control() -> None:
    assert "FOR SHARE" not in render(lock=False)


def test_the_pace_spreads_rows_over_time_and_no_rate_means_no_wait() -> None:
    assert _Pace(None).delay(10**9) == 0.0
    pace = _Pace(1_000)
    first = pace.delay(5_000)  # 5 s of rows at once: wait for most of them
    assert 4.0 < first <= 5.0
    assert pace.delay(5_000) > first  # the rows so far add up
