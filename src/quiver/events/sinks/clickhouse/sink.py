"""``ClickHouseSink``: events → ``{database}.events`` on a ClickHouse server, over HTTP (18.16 up to current).

What the server can do is probed in ``setup()`` (``ddl.PROBE_SQL``: ``SELECT version()`` plus
system tables), because 18.16 lacks what the modern path uses:

- modern (ArrowStream input, DateTime64, LowCardinality without settings; current servers —
  probed, not inferred from the version number): the batch is posted as Arrow IPC
  (``FORMAT ArrowStream``, ``encode.arrow_body``);
- old (18.16: no Arrow/Parquet input, no DateTime64): the batch is encoded column by column
  into ``FORMAT Native`` with numpy (``encode.native_body``). A server in between (DateTime64
  but no ArrowStream) gets Native with DateTime64; an existing table keeps its columns and is
  encoded for them.

Insert deduplication is not relied on (on 18.16 it needs ReplicatedMergeTree and ZooKeeper):
the table collapses repeats under ``FINAL`` (``ddl``). Failures are classified by ``errors``.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pyarrow as pa

from quiver.events.sinks.base import PermanentError, RetryableError, VisibleEvent, by_seq
from quiver.events.sinks.clickhouse import ddl
from quiver.events.sinks.clickhouse.ddl import ServerInfo
from quiver.events.sinks.clickhouse.encode import arrow_body, native_body
from quiver.events.sinks.clickhouse.errors import MISSING_CODES, classify, error_code


class ClickHouseSink:
    """Events → ``{database}.events`` on a ClickHouse server, over HTTP."""

    name = "clickhouse"

    def __init__(self, url: str, database: str = "quiver", *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.database = ddl.check_database(database)
        parsed = httpx.URL(url)
        self.url = str(parsed.copy_with(username=None, password=None, query=None))
        self.timeout = timeout
        self.info: ServerInfo | None = None
        self._auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.username else None
        self._params = dict(parsed.params)  # e.g. ?user=...&password=... kept on every request
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.url, auth=self._auth, params=self._params, timeout=self.timeout,
                transport=self._transport,
                # Below the server's keep_alive_timeout (3 s on 18.16): never reuse a connection it is closing.
                limits=httpx.Limits(keepalive_expiry=2.0),
            )
        return self._client

    async def _post(self, body: bytes, query: str | None = None, **settings: str) -> httpx.Response:
        """One HTTP POST; statement in the body, or in ``?query=`` when the body is data."""
        params = dict(settings)
        if query is not None:
            params["query"] = query
        try:
            response = await self._http().post("/", params=params, content=body)
        except httpx.TimeoutException as error:
            raise RetryableError(f"ClickHouse at {self.url} timed out: {error!r}") from error
        except httpx.TransportError as error:
            raise RetryableError(f"ClickHouse at {self.url} unreachable: {error!r}") from error
        if response.status_code >= 300:
            header = response.headers.get("X-ClickHouse-Exception-Code")
            if error_code(response.content, header) in MISSING_CODES:
                self.info = None  # the table or database went away: the next write sets up again
            raise classify(response.status_code, response.content, header)
        return response

    async def query(self, sql: str) -> str:
        """Run one statement and return the response text (for tests, status and setup)."""
        response = await self._post(sql.encode(), wait_end_of_query="1")
        return response.text

    async def setup(self) -> None:
        """Probe the server, create the database and the table (idempotent)."""
        answer = await self.query(ddl.PROBE_SQL)
        info = ServerInfo.from_probe(answer)
        if info is None:  # not ClickHouse (a proxy page?): nothing the events can fix
            raise RetryableError(f"unexpected answer from {self.url} to the version probe: {answer[:200]!r}")
        await self.query(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        await self.query(ddl.table_ddl(self.database, info))
        # The table may predate a server upgrade: encode for the column it has, not the one we would create.
        occurred_type = (await self.query(ddl.occurred_type_sql(self.database))).strip()
        self.info = ServerInfo(version=info.version, datetime64=occurred_type.startswith("DateTime64"),
                               low_cardinality=info.low_cardinality, arrow_stream=info.arrow_stream)

    async def write(self, batch: pa.RecordBatch) -> None:
        """Insert the batch in one POST (ArrowStream or Native); a repeat collapses under FINAL."""
        if batch.num_rows == 0:
            return
        if self.info is None:
            await self.setup()
        info = self.info
        assert info is not None
        try:
            if info.arrow_stream and info.datetime64:
                body, fmt = arrow_body(batch), "ArrowStream"
            else:
                body, fmt = native_body(batch, datetime64=info.datetime64), "Native"
        except (ValueError, KeyError, pa.ArrowException) as error:
            raise PermanentError(f"cannot encode the batch for ClickHouse: {error}") from error
        await self._post(body, query=f"{ddl.insert_sql(self.database)} FORMAT {fmt}")

    def visible_events_sql(self) -> str:
        """The documented read query (``ddl.visible_events_sql``): FINAL, because duplicates collapse on merges."""
        return ddl.visible_events_sql(self.database)

    async def visible_events(self) -> list[VisibleEvent]:
        """Every visible event as a ``VisibleEvent``, by (seq, event_id): the oracle's and the CLI's read."""
        text = await self.query(self.visible_events_sql() + " FORMAT JSONCompact")
        rows: list[list[Any]] = orjson.loads(text)["data"]  # 64-bit integers arrive quoted
        return by_seq((event_id, int(seq), entity, entity_id, op, int(micros), data, changed, actor, tenant_id)
                      for event_id, seq, entity, entity_id, op, micros, data, changed, actor, tenant_id in rows)

    async def count_visible(self) -> int:
        """Distinct events as readers see them (through FINAL)."""
        return int((await self.query(ddl.count_visible_sql(self.database) + " FORMAT TSV")).strip())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
