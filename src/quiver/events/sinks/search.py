"""Elasticsearch 8 / OpenSearch 2 over HTTP: the search sink.

Only what both servers accept is used (plain REST + JSON, no client library): composable
index templates, ``_bulk`` with external versions, ``_refresh``, ``_search`` with
``search_after``. Tested against a real OpenSearch 2.19 (``scripts/services``).

Layout. ``setup()`` installs the index template ``<prefix>`` (``PUT _index_template/<prefix>``)
for the indices ``<prefix>-*``: one index per month of ``occurred_at`` (``<prefix>-YYYY.MM``,
UTC), each joined to the alias ``<prefix>`` by the template, so readers query the alias. The
sink creates each monthly index itself before its first write to it (``PUT <index>``, where the
template applies), so it also works where ``action.auto_create_index`` is off. Prefixes must be
lower case and must not overlap (``a`` and ``a-b`` both match ``a-*``: the server refuses the
second template).

Documents: ``_id`` = ``event_id``; the mapping is ``dynamic: strict``:

- ``event_id``, ``entity``, ``entity_id``, ``op``, ``changed``, ``actor``, ``tenant_id``: keyword
  (``ignore_above: 8191``: a longer value is kept in ``_source`` but not indexed, instead of
  failing the document on Lucene's 32 KB term limit);
- ``seq``, ``occurred_at_us``: long (the exact values, µs since the epoch);
- ``occurred_at``: ``date_nanos`` from an ISO-8601 string with the 6 digits of microseconds,
  so range queries, sorting and dashboards see full precision. ``date_nanos`` covers
  1970-2262: an event outside is refused by the server (a per-event PermanentError), as the
  ClickHouse sink's ``DateTime`` cannot hold it either;
- ``data`` (the row as JSON text): ``text``, full-text searchable, returned byte for byte from
  ``_source``. Not an object: rows of different tables (and changing schemas) would collide in
  one dynamic mapping (a column that is a number in one table and text in another fails every
  later document), and the conflict-free field types differ (ES ``flattened``, OpenSearch
  ``flat_object``).

Exactly once in effect: each document is indexed with ``version_type=external`` and
``version`` = ``seq``. A replay of the same event gets ``409 version_conflict_engine_exception``
and counts as written (it is already there); an older ``seq`` never overwrites a newer one. The
template sets ``index.translog.durability: request``: an acknowledged bulk is fsynced; and
``index.refresh_interval: 1s`` explicitly, so events are searchable within about a second
even on an index nobody searched lately.

Failures, per item of the bulk response (items are read one by one, never the batch as a whole):

- 2xx, and 409 version conflicts: written;
- 429, 5xx, 401/403/404/407/408/425 and other 409s (overload, unavailable shards, blocks, a missing index):
  only those items are sent again, up to ``retries`` times with capped exponential backoff and
  jitter; if some still fail, ``PendingEvents`` (a ``RetryableError``) says which. The consumer
  then retries the batch: what was stored meanwhile answers 409 and is not written twice;
- 400 and other 4xx (mapping/parse errors): ``RejectedEvents`` (a ``PermanentError``) whose
  ``rejected`` maps exactly those event ids to the server's reason, raised after everything
  else in the batch was stored. Events the server cannot take at all (negative ``seq``, which
  is no valid external version; an ``_id`` over 512 bytes; a date outside 1..9999) are rejected
  the same way without being sent, because one of them fails the whole bulk request.

Whole requests: connection errors, timeouts, 5xx and other non-4xx statuses, 401/403/404/407/408/
409/425/429 are ``RetryableError``. Any other 4xx (413 too large, 400 malformed) refuses the
request as a whole: it is split in halves and sent again, down to single events, which are then
rejected (``RejectedEvents``) while the rest is stored. Bulk requests are cut at
``max_bulk_bytes`` (8 MiB) to stay below ``http.max_content_length``.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pyarrow as pa

from quiver.events.sinks.base import PermanentError, RetryableError

FIELDS = ("event_id", "seq", "entity", "entity_id", "op", "occurred_at_us", "data", "changed", "actor", "tenant_id")
KEYWORD = {"type": "keyword", "ignore_above": 8191}
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "event_id": {"type": "keyword"},
        "seq": {"type": "long"},
        "entity": KEYWORD,
        "entity_id": KEYWORD,
        "op": KEYWORD,
        "occurred_at": {"type": "date_nanos", "format": "strict_date_optional_time_nanos||epoch_millis"},
        "occurred_at_us": {"type": "long"},
        "data": {"type": "text", "norms": False},
        "changed": KEYWORD,
        "actor": KEYWORD,
        "tenant_id": KEYWORD,
    },
}
TEMPLATE_VERSION = 2
MAX_ID_BYTES = 512  # the servers' limit for _id
RETRY_STATUSES = frozenset({401, 403, 404, 407, 408, 409, 425, 429})  # statuses that do not blame the events
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RejectedEvents(PermanentError):
    """The server refused some events for good; the other events of the batch are stored.

    ``rejected`` maps each refused event id to the reason: the consumer can dead-letter exactly
    those and acknowledge the rest, instead of bisecting.
    """

    def __init__(self, rejected: dict[str, str]) -> None:
        sample = "; ".join(f"{event_id}: {reason}" for event_id, reason in list(rejected.items())[:3])
        super().__init__(f"{len(rejected)} event(s) rejected by the search sink: {sample}", rejected)


class PendingEvents(RetryableError):
    """Some events were not stored after the retries (overload, unavailable shards); the others are.

    ``pending`` maps each event id still to be written to the last reason; ``rejected`` holds
    events that are also refused for good (reported once the pending ones are through).
    """

    def __init__(self, pending: dict[str, str], rejected: dict[str, str]) -> None:
        self.pending = dict(pending)
        self.rejected = dict(rejected)
        sample = "; ".join(f"{event_id}: {reason}" for event_id, reason in list(self.pending.items())[:3])
        super().__init__(f"{len(self.pending)} event(s) not yet stored by the search sink: {sample}")


@dataclass(frozen=True)
class _Item:
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


def index_template(prefix: str) -> dict[str, Any]:
    """The composable index template ``setup()`` installs (common to Elasticsearch 8 and OpenSearch 2)."""
    return {
        "index_patterns": [f"{prefix}-*"],
        "priority": 200,  # above the built-in templates of Elasticsearch (100)
        "version": TEMPLATE_VERSION,
        "_meta": {"owner": "quiver", "schema": "event/1"},
        "template": {
            "settings": {
                "index.number_of_shards": 1,
                "index.auto_expand_replicas": "0-1",  # green on one node, one replica on more
                "index.translog.durability": "request",  # fsync before a write is acknowledged
                # Explicit, so an index nobody searched for 30 s keeps refreshing (the default goes
                # "search idle" and the next reader waits for a refresh): events stay visible within ~1 s.
                "index.refresh_interval": "1s",
            },
            "mappings": MAPPINGS,
            "aliases": {prefix: {}},
        },
    }


def _reason(status: int, error: Any) -> str:
    if isinstance(error, dict):
        text = f"{status} {error.get('type', '?')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type', '?')}: {cause.get('reason', '')})"
        return text
    return f"{status} {error}"


def _retryable_status(status: int) -> bool:
    return status >= 500 or status in RETRY_STATUSES or not 400 <= status < 500


class SearchSink:
    """Events → monthly indices ``<prefix>-YYYY.MM`` behind the alias ``<prefix>``, over HTTP."""

    name = "search"

    def __init__(self, url: str, index_prefix: str = "quiver-events", *, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.2, max_backoff: float = 2.0,
                 wait_timeout: float | None = None, max_bulk_bytes: int = 8 << 20,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not _PREFIX.fullmatch(index_prefix) or len(index_prefix) > 200:
            raise ValueError(f"index prefix must be lower case letters, digits, '_', '.', '-', not {index_prefix!r}")
        parsed = httpx.URL(url)
        self.url = str(parsed.copy_with(username=None, password=None)).rstrip("/")
        self.prefix = index_prefix
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        # How long the server waits for an unavailable shard before it answers 503 for the item:
        # below the client timeout, so that it is reported per item instead of as a timeout.
        self.wait_timeout = wait_timeout if wait_timeout is not None else max(0.1, timeout / 2)
        self.max_bulk_bytes = max_bulk_bytes
        self._auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.username else None
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._ready = False
        self._indices: set[str] = set()  # monthly indices known to exist

    # -- HTTP -----------------------------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.url, auth=self._auth, timeout=self.timeout,
                                             transport=self._transport)
        return self._client

    async def _request(self, method: str, path: str, body: Any = None, *, content: bytes | None = None,
                       params: dict[str, str] | None = None, ndjson: bool = False) -> httpx.Response:
        """One request; transport failures and timeouts are RetryableError, the response is returned as is."""
        if body is not None:
            content = orjson.dumps(body)
        headers = {"Content-Type": "application/x-ndjson" if ndjson else "application/json"} if content else {}
        try:
            return await self._http().request(method, path, content=content, params=params, headers=headers)
        except httpx.TimeoutException as error:
            raise RetryableError(f"search server at {self.url} timed out: {error!r}") from error
        except httpx.TransportError as error:
            raise RetryableError(f"search server at {self.url} unreachable: {error!r}") from error

    async def _call(self, method: str, path: str, body: Any = None, *, ok: Iterable[int] = (),
                    params: dict[str, str] | None = None) -> Any:
        """A request whose failure is retryable (setup, index creation, reads): the decoded JSON answer."""
        response = await self._request(method, path, body, params=params)
        if response.status_code >= 300 and response.status_code not in set(ok):
            raise RetryableError(f"search server: {method} {path} answered {response.status_code}:"
                                 f" {response.text[:2000]}")
        return orjson.loads(response.content) if response.content else None

    # -- setup ----------------------------------------------------------------------------------------------
    async def setup(self) -> None:
        """Install (or update) the index template; idempotent. Existing indices keep their mappings."""
        await self._call("PUT", f"/_index_template/{self.prefix}", index_template(self.prefix))
        self._ready = True

    async def _ensure_index(self, index: str) -> None:
        """Create a monthly index (the template gives it the mappings and the alias) unless it exists."""
        if index in self._indices:
            return
        # Not waiting for the primary shard here: the bulk waits for it (``wait_timeout``) and reports per item.
        response = await self._request("PUT", f"/{index}", params={"wait_for_active_shards": "0"})
        if response.status_code >= 300:
            error = _error_type(response)
            if error != "resource_already_exists_exception":
                # Not the events' fault (a block, an alias clash, a dead node): wait and retry.
                raise RetryableError(f"search server: cannot create index {index}: {response.status_code}"
                                     f" {response.text[:2000]}")
        self._indices.add(index)

    # -- write ----------------------------------------------------------------------------------------------
    def _items(self, batch: pa.RecordBatch) -> tuple[list[_Item], dict[str, str]]:
        """The bulk lines of every event, and the events no server would take (not sent).

        Column-wise (each column read as one Python list), and each distinct second of
        ``occurred_at`` is formatted once: a batch spans few seconds.
        """
        micros = batch.column("occurred_at").cast(pa.int64()).to_pylist()
        names = ("event_id", "seq", "entity", "entity_id", "op", "data", "changed", "actor", "tenant_id")
        columns = [batch.column(name).to_pylist() for name in names]
        seconds: dict[int, tuple[str, str] | None] = {}
        items: list[_Item] = []
        rejected: dict[str, str] = {}
        prefix = self.prefix
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
                items.append(_Item(event_id, index, orjson.dumps(action) + b"\n" + orjson.dumps(document) + b"\n"))
        return items, rejected

    def bulk_params(self) -> dict[str, str]:
        """The query parameters of every ``_bulk`` request this sink sends."""
        return {"timeout": f"{int(self.wait_timeout * 1000)}ms",
                "filter_path": "errors,items.*._id,items.*.status,items.*.error"}

    def bulk_bodies(self, batch: pa.RecordBatch) -> tuple[list[bytes], dict[str, str]]:
        """The NDJSON bodies of the ``_bulk`` requests ``write(batch)`` sends first (cut at ``max_bulk_bytes``).

        Also the events refused without being sent. Encoded by the same code as ``write``, so a
        benchmark can time the server's own bulk rate on exactly the sink's requests.
        """
        items, rejected = self._items(batch)
        return [_body(chunk) for chunk in self._chunks(items)], rejected

    def _chunks(self, items: list[_Item]) -> Iterator[list[_Item]]:
        chunk: list[_Item] = []
        size = 0
        for item in items:
            if chunk and size + len(item.lines) > self.max_bulk_bytes:
                yield chunk
                chunk, size = [], 0
            chunk.append(item)
            size += len(item.lines)
        if chunk:
            yield chunk

    async def _bulk(self, items: list[_Item], retry: dict[str, str], rejected: dict[str, str]) -> list[_Item]:
        """Send ``items`` in one ``_bulk``; sort each outcome into done, ``retry`` or ``rejected``.

        Returns the items to send again. Whole-request failures raise (see the module docstring).
        """
        response = await self._request("POST", "/_bulk", content=_body(items), ndjson=True,
                                       params=self.bulk_params())
        status = response.status_code
        if status >= 300:
            reason = f"bulk request answered {status}: {response.text[:1000]}"
            if _retryable_status(status):
                raise RetryableError(f"search server at {self.url}: {reason}")
            if len(items) > 1:  # refused as a whole (too large, malformed): halve it down to the culprits
                middle = len(items) // 2
                return [*await self._bulk(items[:middle], retry, rejected),
                        *await self._bulk(items[middle:], retry, rejected)]
            rejected[items[0].event_id] = reason
            return []
        try:
            answer = orjson.loads(response.content)
            results = [next(iter(entry.values())) for entry in answer.get("items", [])] if answer.get("errors") else []
        except (orjson.JSONDecodeError, AttributeError, StopIteration) as error:
            raise RetryableError(f"search server: unreadable bulk response: {response.text[:1000]}") from error
        if not answer.get("errors"):
            return []
        if len(results) != len(items):
            raise RetryableError(f"search server: {len(results)} bulk results for {len(items)} events")
        again: list[_Item] = []
        for item, result in zip(items, results, strict=True):
            item_status = int(result.get("status", 500))
            detail = result.get("error")
            if result.get("_id") != item.event_id:
                raise RetryableError(f"search server: bulk result for {result.get('_id')!r}, expected {item.event_id}")
            if item_status < 300:
                continue
            error_type = detail.get("type") if isinstance(detail, dict) else None
            if item_status == 409 and error_type == "version_conflict_engine_exception":
                continue  # this event (or a newer version of its document) is already stored
            reason = _reason(item_status, detail)
            if _retryable_status(item_status):
                if error_type == "index_not_found_exception":
                    self._indices.discard(item.index)  # deleted meanwhile: create it again
                retry[item.event_id] = reason
                again.append(item)
            else:
                rejected[item.event_id] = reason
        return again

    async def write(self, batch: pa.RecordBatch) -> None:
        """Index every event (external version = seq); retry only failed items; report refused ones by id."""
        if batch.num_rows == 0:
            return
        if not self._ready:
            await self.setup()
        pending, rejected = self._items(batch)
        retry: dict[str, str] = {}
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            for index in sorted({item.index for item in pending}):
                await self._ensure_index(index)
            retry = {}
            again: list[_Item] = []
            for chunk in self._chunks(pending):
                again += await self._bulk(chunk, retry, rejected)
            pending = again
            if not pending:
                break
        if pending:
            raise PendingEvents({item.event_id: retry[item.event_id] for item in pending}, rejected)
        if rejected:
            raise RejectedEvents(rejected)

    # -- read -----------------------------------------------------------------------------------------------
    async def refresh(self) -> bool:
        """Make every write searchable (``POST <prefix>/_refresh``); False if there is no index yet."""
        response = await self._request("POST", f"/{self.prefix}/_refresh")
        if response.status_code == 404:
            return False
        if response.status_code >= 300 or orjson.loads(response.content).get("_shards", {}).get("failed"):
            raise RetryableError(f"search server: refresh answered {response.status_code}: {response.text[:1000]}")
        return True

    async def visible_events(self, page_size: int = 5000) -> list[tuple[Any, ...]]:
        """Every stored event, sorted by seq, as tuples in ``ClickHouseSink.visible_events()`` order.

        (event_id, seq, entity, entity_id, op, occurred_at_us, data, changed, actor, tenant_id);
        ``changed`` is ``[]`` where the event has none, as in the ClickHouse sinks. Pages with
        ``search_after`` on (seq, event_id) after a refresh; not a snapshot if writes go on. An index
        whose primary is unavailable fails it (RetryableError; the refresh waits up to a minute for it).
        """
        if not await self.refresh():
            return []
        rows: list[tuple[Any, ...]] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"size": page_size, "query": {"match_all": {}}, "_source": list(FIELDS),
                                    "sort": [{"seq": "asc"}, {"event_id": "asc"}], "track_total_hits": False}
            if after is not None:
                body["search_after"] = after
            answer = await self._call("POST", f"/{self.prefix}/_search", body)
            if answer["_shards"].get("failed"):  # a partial answer is no answer
                raise RetryableError(f"search server: search failed on some shards: {answer['_shards']}")
            hits = answer["hits"]["hits"]
            for hit in hits:
                source = hit["_source"]
                rows.append((source["event_id"], source["seq"], source["entity"], source["entity_id"], source["op"],
                             source["occurred_at_us"], source["data"], source.get("changed") or [],
                             source.get("actor"), source.get("tenant_id")))
            if len(hits) < page_size:
                return rows
            after = hits[-1]["sort"]

    async def count_visible(self) -> int:
        """Documents behind the alias (after a refresh)."""
        if not await self.refresh():
            return 0
        answer = await self._call("GET", f"/{self.prefix}/_count")
        return int(answer["count"])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _body(items: Iterable[_Item]) -> bytes:
    """One ``_bulk`` request body: the items' action and document lines."""
    return b"".join(item.lines for item in items)


def _error_type(response: httpx.Response) -> str | None:
    try:
        detail = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return detail.get("type") if isinstance(detail, dict) else None
