"""``SearchSink``: events → monthly indices ``<prefix>-YYYY.MM`` behind the alias ``<prefix>``, over HTTP.

Only what Elasticsearch 8 and OpenSearch 2 both accept is used (plain REST + JSON, no client
library): composable index templates (``ddl``), ``_bulk`` with external versions (``encode``),
``_refresh``, ``_search`` with ``search_after``. Tested against a real OpenSearch 2.19
(``scripts/services``).

Exactly once in effect: a replay of a stored event answers 409 and counts as written; an older
``seq`` never overwrites a newer one. A write reads every bulk item's result (``errors``): items
that may pass are sent again alone, up to ``retries`` times with capped exponential backoff and
jitter, then reported as ``PendingEvents`` (the consumer retries the batch: what was stored
meanwhile answers 409); items refused for good are reported by event id (``RejectedEvents``)
after everything else in the batch was stored.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import orjson
import pyarrow as pa

from quiver.events.sinks.base import RetryableError, VisibleEvent
from quiver.events.sinks.search.ddl import check_prefix, index_template
from quiver.events.sinks.search.encode import SOURCE_FIELDS, BulkItem, bulk_body, bulk_items, chunks, visible_event
from quiver.events.sinks.search.errors import (
    PendingEvents,
    RejectedEvents,
    classify,
    error_type,
    retryable_status,
)


class SearchSink:
    """Events → monthly indices ``<prefix>-YYYY.MM`` behind the alias ``<prefix>``, over HTTP."""

    name = "search"

    def __init__(self, url: str, index_prefix: str = "quiver-events", *, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.2, max_backoff: float = 2.0,
                 wait_timeout: float | None = None, max_bulk_bytes: int = 8 << 20,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.prefix = check_prefix(index_prefix)
        parsed = httpx.URL(url)
        self.url = str(parsed.copy_with(username=None, password=None)).rstrip("/")
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
        if response.status_code >= 300 and error_type(response) != "resource_already_exists_exception":
            # Not the events' fault (a block, an alias clash, a dead node): wait and retry.
            raise RetryableError(f"search server: cannot create index {index}: {response.status_code}"
                                 f" {response.text[:2000]}")
        self._indices.add(index)

    # -- write ----------------------------------------------------------------------------------------------
    def bulk_params(self) -> dict[str, str]:
        """The query parameters of every ``_bulk`` request this sink sends."""
        return {"timeout": f"{int(self.wait_timeout * 1000)}ms",
                "filter_path": "errors,items.*._id,items.*.status,items.*.error"}

    def bulk_bodies(self, batch: pa.RecordBatch) -> tuple[list[bytes], dict[str, str]]:
        """The NDJSON bodies of the ``_bulk`` requests ``write(batch)`` sends first (cut at ``max_bulk_bytes``).

        Also the events refused without being sent. Encoded by the same code as ``write``, so a
        benchmark can time the server's own bulk rate on exactly the sink's requests.
        """
        items, rejected = bulk_items(batch, self.prefix)
        return [bulk_body(chunk) for chunk in self._chunks(items)], rejected

    def _chunks(self, items: list[BulkItem]) -> Iterator[list[BulkItem]]:
        return chunks(items, self.max_bulk_bytes)

    async def _bulk(self, items: list[BulkItem], retry: dict[str, str], rejected: dict[str, str]) -> list[BulkItem]:
        """Send ``items`` in one ``_bulk``; sort each outcome into done, ``retry`` or ``rejected``.

        Returns the items to send again. Whole-request failures raise (see ``errors``).
        """
        response = await self._request("POST", "/_bulk", content=bulk_body(items), ndjson=True,
                                       params=self.bulk_params())
        status = response.status_code
        if status >= 300:
            reason = f"bulk request answered {status}: {response.text[:1000]}"
            if retryable_status(status):
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
        again: list[BulkItem] = []
        for item, result in zip(items, results, strict=True):
            if result.get("_id") != item.event_id:
                raise RetryableError(f"search server: bulk result for {result.get('_id')!r}, expected {item.event_id}")
            detail = result.get("error")
            failure = classify(int(result.get("status", 500)), detail)
            if failure is None:
                continue
            if isinstance(failure, RetryableError):
                if isinstance(detail, dict) and detail.get("type") == "index_not_found_exception":
                    self._indices.discard(item.index)  # deleted meanwhile: create it again
                retry[item.event_id] = str(failure)
                again.append(item)
            else:
                rejected[item.event_id] = str(failure)
        return again

    async def write(self, batch: pa.RecordBatch) -> None:
        """Index every event (external version = seq); retry only failed items; report refused ones by id."""
        if batch.num_rows == 0:
            return
        if not self._ready:
            await self.setup()
        pending, rejected = bulk_items(batch, self.prefix)
        retry: dict[str, str] = {}
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            for index in sorted({item.index for item in pending}):
                await self._ensure_index(index)
            retry = {}
            again: list[BulkItem] = []
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

    async def visible_events(self, page_size: int = 5000) -> list[VisibleEvent]:
        """Every stored event as a ``VisibleEvent``, by (seq, event_id).

        Pages with ``search_after`` on (seq, event_id) after a refresh; not a snapshot if writes go
        on. An index whose primary is unavailable fails it (RetryableError; the refresh waits up to
        a minute for it).
        """
        if not await self.refresh():
            return []
        rows: list[VisibleEvent] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"size": page_size, "query": {"match_all": {}}, "_source": SOURCE_FIELDS,
                                    "sort": [{"seq": "asc"}, {"event_id": "asc"}], "track_total_hits": False}
            if after is not None:
                body["search_after"] = after
            answer = await self._call("POST", f"/{self.prefix}/_search", body)
            if answer["_shards"].get("failed"):  # a partial answer is no answer
                raise RetryableError(f"search server: search failed on some shards: {answer['_shards']}")
            hits = answer["hits"]["hits"]
            rows += (visible_event(hit["_source"]) for hit in hits)
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
