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
    LiveStack,
    Writer,
    read,
    start_stack,
    stop_stack,
    table_rows,
    watermark,
)

READS = 60
Answer = tuple[bool, int, int | None, list[dict[str, Any]]]


def read_while_writing(stack: LiveStack, writer: Writer, reads: int) -> list[Answer]:
    """``reads`` answers, alternately fresh, with the writer's last commit before each."""
    answers: list[Answer] = []
    deadline = time.monotonic() + 120
    while len(answers) < reads and time.monotonic() < deadline:
        fresh = len(answers) % 2 == 0
        committed = writer.last_seq
        table = read(stack.live, LEDGER_QUERY, fresh=fresh)
        answers.append((fresh, committed, watermark(table), table.to_pylist()))
    return answers


def check(answers: list[Answer], writer: Writer, reads: int) -> None:
    """Each answer live, at the end of a recorded transaction, equal to the table there; fresh ones current."""
    assert len(answers) == reads
    assert all(seen is not None for _, _, seen, _ in answers), "a read went to PostgreSQL"
    for fresh, committed, seen, rows in answers:
        assert seen is not None
        if fresh:
            assert seen >= committed, f"a fresh read missed a transaction committed before it: {seen} < {committed}"
        assert seen in writer.states, f"watermark {seen} is not the end of a transaction: one was seen in part"
        assert rows == writer.states[seen], f"at watermark {seen}"


def ledger(url: str) -> None:
    with psycopg.connect(url) as conn:
        for statement in LEDGER:
            conn.execute(statement)  # test-written SQL


def test_every_live_answer_equals_the_table_at_its_watermark_while_a_writer_runs(
        scratch_url: str, tmp_path: Path) -> None:
    ledger(scratch_url)
    stack = start_stack(scratch_url, tmp_path, ["ledger"], plain=False)
    try:
        first = read(stack.live, LEDGER_QUERY, fresh=True)
        writer = Writer(scratch_url, seed=1)
        start_watermark = watermark(first)
        assert start_watermark is not None
        writer.states[start_watermark] = table_rows(scratch_url, "ledger")
        assert first.to_pylist() == writer.states[start_watermark]
        writer.start()
        answers = read_while_writing(stack, writer, READS)
        writer.stop()
        assert writer.commits >= 20, writer.commits
        check(answers, writer, READS)
        assert len({a[2] for a in answers}) > 5, "the reads did not see the table move"
        final = read(stack.live, LEDGER_QUERY, fresh=True)
        assert final.to_pylist() == table_rows(scratch_url, "ledger")
    finally:
        stop_stack(stack)


def test_a_dataset_loaded_while_a_writer_never_pauses_becomes_live_and_stays_equal(
        scratch_url: str, tmp_path: Path) -> None:
    """The load and the catch-up happen under writes that never leave the stream idle (the dataset
    once waited for an empty read to call itself live, and never did)."""
    ledger(scratch_url)
    writer = Writer(scratch_url, seed=3)
    stack = start_stack(scratch_url, tmp_path, ["ledger"], plain=False, installed=writer.start)
    try:
        answers = read_while_writing(stack, writer, 20)
        writer.stop()
        check(answers, writer, 20)
        final = read(stack.live, LEDGER_QUERY, fresh=True)
        assert final.to_pylist() == table_rows(scratch_url, "ledger")
    finally:
        if writer.is_alive():
            writer.stop()
        stop_stack(stack)
