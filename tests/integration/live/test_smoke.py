"""A live table answers like PostgreSQL and follows inserts, updates, key changes, deletes and TRUNCATE."""

from __future__ import annotations

from tests.integration.live.conftest import LiveStack, read, watermark, without_freshness

QUERY = "{ things(orderBy: [{id: ASC}]) { id kind n note } }"


def test_a_live_answer_equals_the_postgresql_answer_after_every_kind_of_change(things: LiveStack) -> None:
    assert things.plain is not None
    first = read(things.live, QUERY)
    assert watermark(first) is not None, first.schema.metadata
    assert first.equals(read(things.plain, QUERY)) or first.to_pylist() == read(things.plain, QUERY).to_pylist()
    things.sql("UPDATE things SET note = 'x' || id WHERE id % 3 = 0",
               "UPDATE things SET id = id + 1000 WHERE id = 5",
               "DELETE FROM things WHERE id = 7",
               "INSERT INTO things VALUES (9999, 'c', NULL, 'new')")
    after = read(things.live, QUERY, fresh=True)
    plain = read(things.plain, QUERY)
    assert without_freshness(after.schema) == plain.schema
    assert after.to_pylist() == plain.to_pylist()
    things.sql("TRUNCATE things", "INSERT INTO things VALUES (1, 'a', 1, 'after')")
    after = read(things.live, QUERY, fresh=True)
    assert after.to_pylist() == [{"id": 1, "kind": "a", "n": 1, "note": "after"}]
