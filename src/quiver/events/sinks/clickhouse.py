"""ClickHouse server over HTTP: the analytics sink for a real deployment (old 18.16 up to current).

Same table semantics as the in-process chDB sink: ``{database}.events`` is a
ReplacingMergeTree keyed on ``(entity, seq, event_id)`` with ``seq`` as version, so a
redelivered event is stored twice but counts once. ReplacingMergeTree collapses
duplicates only when it merges parts, asynchronously and maybe never for the last
parts, so readers must ask for the collapsed view: ``SELECT ... FROM {database}.events
FINAL`` (``visible_events_sql()``). Insert deduplication is not relied on: on 18.16 it
needs ReplicatedMergeTree and ZooKeeper.

What the server can do is probed in ``setup()`` (``SELECT version()`` plus system
tables), because 18.16 lacks what the modern path uses:

- modern (ArrowStream input, DateTime64, LowCardinality without settings; current
  servers — probed, not inferred from the version number):
  the batch is posted as Arrow IPC (``FORMAT ArrowStream``), ``occurred_at`` is
  ``DateTime64(6, 'UTC')``, ``entity``/``op`` are LowCardinality;
- old (18.16: no Arrow/Parquet input, no DateTime64): the batch is encoded column by
  column into ``FORMAT Native`` with numpy (``sinks.native``), ``occurred_at`` is
  ``DateTime('UTC')`` (seconds). A server in between (DateTime64 but no ArrowStream)
  gets Native with DateTime64; an existing table keeps its columns and is encoded for them.

Both keep ``occurred_at_us Int64`` (µs since the epoch), so the documented read query
is the same on every server.

Failures: connection errors, timeouts and server trouble (5xx, overload, memory, too
many parts, missing table, authentication) are ``RetryableError`` — the events are not
at fault, so they wait. Errors the server would repeat forever for these bytes (cannot
parse, type mismatch, too large, schema mismatch, syntax) are ``PermanentError``, as
is a batch that cannot be encoded; the consumer then bisects down to the bad events.
The error code comes from ``X-ClickHouse-Exception-Code`` (newer servers) or the
``Code: N`` in the body (18.16 sends no such header). An unknown code is retried:
a stuck pipeline is visible and loses nothing, a wrong dead-letter loses data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from quiver.events.sinks import native
from quiver.events.sinks.base import PermanentError, RetryableError, SinkError

COLUMNS = ("event_id", "seq", "entity", "entity_id", "op", "occurred_at", "occurred_at_us", "data", "changed",
           "actor", "tenant_id")

# ClickHouse error codes that mean "this data / this statement will never be accepted as is".
PERMANENT_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    8,    # THERE_IS_NO_COLUMN
    10,   # NOT_FOUND_COLUMN_IN_BLOCK
    16,   # NO_SUCH_COLUMN_IN_TABLE
    20,   # NUMBER_OF_COLUMNS_DOESNT_MATCH
    26,   # CANNOT_PARSE_QUOTED_STRING
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,   # ATTEMPT_TO_READ_AFTER_EOF (a malformed body; a cut connection is a transport error)
    33,   # CANNOT_READ_ALL_DATA
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    43,   # ILLEGAL_TYPE_OF_ARGUMENT
    44,   # ILLEGAL_COLUMN
    47,   # UNKNOWN_IDENTIFIER
    50,   # UNKNOWN_TYPE
    53,   # TYPE_MISMATCH
    62,   # SYNTAX_ERROR
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    73,   # UNKNOWN_FORMAT
    117,  # INCORRECT_DATA
    128,  # TOO_LARGE_ARRAY_SIZE
    131,  # TOO_LARGE_STRING_SIZE
    368,  # BAD_CAST (18.16: a Native column the table's type cannot take)
    376,  # CANNOT_PARSE_UUID
})
MISSING_CODES = frozenset({60, 81})  # UNKNOWN_TABLE, UNKNOWN_DATABASE: set up again, then retry
# Statuses from something in front of ClickHouse (or auth) that do not blame the request body.
TRANSIENT_STATUSES = frozenset({401, 403, 404, 407, 408, 425, 429})
_CODE = re.compile(rb"Code:\s*(\d+)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ServerInfo:
    """What ``setup()`` learned about the server (and the table, which may predate an upgrade)."""

    version: str
    datetime64: bool  # occurred_at is DateTime64(6, 'UTC') (else DateTime, seconds)
    low_cardinality: bool  # LowCardinality works without experimental settings
    arrow_stream: bool  # accepts INSERT ... FORMAT ArrowStream

    @property
    def modern(self) -> bool:
        return self.arrow_stream and self.datetime64 and self.low_cardinality


def table_ddl(database: str, info: ServerInfo) -> str:
    """The events table for this server: DateTime64 where it exists (≥ 20.1), LowCardinality on modern ones."""
    label = "LowCardinality(String)" if info.modern else "String"
    occurred = "DateTime64(6, 'UTC')" if info.datetime64 else "DateTime('UTC')"
    return f"""CREATE TABLE IF NOT EXISTS {database}.events (
    event_id       UUID,
    seq            Int64,
    entity         {label},
    entity_id      String,
    op             {label},
    occurred_at    {occurred},
    occurred_at_us Int64,
    data           String,
    changed        Array(String),
    actor          Nullable(String),
    tenant_id      Nullable(String)
) ENGINE = ReplacingMergeTree(seq)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (entity, seq, event_id)"""


def error_code(body: bytes, code_header: str | None = None) -> int | None:
    """The ClickHouse error code: the header where the server sends it, else ``Code: N`` in the body (18.16)."""
    if code_header and code_header.strip().isdigit():
        return int(code_header)
    match = _CODE.search(body)
    return int(match.group(1)) if match else None


def classify(status: int, body: bytes, code_header: str | None = None) -> SinkError:
    """A failed HTTP response → Retryable or Permanent (see the module docstring)."""
    code = error_code(body, code_header)
    text = body.decode(errors="replace").strip()
    message = f"ClickHouse HTTP {status}" + (f" code {code}" if code is not None else "") + f": {text[:2000]}"
    if code in PERMANENT_CODES or status == 413 or "Too many partitions for single INSERT block" in text:
        return PermanentError(message)
    if code is None and 400 <= status < 500 and status not in TRANSIENT_STATUSES:
        return PermanentError(message)  # a 4xx without a ClickHouse code: the request itself is refused
    return RetryableError(message)


def native_body(batch: pa.RecordBatch, *, datetime64: bool = False) -> bytes:
    """The batch as one Native block in table column order (old servers)."""
    occurred = batch.column("occurred_at")
    if datetime64:
        occurred_column = ("occurred_at", "DateTime64(6, 'UTC')", native.datetime64_micros(occurred))
    else:
        occurred_column = ("occurred_at", "DateTime('UTC')", native.datetime_seconds(occurred))
    return native.block(batch.num_rows, [
        ("event_id", "UUID", native.uuids(batch.column("event_id"))),
        ("seq", "Int64", native.int64(batch.column("seq"))),
        ("entity", "String", native.strings(batch.column("entity"))),
        ("entity_id", "String", native.strings(batch.column("entity_id"))),
        ("op", "String", native.strings(batch.column("op"))),
        occurred_column,
        ("occurred_at_us", "Int64", native.datetime64_micros(occurred)),
        ("data", "String", native.strings(batch.column("data"))),
        ("changed", "Array(String)", native.array_of_strings(batch.column("changed"))),
        ("actor", "Nullable(String)", native.nullable_strings(batch.column("actor"))),
        ("tenant_id", "Nullable(String)", native.nullable_strings(batch.column("tenant_id"))),
    ])


def arrow_body(batch: pa.RecordBatch) -> bytes:
    """The batch as an Arrow IPC stream in table column order (modern servers cast text → UUID themselves)."""
    occurred = batch.column("occurred_at").cast(pa.timestamp("us", tz="UTC"))
    changed = batch.column("changed")
    if changed.null_count:  # ClickHouse arrays are never NULL: a missing list is stored empty
        changed = pc.if_else(pc.is_null(changed), pa.scalar([], changed.type), changed)
    arrays = [batch.column("event_id"), batch.column("seq"), batch.column("entity"), batch.column("entity_id"),
              batch.column("op"), occurred, occurred.cast(pa.int64()), batch.column("data"), changed,
              batch.column("actor"), batch.column("tenant_id")]
    out = pa.RecordBatch.from_arrays(arrays, names=list(COLUMNS))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, out.schema) as writer:
        writer.write_batch(out)
    body: bytes = sink.getvalue().to_pybytes()
    return body


class ClickHouseSink:
    """Events → ``{database}.events`` on a ClickHouse server, over HTTP."""

    name = "clickhouse"

    def __init__(self, url: str, database: str = "quiver", *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not _IDENTIFIER.fullmatch(database):
            raise ValueError(f"database name must be a plain identifier, not {database!r}")
        parsed = httpx.URL(url)
        self.url = str(parsed.copy_with(username=None, password=None, query=None))
        self.database = database
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
        answer = await self.query(
            "SELECT version(),"
            " (SELECT count() FROM system.data_type_families WHERE name = 'DateTime64'),"
            " (SELECT count() FROM system.data_type_families WHERE name = 'LowCardinality'),"
            " (SELECT count() FROM system.settings"
            "   WHERE name = 'allow_experimental_low_cardinality_type' AND value = '0'),"
            " (SELECT count() FROM system.formats WHERE name = 'ArrowStream' AND is_input)"
            " FORMAT TSV")
        probe = answer.strip().split("\t")
        if len(probe) != 5:  # not ClickHouse (a proxy page?): nothing the events can fix
            raise RetryableError(f"unexpected answer from {self.url} to the version probe: {answer[:200]!r}")
        version, datetime64, low_cardinality, low_cardinality_gated, arrow_stream = probe
        info = ServerInfo(version=version, datetime64=datetime64 != "0",
                          low_cardinality=low_cardinality != "0" and low_cardinality_gated == "0",
                          arrow_stream=arrow_stream != "0")
        await self.query(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        await self.query(table_ddl(self.database, info))
        # The table may predate a server upgrade: encode for the column it has, not the one we would create.
        occurred_type = (await self.query(
            f"SELECT type FROM system.columns WHERE database = '{self.database}' AND table = 'events'"
            " AND name = 'occurred_at' FORMAT TSV")).strip()
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
        await self._post(body, query=f"INSERT INTO {self.database}.events ({', '.join(COLUMNS)}) FORMAT {fmt}")

    def visible_events_sql(self) -> str:
        """The documented read query: FINAL, because duplicates collapse only when parts merge."""
        return (
            "SELECT toString(event_id), seq, entity, entity_id, op, occurred_at_us, data, changed, actor, tenant_id"
            f" FROM {self.database}.events FINAL"
        )

    async def visible_events(self) -> list[tuple[Any, ...]]:
        """Every visible event as a tuple in ``visible_events_sql()`` column order (for tests and the oracle)."""
        text = await self.query(self.visible_events_sql() + " FORMAT JSONCompact")
        rows = orjson.loads(text)["data"]  # 64-bit integers arrive quoted
        return [(event_id, int(seq), entity, entity_id, op, int(micros), data, changed, actor, tenant_id)
                for event_id, seq, entity, entity_id, op, micros, data, changed, actor, tenant_id in rows]

    async def count_visible(self) -> int:
        """Distinct events as readers see them (through FINAL)."""
        return int((await self.query(f"SELECT count() FROM {self.database}.events FINAL FORMAT TSV")).strip())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
