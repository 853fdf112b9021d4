"""A batch of one entity's events -> the messages each subscriber gets, in two statements per batch.

Filters run in PostgreSQL over the events' row images (``sql.images``): one statement
evaluates every subscriber's ``where`` on every image, then one statement per distinct
selection renders the matched images as JSON, reading related rows from the tables by key.
Both run in one read-only transaction, so a batch sees one state of the related rows (the
state when it is delivered, not when the change was made).

A message is a GraphQL execution result: ``{"data": {<key>: <row or null>}, "extensions":
{"op", "seq", "changed"}}``; the row is the new row for an insert or update, the old row for
a delete, and null for a truncate (every row of the entity is gone).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from quiver.sql.images import SelectionTemplate, match_statement
from quiver.sql.json import SESSION_SETTINGS
from quiver.subscriptions.subscriber import Batch, Event, Subscriber


def image(event: Event) -> str:
    """An event's row image as JSON text (the relay carries it as text; a resolved large event may be decoded)."""
    data = event.get("data")
    return data if isinstance(data, str) else orjson.dumps(data).decode()


def message(key: str, row: bytes, event: Event) -> bytes:
    extensions = {"op": event["op"], "seq": event["seq"], "changed": event.get("changed")}
    return b'{"data":{' + orjson.dumps(key) + b":" + row + b'},"extensions":' + orjson.dumps(extensions) + b"}"


async def begin(conn: Any, timeout_ms: int) -> None:
    """The transaction's settings: read only, the JSON compiler's session settings, the statement timeout."""
    await conn.execute("SET TRANSACTION READ ONLY")
    for name, value in (*SESSION_SETTINGS, ("statement_timeout", str(timeout_ms))):
        await conn.execute("SELECT set_config(%s, %s, true)", (name, value))


async def evaluate(conn: Any, subscribers: list[Subscriber], events: list[Event]) -> dict[Subscriber, list[bytes]]:
    """The messages of each subscriber (all of one entity) for ``events``, in ``seq`` order.

    ``conn`` is a psycopg connection inside a transaction (``begin``). Advances each
    subscriber's watermark past the batch. Python's work per subscriber is a bisection plus
    its own matches: the filters of all of them run in one statement.
    """
    batch = Batch.of(subscribers[0].entity, events)
    shown = {s: s.take(batch) for s in subscribers}
    lowest = min((indices[0] for indices in shown.values() if indices), default=len(batch.events))
    rows = [i for i in range(lowest, len(batch.events)) if batch.events[i]["op"] != "truncate"]
    truncates = [i for i in range(lowest, len(batch.events)) if batch.events[i]["op"] == "truncate"]
    images = [image(batch.events[i]) for i in rows]  # image n (1-based) is event rows[n - 1]
    matched = await _matches(conn, subscribers, shown, rows, images)
    rendered = await _render(conn, subscribers, matched, images)
    out: dict[Subscriber, list[bytes]] = {}
    for s in subscribers:
        key, json_of = s.root.key, rendered[s.template.key]
        hits = [(rows[n - 1], n) for n in matched[s]]
        if truncates:
            allowed = shown[s]
            hits += [(i, 0) for i in truncates if _within(allowed, i)]
            hits.sort()
        out[s] = [message(key, json_of[n] if n else b"null", batch.events[i]) for i, n in hits]
    return out


def _within(indices: Sequence[int], index: int) -> bool:
    """``index in indices`` for a sorted sequence (a range answers at once)."""
    if isinstance(indices, range):
        return index in indices
    at = bisect_left(indices, index)
    return at < len(indices) and indices[at] == index


async def _matches(conn: Any, subscribers: list[Subscriber], shown: dict[Subscriber, Sequence[int]],
                   rows: list[int], images: list[str]) -> dict[Subscriber, list[int]]:
    """The image ordinals (ascending) each subscriber is to be shown: its filter's matches among those it may see."""
    matched: dict[Subscriber, list[int]] = {}
    filtered = []
    for s in subscribers:
        allowed = shown[s]
        if not allowed or not rows or rows[-1] < allowed[0]:
            matched[s] = []
        elif s.match is not None:
            filtered.append(s)
        elif isinstance(allowed, range):  # every row event from its first on
            matched[s] = list(range(bisect_left(rows, allowed.start) + 1, len(rows) + 1))
        else:
            matched[s] = [n for n, i in enumerate(rows, 1) if _within(allowed, i)]
    if filtered:
        sql, values = match_statement(filtered[0].root.entity, [s.match for s in filtered if s.match], images)
        hits: dict[int, list[int]] = defaultdict(list)
        for n, index in await (await conn.execute(sql, values)).fetchall():
            hits[index].append(n)
        for index, s in enumerate(filtered, 1):
            allowed = shown[s]
            matched[s] = sorted(n for n in hits.get(index, ()) if _within(allowed, rows[n - 1]))
    return matched


async def _render(conn: Any, subscribers: list[Subscriber], matched: dict[Subscriber, list[int]],
                  images: list[str]) -> dict[str, dict[int, bytes]]:
    """The JSON of each matched image under each distinct selection (subscribers with equal ones share it),
    by the selection's key."""
    templates: dict[str, SelectionTemplate] = {}
    wanted: dict[str, set[int]] = defaultdict(set)
    for s in subscribers:
        templates[s.template.key] = s.template
        wanted[s.template.key].update(matched[s])
    rendered: dict[str, dict[int, bytes]] = {}
    for key, ordinals in wanted.items():
        chosen = sorted(ordinals)
        rendered[key] = {}
        if chosen:
            sql, values = templates[key].statement([images[n - 1] for n in chosen], chosen)
            for n, text in await (await conn.execute(sql, values)).fetchall():
                rendered[key][n] = text.encode() if text is not None else b"null"
    return rendered


async def check(conn: Any, subscriber: Subscriber) -> None:
    """Plan the subscriber's statements once over no images, so a filter PostgreSQL refuses (a value its
    type cannot take) fails the subscribe instead of every later batch."""
    if subscriber.match is not None:
        sql, values = match_statement(subscriber.root.entity, [subscriber.match], [])
        await conn.execute(sql, values)
    sql, values = subscriber.template.statement([], [])
    await conn.execute(sql, values)
