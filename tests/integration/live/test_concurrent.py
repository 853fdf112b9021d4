"""Parity under concurrent writes: every live answer equals PostgreSQL's table at the answer's watermark.

A writer changes ``ledger`` in small random transactions (updates, inserts, deletes, key
changes, many-row updates, now and then a TRUNCATE and a reload) and records, after each
commit, the table's state under that transaction's highest outbox seq. Meanwhile reads go to
the live server, ``fresh`` and not. Each answer's watermark ``W`` must be exactly a recorded
transaction's seq (no transaction seen in part) and its rows must equal the state recorded
at ``W``, row for row; a ``fresh`` answer must also include every transaction committed before
the read began.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from tests.integration.live.conftest import (
    LEDGER,
    LEDGER_QUERY,
    Writer,
    read,
    start_stack,
    stop_stack,
    table_rows,
    watermark,
)

READS = 60


def test_every_live_answer_equals_the_table_at_its_watermark_while_a_writer_runs(
        scratch_url: str, tmp_path: Path) -> None:
    with psycopg.connect(scratch_url) as conn:
        for statement in LEDGER:
            conn.execute(statement)  # test-written SQL
    stack = start_stack(scratch_url, tmp_path, ["ledger"], plain=False)
    try:
        first = read(stack.live, LEDGER_QUERY, fresh=True)
        writer = Writer(scratch_url, seed=1)
        start_watermark = watermark(first)
        assert start_watermark is not None
        writer.states[start_watermark] = table_rows(scratch_url, "ledger")
        assert first.to_pylist() == writer.states[start_watermark]
        writer.start()
        answers: list[tuple[bool, int, int | None, list[dict[str, Any]]]] = []
        deadline = time.monotonic() + 120
        while len(answers) < READS and time.monotonic() < deadline:
            fresh = len(answers) % 2 == 0
            committed = writer.last_seq
            table = read(stack.live, LEDGER_QUERY, fresh=fresh)
            answers.append((fresh, committed, watermark(table), table.to_pylist()))
        writer.stop()
        assert len(answers) == READS
        assert writer.commits >= 20, writer.commits
        live = [a for a in answers if a[2] is not None]
        assert len(live) == READS, "a read went to PostgreSQL"
        for fresh, committed, seen, rows in live:
            assert seen is not None
            if fresh:
                assert seen >= committed, f"a fresh read missed a transaction committed before it: {seen} < {committed}"
            assert seen in writer.states, f"watermark {seen} is not the end of a transaction: one was seen in part"
            assert rows == writer.states[seen], f"at watermark {seen}"
        assert len({a[2] for a in live}) > 5, "the reads did not see the table move"
        final = read(stack.live, LEDGER_QUERY, fresh=True)
        assert final.to_pylist() == table_rows(scratch_url, "ledger")
    finally:
        stop_stack(stack)
