"""The conservation oracle: does a sink hold exactly the source's events?

Source = the outbox (every event ever captured, while retention keeps it). A sink
passes when it holds the same set of event ids, none twice in its documented
query, each with an equal payload, so that every entity's history can be read back
in ``seq`` order. Used by the pipeline, kill and chaos tests and the benchmark.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg

from quiver.events.capture import OUTBOX
from quiver.events.sinks.base import VISIBLE_FIELDS, Sink, VisibleEvent

# The columns both sides are compared on, in this order: a sink's documented read (``Sink.visible_events``).
FIELDS = VISIBLE_FIELDS

SOURCE_SQL = f"""
SELECT event_id::text, seq, entity, entity_id, op,
       CAST(floor(extract(epoch FROM occurred_at) * 1000000) AS bigint), data::text,
       coalesce(changed, '{{}}'), actor, tenant_id
FROM {OUTBOX} ORDER BY seq
"""


def source_events(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(SOURCE_SQL).fetchall()]


async def sink_events(sink: Sink) -> list[VisibleEvent]:
    """What ``sink`` holds, through its documented read (then closed)."""
    try:
        return await sink.visible_events()
    finally:
        await sink.close()


def _normal(row: Sequence[Any]) -> tuple[Any, ...]:
    event_id, seq, entity, entity_id, op, occurred, data, changed, actor, tenant = row
    return (str(event_id), int(seq), entity, entity_id, op, int(occurred), data, tuple(changed or ()), actor, tenant)


def compare(source: Sequence[Sequence[Any]], sink: Sequence[Sequence[Any]], name: str = "sink") -> list[str]:
    """Every way ``sink`` differs from ``source``; empty when the sink is exact."""
    problems = []
    wanted = {r[0]: r for r in map(_normal, source)}
    got_rows = [_normal(r) for r in sink]
    counts = Counter(r[0] for r in got_rows)
    twice = [e for e, n in counts.items() if n > 1]
    if twice:
        problems.append(f"{name}: {len(twice)} events visible more than once, e.g. {twice[:3]}")
    got = {r[0]: r for r in got_rows}
    missing = wanted.keys() - got.keys()
    extra = got.keys() - wanted.keys()
    if missing:
        problems.append(f"{name}: {len(missing)} events missing, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{name}: {len(extra)} events not in the source, e.g. {sorted(extra)[:3]}")
    differing = [e for e in wanted.keys() & got.keys() if wanted[e] != got[e]]
    if differing:
        example = differing[0]
        problems.append(f"{name}: {len(differing)} events differ, e.g. {wanted[example]} != {got[example]}")
    by_entity: dict[tuple[str, str], list[int]] = {}
    for row in sorted(got.values(), key=lambda r: r[1]):
        by_entity.setdefault((row[2], row[3]), []).append(row[1])
    for key, seqs in by_entity.items():
        if seqs != sorted(set(seqs)):
            problems.append(f"{name}: history of {key} is not ordered by seq")
            break
    return problems
