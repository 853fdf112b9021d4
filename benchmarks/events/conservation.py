"""Conservation: after the load, the outbox against every sink's documented read (none missing, none twice,
none altered), and the consumers' Redis dedup entries of the run's events counted and removed; a rate is
worth nothing if events were lost on the way."""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from benchmarks.events.pipeline import BenchPipeline
from quiver.events.capture import OUTBOX
from quiver.events.sinks.clickhouse import ClickHouseSink
from tests.support.oracle import SOURCE_SQL, compare


@dataclass
class OracleResult:
    """What the oracle compared, and every difference it found (none: clean)."""

    events: int
    visible: dict[str, int]  # per sink, events its documented read returns
    problems: list[str]
    seconds: float

    @property
    def clean(self) -> bool:
        return not self.problems


def conservation(pipeline: BenchPipeline, chunk: int = 250_000) -> OracleResult:
    """``oracle.compare`` of the outbox and every sink's documented read, as ``Pipeline.check`` does.

    One ``seq`` range of the outbox at a time (a long run's events need not fit in memory twice),
    compared with ClickHouse's FINAL view of that range and with the slice of the search sink's
    ``visible_events()`` (read once: it has no range query), so each source range is read once.
    """
    started = time.monotonic()
    search = pipeline.search_rows() if "search" in pipeline.sinks else None  # refreshed first, sorted by seq
    search_seqs = [int(r[1]) for r in search or ()]
    clickhouse = ClickHouseSink(pipeline.clickhouse, pipeline.namespace) if "clickhouse" in pipeline.sinks else None
    source_sql = f"SELECT * FROM ({SOURCE_SQL}) AS s WHERE seq BETWEEN %s AND %s ORDER BY seq"
    problems: list[str] = []
    visible: dict[str, int] = {}

    async def clickhouse_rows(sink: ClickHouseSink, low: int, high: int) -> list[tuple[Any, ...]]:
        text = await sink.query(f"{sink.visible_events_sql()} WHERE seq BETWEEN {low} AND {high} FORMAT JSONCompact")
        return [(e, int(s), en, ei, op, int(us), d, ch, a, t) for e, s, en, ei, op, us, d, ch, a, t
                in orjson.loads(text)["data"]]

    async def clickhouse_count(sink: ClickHouseSink, where: str) -> int:
        text = await sink.query(f"SELECT count() FROM {pipeline.namespace}.events FINAL {where} FORMAT TSV")
        return int(text.strip())

    async def check() -> int:
        try:
            with psycopg.connect(pipeline.database_url) as conn:
                row = conn.execute(f"SELECT coalesce(min(seq), 1), coalesce(max(seq), 0), count(*) FROM {OUTBOX}"
                                   ).fetchone()
                assert row is not None
                low, high, total = (int(x) for x in row)
                for first in range(low, high + 1, chunk):
                    last = min(high, first + chunk - 1)
                    source = [tuple(r) for r in conn.execute(source_sql, (first, last)).fetchall()]
                    found = []
                    if clickhouse is not None:
                        found += compare(source, await clickhouse_rows(clickhouse, first, last), "clickhouse")
                    if search is not None:
                        part = search[bisect.bisect_left(search_seqs, first):bisect.bisect_right(search_seqs, last)]
                        found += compare(source, part, "search")
                    problems.extend(f"seq {first}..{last}: {p}" for p in found)
            outside: dict[str, int] = {}
            if clickhouse is not None:
                outside["clickhouse"] = await clickhouse_count(clickhouse, f"WHERE seq < {low} OR seq > {high}")
                visible["clickhouse"] = await clickhouse_count(clickhouse, "")
            if search is not None:
                outside["search"] = (bisect.bisect_left(search_seqs, low)
                                     + len(search_seqs) - bisect.bisect_right(search_seqs, high))
                visible["search"] = len(search)
            problems.extend(f"{sink}: {n} events outside the outbox's seq range {low}..{high}"
                            for sink, n in outside.items() if n)
            return total
        finally:
            if clickhouse is not None:
                await clickhouse.close()

    total = asyncio.run(check())
    return OracleResult(total, {sink: visible[sink] for sink in pipeline.sinks if sink in visible}, problems,
                        time.monotonic() - started)


def forget_dedup_entries(url: str, database_url: str, sink: str = "clickhouse") -> int:
    """Remove this run's event ids from the consumer's Redis dedup sets (shared per sink; they would expire)."""
    from redis import Redis

    with psycopg.connect(database_url) as conn:
        ids = [r[0] for r in conn.execute(f"SELECT event_id::text FROM {OUTBOX}").fetchall()]
    client = Redis.from_url(url, socket_timeout=30)
    removed = 0
    try:
        for key in client.scan_iter(match=f"quiver:dedup:{sink}:*", count=10_000, _type="set"):
            for i in range(0, len(ids), 10_000):
                removed += int(client.srem(key, *ids[i:i + 10_000]))
    finally:
        client.close()
    return removed
