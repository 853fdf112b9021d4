"""A batch → the search sink's ``_bulk`` request bodies (NDJSON), and a stored document → a visible event.

Each event is one ``index`` action on its monthly index with ``_id`` = ``event_id``,
``version_type=external`` and ``version`` = ``seq`` (a replay answers 409 and an older ``seq``
never overwrites a newer one), followed by its document. Events no server would take (negative
``seq``, which is no valid external version; an ``_id`` over 512 bytes; a date outside 1..9999)
are refused here, without being sent, because one of them fails the whole bulk request. Bodies
are cut at ``max_bytes`` to stay below ``http.max_content_length``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from quiver.events.sinks.base import VISIBLE_FIELDS, VisibleEvent

MAX_ID_BYTES = 512  # the servers' limit for _id
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ("event_id", "seq", "entity", "entity_id", "op", "data", "changed", "actor", "tenant_id")


@dataclass(frozen=True)
class BulkItem:
    event_id: str
    index: str
    lines: bytes  # action line + document line, each ending in \n


def monthly_index(prefix: str, occurred_at_us: int) -> str:
    """``<prefix>-YYYY.MM``: the index of an event (UTC month of ``occurred_at_us``, µs since the epoch)."""
    formatted = _second(occurred_at_us // 1_000_000)
    if formatted is None:
        raise OverflowError(f"occurred_at {occurred_at_us} µs is outside the years 1..9999")
    return f"{prefix}-{formatted[0]}"


def _second(second: int) -> tuple[str, str] | None:
    """(``YYYY.MM``, ``YYYY-MM-DDTHH:MM:SS``) of a second since the epoch, UTC; None outside years 1..9999."""
    try:
        moment = _EPOCH + timedelta(seconds=second)
    except OverflowError:
        return None
    return f"{moment.year:04d}.{moment.month:02d}", f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"


def bulk_items(batch: pa.RecordBatch, prefix: str) -> tuple[list[BulkItem], dict[str, str]]:
    """The bulk lines of every event, and the events no server would take (not sent).

    Column-wise (each column read as one Python list), and each distinct second of
    ``occurred_at`` is formatted once: a batch spans few seconds.
    """
    micros = batch.column("occurred_at").cast(pa.int64()).to_pylist()
    columns = [batch.column(name).to_pylist() for name in _COLUMNS]
    seconds: dict[int, tuple[str, str] | None] = {}
    items: list[BulkItem] = []
    rejected: dict[str, str] = {}
    rows = zip(*columns, micros, strict=True)
    for event_id, seq, entity, entity_id, op, data, changed, actor, tenant, us in rows:
        second, fraction = divmod(us, 1_000_000)
        if second not in seconds:
            seconds[second] = _second(second)
        formatted = seconds[second]
        if seq < 0:
            rejected[event_id] = f"seq {seq} is negative: no valid external version"
        elif len(event_id.encode()) > MAX_ID_BYTES:
            rejected[event_id] = f"event_id longer than {MAX_ID_BYTES} bytes"
        elif formatted is None:
            rejected[event_id] = f"occurred_at {us} µs is outside the years 1..9999"
        else:
            month, text = formatted
            index = f"{prefix}-{month}"
            action = {"index": {"_index": index, "_id": event_id, "version": seq, "version_type": "external"}}
            document = {"event_id": event_id, "seq": seq, "entity": entity, "entity_id": entity_id, "op": op,
                        "data": data, "changed": changed, "actor": actor, "tenant_id": tenant,
                        "occurred_at": f"{text}.{fraction:06d}Z", "occurred_at_us": us}
            items.append(BulkItem(event_id, index, orjson.dumps(action) + b"\n" + orjson.dumps(document) + b"\n"))
    return items, rejected


def chunks(items: list[BulkItem], max_bytes: int) -> Iterator[list[BulkItem]]:
    """``items`` cut into runs of at most ``max_bytes`` of lines (a single larger item stays alone)."""
    chunk: list[BulkItem] = []
    size = 0
    for item in items:
        if chunk and size + len(item.lines) > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.lines)
    if chunk:
        yield chunk


def bulk_body(items: Iterable[BulkItem]) -> bytes:
    """One ``_bulk`` request body: the items' action and document lines."""
    return b"".join(item.lines for item in items)


SOURCE_FIELDS = list(VISIBLE_FIELDS)  # what a search reads from ``_source``


def visible_event(source: dict[str, Any]) -> VisibleEvent:
    """A stored document's ``_source`` → the documented tuple (``changed`` ``[]`` where there is none)."""
    return (source["event_id"], source["seq"], source["entity"], source["entity_id"], source["op"],
            source["occurred_at_us"], source["data"], source.get("changed") or [], source.get("actor"),
            source.get("tenant_id"))
