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

from collections import defaultdict
from typing import Any

import orjson

from quiver.sql.images import SelectionTemplate, match_statement
from quiver.sql.json import SESSION_SETTINGS
from quiver.subscriptions.subscriber import Event, Subscriber


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
    """The messages of each subscriber for ``events`` (one entity's, in ``seq`` order), in ``seq`` order.

    ``conn`` is a psycopg connection inside a transaction (``begin``). Advances each
    subscriber's watermark past the batch.
    """
    shown = {s: s.take(events) for s in subscribers}
    rows: dict[int, Event] = {}  # seq -> event, the row events any subscriber may be shown
    for seen in shown.values():
        rows.update((e["seq"], e) for e in seen if e["op"] != "truncate")
    ordered = sorted(rows)
    ordinal = {seq: n for n, seq in enumerate(ordered, 1)}
    images = [image(rows[seq]) for seq in ordered]
    matched = await _matches(conn, subscribers, shown, ordinal, images)
    rendered = await _render(conn, subscribers, matched, images)
    out: dict[Subscriber, list[bytes]] = {}
    for s in subscribers:
        key, hits, json_of = s.root.key, matched[s], rendered[s.template.key]
        out[s] = [message(key, b"null", e) if e["op"] == "truncate" else message(key, json_of[n], e)
                  for e in shown[s] if e["op"] == "truncate" or (n := ordinal[e["seq"]]) in hits]
    return out


async def _matches(conn: Any, subscribers: list[Subscriber], shown: dict[Subscriber, list[Event]],
                   ordinal: dict[int, int], images: list[str]) -> dict[Subscriber, set[int]]:
    """The ordinals of the images each subscriber's filter matches (of those it may be shown)."""
    matched = {s: {ordinal[e["seq"]] for e in shown[s] if e["op"] != "truncate"} for s in subscribers}
    filtered = [s for s in subscribers if s.match is not None and matched[s]]
    if filtered:
        sql, values = match_statement(filtered[0].root.entity, [s.match for s in filtered if s.match], images)
        hits: dict[Subscriber, set[int]] = defaultdict(set)
        for n, index in await (await conn.execute(sql, values)).fetchall():
            hits[filtered[index - 1]].add(n)
        for s in filtered:
            matched[s] &= hits[s]
    return matched


async def _render(conn: Any, subscribers: list[Subscriber], matched: dict[Subscriber, set[int]],
                  images: list[str]) -> dict[str, dict[int, bytes]]:
    """The JSON of each matched image under each distinct selection (subscribers with equal ones share it),
    by the selection's key."""
    templates: dict[str, SelectionTemplate] = {}
    wanted: dict[str, set[int]] = defaultdict(set)
    for s in subscribers:
        templates[s.template.key] = s.template
        wanted[s.template.key] |= matched[s]
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
