"""Benchmark: one GraphQL query to a client-side table over every plane, against the PostgreSQL→Arrow limit.

The query is ``{ orders(limit: N) { id uuid customerId status total isPaid placedAt meta } }``
(as in ``benchmarks/json_plane.py``), over database ``quiver_bench`` (1,000,000 demo orders). Eight
variants, each timed end to end from the request to a ``pyarrow.Table`` in this process:

(a) in-process ADBC ``fetch_arrow_table()`` of the equivalent typed SQL: the PostgreSQL→Arrow limit;
(b) Quiver over Arrow Flight (``quiver.client.Client.query``);
(c) Quiver's Arrow over HTTP (httpx, whole body, ``pa.ipc.open_stream(...).read_all()``);
(d) Quiver's JSON plane (httpx, ``orjson.loads``, ``pa.Table.from_pylist``);
(e) the FraiseQL v1 technique (``benchmarks/baselines/fraiseql_v1.py``; orjson, ``from_pylist``);
(f) a typical Python GraphQL stack (``benchmarks/baselines/strawberry_app.py``: Strawberry, psycopg 3,
    uvicorn, stdlib json; the client parses with ``json.loads``, then ``from_pylist``);
(g) Quiver's Flight SQL through ADBC's Flight SQL driver: the same typed SQL as (a), sent to Quiver's
    Flight port (``adbc_driver_flightsql.dbapi``, ``fetch_arrow_table()``);
(h) the same Flight SQL through pyarrow's C++ Flight client (GetFlightInfo of a CommandStatementQuery,
    then ``do_get(...).read_all()``): the server's share of (g) apart from ADBC's Go client;
(i) Quiver over Arrow Flight from a live dataset: a second server with ``QUIVER_LIVE_ENTITIES=["orders"]``
    answers from memory (DuckDB, kept fresh by the event stream; ``docs/live.md``), not from PostgreSQL.

Each variant is also timed to a pandas DataFrame (``types_mapper=pd.ArrowDtype`` and default) and a
polars DataFrame. Variants are interleaved round by round; every size is checked once first.

Run with ``make bench`` (``scripts/services start`` first), or directly:
``python -m benchmarks.query_planes [--sizes 10000,100000,1000000] [--rounds 5,5,3] [--skip-slow]``;
10M rows need ``--orders 10000000 --sizes ...,10000000`` (a separate database, ``quiver_bench_10000000``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_postgresql.dbapi as adbc
import httpx
import numpy as np
import orjson
import pandas as pd
import polars as pl
import psutil
import pyarrow as pa
import pyarrow.flight as pa_flight
from adbc_driver_postgresql import StatementOptions

from benchmarks.common import DEFAULT_ADMIN_URL, DEFAULT_OUTPUT
from benchmarks.common.database import BENCH_ORDERS, DB_NAME, ensure_bench_database
from benchmarks.common.report import command_line, publish
from benchmarks.common.servers import Server, free_port, peak_rss_mb, start_baseline, start_server, stop_server
from benchmarks.json_plane import (
    BASELINE,
    FIELDS,
    QUIVER,
    default_rounds,
    describe_machine,
    fmt_rows,
    payload,
    start_fraiseql,
)
from quiver.client import Client
from quiver.flight.sql.protocol import pack, pb

SECTION_TITLE = "## Query planes: Arrow Flight, Arrow over HTTP, JSON, FraiseQL v1, Strawberry"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
ARROW_TYPE = "application/vnd.apache.arrow.stream"
BATCH_SIZE_HINT_BYTES = 10 * 2**20
#: The typed SQL equivalent to the GraphQL query (text for the types Quiver sends as text: uuid, enum, jsonb).
ADBC_SQL = ("SELECT id, uuid::text, customer_id, status::text, total, is_paid, placed_at, meta::text "
            "FROM orders LIMIT {}")
#: Strawberry needs tens of seconds per million rows and about 1 KB of client memory per row: never above 1M.
SLOW_MAX_ROWS = 1_000_000
#: In-process ADBC rows/s for this kind of 8-column query at 1M rows, measured on this machine when it was quiet.
QUIET_ADBC_ROWS_PER_S = 1.3e6
MACHINE_NOTE = ("the vCPUs are shared and noisy (a cloud VM; other work may run at the same time); "
                "PostgreSQL is the embedded build that scripts/services runs")

ADBC, FLIGHT, ARROW_HTTP, JSON_PLANE, FRAISEQL, STRAWBERRY, FLIGHT_SQL, FLIGHT_SQL_PYARROW, LIVE = (
    "adbc", "flight", "arrow_http", "json", "fraiseql_v1", "strawberry", "flight_sql", "flight_sql_pyarrow",
    "live_flight")
VARIANTS = (ADBC, FLIGHT, ARROW_HTTP, JSON_PLANE, FRAISEQL, STRAWBERRY, FLIGHT_SQL, FLIGHT_SQL_PYARROW, LIVE)
LIVE_SERVER = "quiver live"
#: The live server's own event namespace (its JetStream stream), so that it shares nothing with other runs.
LIVE_NAMESPACE = "benchlive"
LABELS = {
    ADBC: "(a) in-process ADBC (PostgreSQL → Arrow limit)",
    FLIGHT: "(b) Quiver, Arrow Flight",
    ARROW_HTTP: "(c) Quiver, Arrow over HTTP",
    JSON_PLANE: "(d) Quiver, JSON plane",
    FRAISEQL: "(e) FraiseQL v1 technique",
    STRAWBERRY: "(f) Strawberry + psycopg",
    FLIGHT_SQL: "(g) Quiver, Flight SQL (ADBC client)",
    FLIGHT_SQL_PYARROW: "(h) Quiver, Flight SQL (pyarrow client)",
    LIVE: "(i) Quiver, Arrow Flight from a live dataset",
}
TIMESTAMP_NOTE = ("Strawberry prints timestamps with six fractional digits where PostgreSQL (Quiver, FraiseQL v1) "
                  "drops trailing zeros; the check compares them as instants")
SHORT = {ADBC: "(a) ADBC", FLIGHT: "(b) Flight", ARROW_HTTP: "(c) Arrow/HTTP", JSON_PLANE: "(d) JSON",
         FRAISEQL: "(e) FraiseQL v1", STRAWBERRY: "(f) Strawberry", FLIGHT_SQL: "(g) Flight SQL",
         FLIGHT_SQL_PYARROW: "(h) Flight SQL, pyarrow", LIVE: "(i) live Flight"}
STAGES = ("table", "pandas_arrow", "pandas", "polars")
STAGE_LABELS = {"table": "pyarrow.Table", "pandas_arrow": "pandas (ArrowDtype)", "pandas": "pandas (default)",
                "polars": "polars"}
#: Ratios reported (numerator, denominator, stage), each the median of per-round ratios.
RATIOS: tuple[tuple[str, str, str], ...] = (
    (FLIGHT, ADBC, "table"),
    (FLIGHT_SQL, ADBC, "table"),
    (FLIGHT_SQL_PYARROW, ADBC, "table"),
    (ARROW_HTTP, FLIGHT, "table"),
    (JSON_PLANE, FLIGHT, "table"),
    (FRAISEQL, FLIGHT, "table"),
    (STRAWBERRY, FLIGHT, "table"),
    (FRAISEQL, FLIGHT, "pandas"),
    (STRAWBERRY, FLIGHT, "pandas"),
    (FRAISEQL, FLIGHT, "polars"),
    (STRAWBERRY, FLIGHT, "polars"),
    (FLIGHT, LIVE, "table"),
    (JSON_PLANE, LIVE, "table"),
    (FRAISEQL, LIVE, "table"),
    (STRAWBERRY, LIVE, "table"),
)


@dataclass(frozen=True)
class Target:
    """A goal on one ratio at one size: ``at most`` or ``at least`` a threshold."""

    numerator: str
    denominator: str
    rows: int
    at_most: bool
    threshold: float

    @property
    def key(self) -> str:
        return ratio_key(self.numerator, self.denominator, "table")

    def met(self, value: float) -> bool:
        return value <= self.threshold if self.at_most else value >= self.threshold

    def describe(self) -> str:
        sign = "≤" if self.at_most else "≥"
        return (f"{SHORT[self.numerator]} / {SHORT[self.denominator]} {sign} {self.threshold:g}× "
                f"at {fmt_rows(self.rows)} rows")


TARGETS = (
    Target(FLIGHT, ADBC, 1_000_000, True, 1.15),
    Target(FLIGHT, ADBC, 100_000, True, 1.3),
    Target(FLIGHT_SQL, ADBC, 1_000_000, True, 1.15),
    Target(FRAISEQL, FLIGHT, 1_000_000, False, 12.0),
    Target(STRAWBERRY, FLIGHT, 100_000, False, 50.0),
    Target(STRAWBERRY, FLIGHT, 1_000_000, False, 50.0),
    Target(JSON_PLANE, LIVE, 1_000_000, False, 40.0),
    Target(FRAISEQL, LIVE, 1_000_000, False, 50.0),
)


def ratio_key(numerator: str, denominator: str, stage: str) -> str:
    """``flight/adbc:table``."""
    return f"{numerator}/{denominator}:{stage}"


def fmt_seconds(seconds: float) -> str:
    """Milliseconds below one second, else seconds."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


# --- results --------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One timed call: seconds from the request to each kind of table."""

    table: float
    pandas_arrow: float
    pandas: float
    polars: float


@dataclass
class VariantTimes:
    """One variant's samples at one size."""

    key: str
    rows: int
    samples: list[Sample] = field(default_factory=list)
    body_bytes: int | None = None  # response body size, for the HTTP variants

    def seconds(self, stage: str = "table") -> list[float]:
        return [getattr(sample, stage) for sample in self.samples]

    def median(self, stage: str = "table") -> float:
        return statistics.median(self.seconds(stage))

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.median()


@dataclass
class SizeResult:
    """Every variant at one result size, with per-round ratios."""

    rows: int
    rounds: int
    variants: dict[str, VariantTimes]
    ratios: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # variant -> why it did not run
    notes: list[str] = field(default_factory=list)

    def median_ratio(self, key: str) -> float | None:
        values = self.ratios.get(key)
        return statistics.median(values) if values else None


@dataclass
class BenchResult:
    """A whole run."""

    sizes: list[SizeResult]
    peak_rss_mb: dict[str, float | None]
    machine: str
    database: str
    date: str
    command: str
    load_average: tuple[tuple[float, float, float], tuple[float, float, float]]  # (1, 5, 15 min) at start, end
    versions: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    live_dataset: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Raw numbers plus medians and rates."""
        sizes = []
        for size in self.sizes:
            variants = {key: {**asdict(v), "medians": {s: v.median(s) for s in STAGES},
                              "rows_per_second": v.rows_per_second} for key, v in size.variants.items()}
            medians = {key: size.median_ratio(key) for key in size.ratios}
            sizes.append({"rows": size.rows, "rounds": size.rounds, "variants": variants, "ratios": size.ratios,
                          "median_ratios": medians, "skipped": size.skipped, "notes": size.notes})
        return {"sizes": sizes, "peak_rss_mb": self.peak_rss_mb, "machine": self.machine, "database": self.database,
                "date": self.date, "command": self.command, "load_average": self.load_average,
                "versions": self.versions, "duration_s": self.duration_s, "live_dataset": self.live_dataset}


# --- the variants ---------------------------------------------------------------------------------


Keep = object  # whatever a fetch must keep alive until the clock stops (freeing 1M parsed rows takes time)


@dataclass
class Planes:
    """The servers and one client for each plane; fetches one result as a table."""

    quiver: Server
    flight_url: str
    baseline: Server
    strawberry: Server | None
    http: httpx.Client
    flight: Client
    adbc: Any  # adbc_driver_postgresql.dbapi.Connection
    flight_sql: Any  # adbc_driver_flightsql.dbapi.Connection to Quiver's Flight port
    flight_raw: Any  # pyarrow.flight.FlightClient to the same port
    live_server: Server
    live: Client  # Flight client of the live server
    live_dataset: dict[str, float] = field(default_factory=dict)  # rows, load seconds, memory (after loading)
    body_bytes: dict[str, int] = field(default_factory=dict)

    def fetch(self, key: str, rows: int) -> tuple[pa.Table, Keep]:
        """One end-to-end request for ``rows`` rows as a table (and what to free after timing)."""
        if key == ADBC:
            return self.adbc_table(rows), None
        if key == FLIGHT:
            return self.flight.query(payload(rows)["query"]), None
        if key == LIVE:
            return self.live.query(payload(rows)["query"]), None
        if key == ARROW_HTTP:
            return self.arrow_http_table(rows), None
        if key == FLIGHT_SQL:
            return self.flight_sql_table(rows), None
        if key == FLIGHT_SQL_PYARROW:
            return self.flight_sql_pyarrow_table(rows), None
        parsed = self.json_rows(key, rows)
        return pa.Table.from_pylist(parsed), parsed

    def adbc_table(self, rows: int) -> pa.Table:
        """``fetch_arrow_table()`` of the typed SQL, 10 MB batches."""
        with self.adbc.cursor() as cursor:
            cursor.adbc_statement.set_options(
                **{StatementOptions.BATCH_SIZE_HINT_BYTES.value: str(BATCH_SIZE_HINT_BYTES)})
            cursor.execute(ADBC_SQL.format(int(rows)))
            table: pa.Table = cursor.fetch_arrow_table()
        return table

    def flight_sql_table(self, rows: int) -> pa.Table:
        """The same typed SQL as ``adbc_table``, through Quiver's Flight SQL (a GetFlightInfo, then its DoGet)."""
        with self.flight_sql.cursor() as cursor:
            cursor.execute(ADBC_SQL.format(int(rows)))
            table: pa.Table = cursor.fetch_arrow_table()
        return table

    def flight_sql_pyarrow_table(self, rows: int) -> pa.Table:
        """The same Flight SQL by hand with pyarrow's Flight client: GetFlightInfo, then each endpoint's DoGet."""
        command = pack(pb.CommandStatementQuery(query=ADBC_SQL.format(int(rows))))
        info = self.flight_raw.get_flight_info(pa_flight.FlightDescriptor.for_command(command))
        return pa.concat_tables([self.flight_raw.do_get(e.ticket).read_all() for e in info.endpoints])

    def arrow_http_table(self, rows: int) -> pa.Table:
        """POST /graphql asking for an Arrow IPC stream; the whole body, then ``read_all``."""
        response = self.http.post(self.quiver.url + "/graphql", json=payload(rows), headers={"accept": ARROW_TYPE})
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(ARROW_TYPE):
            raise RuntimeError(f"Arrow over HTTP: HTTP {response.status_code}: {response.content[:300]!r}")
        body = response.content
        self.body_bytes[ARROW_HTTP] = len(body)
        return pa.ipc.open_stream(body).read_all()

    def json_rows(self, key: str, rows: int) -> list[dict[str, Any]]:
        """The parsed ``data.orders`` list of a JSON server (orjson, or stdlib json for Strawberry)."""
        server = {JSON_PLANE: self.quiver, FRAISEQL: self.baseline, STRAWBERRY: self.strawberry}[key]
        assert server is not None, f"{key} is not running"
        loads: Callable[[bytes], Any] = json.loads if key == STRAWBERRY else orjson.loads
        response = self.http.post(server.url + "/graphql", json=payload(rows))
        if response.status_code != 200:
            raise RuntimeError(f"{key}: HTTP {response.status_code}: {response.content[:300]!r}")
        body = response.content
        self.body_bytes[key] = len(body)
        document = loads(body)
        del body
        if document.get("errors"):
            raise RuntimeError(f"{key}: {document['errors']}")
        orders: list[dict[str, Any]] = document["data"]["orders"]
        return orders

    def sample(self, key: str, rows: int) -> Sample:
        """Time one request to a table, then to pandas (ArrowDtype, default) and polars.

        Flight uses the client's own calls (``Client.to_pandas``, ``Client.to_polars``), one request each;
        the other variants convert the table of the timed request and add the conversion time.
        """
        if key in (FLIGHT, LIVE):
            return self.flight_sample(rows, self.live if key == LIVE else self.flight)
        gc.collect()
        started = time.perf_counter()
        table, keep = self.fetch(key, rows)
        fetched = time.perf_counter()
        del keep
        pandas_arrow = _timed(lambda: table.to_pandas(types_mapper=pd.ArrowDtype))
        pandas_default = _timed(table.to_pandas)
        polars = _timed(lambda: pl.from_arrow(table))
        elapsed = fetched - started
        return Sample(elapsed, elapsed + pandas_arrow, elapsed + pandas_default, elapsed + polars)

    def flight_sample(self, rows: int, client: Client) -> Sample:
        """Four Flight requests: ``query``, ``to_pandas`` (ArrowDtype, then default) and ``to_polars``."""
        graphql = payload(rows)["query"]
        table = _timed(lambda: client.query(graphql))
        pandas_arrow = _timed(lambda: client.to_pandas(graphql))
        pandas_default = _timed(lambda: client.to_pandas(graphql, types_mapper=None))
        polars = _timed(lambda: client.to_polars(graphql))
        return Sample(table, pandas_arrow, pandas_default, polars)


def _timed(make: Callable[[], object]) -> float:
    """Seconds ``make()`` takes; the result is freed after the clock stops."""
    gc.collect()
    started = time.perf_counter()
    result = make()
    elapsed = time.perf_counter() - started
    del result
    return elapsed


# --- servers --------------------------------------------------------------------------------------


def start_quiver(db_url: str, name: str = QUIVER, **env: str) -> tuple[Server, str]:
    """``python -m quiver.cli serve --port P --flight-port F``; returns the server and its Flight URL."""
    port, flight_port = free_port(), free_port()
    command = [sys.executable, "-m", "quiver.cli", "serve", "--port", str(port), "--flight-port", str(flight_port)]
    server = start_server(name, command, {**os.environ, "QUIVER_DATABASE_URL": db_url, **env}, port)
    flight_url = f"grpc://127.0.0.1:{flight_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with Client(flight_url, timeout=2) as probe:
                probe.health()
            return server, flight_url
        except Exception:  # any failure means "not up yet" until the deadline
            if time.monotonic() > deadline:
                stop_server(server)
                raise
            time.sleep(0.1)


def live_env() -> dict[str, str]:
    return {"QUIVER_LIVE_ENTITIES": '["orders"]', "QUIVER_LIVE_MEMORY_MB": "8192",
            "QUIVER_EVENTS_NAMESPACE": LIVE_NAMESPACE}


def start_live_quiver(db_url: str, timeout: float = 900.0) -> tuple[Server, str, float]:
    """A Quiver server keeping ``orders`` live, once its dataset is live; also the seconds loading took.

    Capture is installed on the bench database first (``quiver events install``: triggers and the
    outbox; nothing writes here, so no event is ever produced)."""
    environment = {**os.environ, "QUIVER_DATABASE_URL": db_url, **live_env()}
    subprocess.run([sys.executable, "-m", "quiver.cli", "events", "install"], env=environment, check=True,
                   capture_output=True, timeout=300)
    began = time.perf_counter()
    server, flight_url = start_quiver(db_url, LIVE_SERVER, **live_env())
    deadline = time.monotonic() + timeout
    while True:
        state = live_state(server.url)
        if state.startswith("live"):
            return server, flight_url, time.perf_counter() - began
        if state.startswith("not cached") or time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"the live dataset did not become live: {state or 'no state'}")
        time.sleep(0.2)


def live_state(url: str, entity: str = "orders") -> str:
    """``state`` (and ``: reason``) of one live dataset, from the server's /metrics."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found = re.search(r'^quiver_live_state\{entity="' + re.escape(entity) + r'",reason="([^"]*)",state="([^"]*)"\} 1',
                      text, re.M)
    return "" if found is None else found.group(2) + (f": {found.group(1)}" if found.group(1) else "")


def live_metric(url: str, name: str) -> float:
    """One sample of a live-dataset metric on /metrics (the first line of ``name``)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found = re.search(r"^" + name + r"(?:\{[^}]*\})? (\S+)", text, re.M)
    return float(found.group(1)) if found else 0.0


def start_strawberry(db_url: str) -> Server:
    """The Strawberry baseline server over ``db_url``."""
    return start_baseline(STRAWBERRY, "benchmarks.baselines.strawberry_app", db_url)


@contextmanager
def open_planes(db_url: str, with_strawberry: bool = True) -> Iterator[Planes]:
    """All servers and clients; everything is stopped and closed on exit."""
    with ExitStack() as stack:
        quiver, flight_url = start_quiver(db_url)
        stack.callback(stop_server, quiver)
        baseline = start_fraiseql(db_url)
        stack.callback(stop_server, baseline)
        strawberry = None
        if with_strawberry:
            strawberry = start_strawberry(db_url)
            stack.callback(stop_server, strawberry)
        http = stack.enter_context(httpx.Client(timeout=1800))
        flight = stack.enter_context(Client(flight_url))
        connection = adbc.connect(db_url, autocommit=True)
        stack.callback(connection.close)
        sql_client = flightsql.connect(flight_url, autocommit=True)
        stack.callback(sql_client.close)
        raw = pa_flight.connect(flight_url)
        stack.callback(raw.close)
        live_server, live_url, load_seconds = start_live_quiver(db_url)
        stack.callback(stop_server, live_server)
        live = stack.enter_context(Client(live_url))
        dataset = {"rows": live_metric(live_server.url, "quiver_live_rows"), "load_seconds": load_seconds,
                   "duckdb_bytes": live_metric(live_server.url, "quiver_live_memory_bytes"),
                   "rss_bytes": float(psutil.Process(live_server.pid).memory_info().rss),
                   "plain_rss_bytes": float(psutil.Process(quiver.pid).memory_info().rss)}
        yield Planes(quiver, flight_url, baseline, strawberry, http, flight, connection, sql_client, raw,
                     live_server, live, dataset)


# --- measurement ----------------------------------------------------------------------------------


def variants_for(rows: int, skip_slow: bool) -> tuple[list[str], dict[str, str]]:
    """The variants run at ``rows``, and why any other is left out."""
    if rows > SLOW_MAX_ROWS:
        return [k for k in VARIANTS if k != STRAWBERRY], {STRAWBERRY: f"not run above {fmt_rows(SLOW_MAX_ROWS)} rows"}
    if skip_slow and rows >= SLOW_MAX_ROWS:
        return [k for k in VARIANTS if k != STRAWBERRY], {STRAWBERRY: "left out (--skip-slow)"}
    return list(VARIANTS), {}


def sorted_ids(table: pa.Table) -> np.ndarray[Any, Any]:
    """The ``id`` column as sorted int64 (JSON planes send int8 as strings)."""
    column = table.column("id")
    if not pa.types.is_integer(column.type):
        column = column.cast(pa.int64())
    return np.sort(column.to_numpy())


def check_size(planes: Planes, rows: int, keys: list[str]) -> list[str]:
    """Every variant returns ``rows`` rows with the same id set; Flight and Arrow over HTTP return equal tables;
    the JSON servers return equal rows. Serves as each variant's warm-up; returns notes."""
    notes: set[str] = set()
    reference_ids: np.ndarray[Any, Any] | None = None
    flight_table: pa.Table | None = None
    json_reference: tuple[str, list[dict[str, Any]]] | None = None
    adbc_values: pa.Table | None = None
    for key in keys:
        if key in (JSON_PLANE, FRAISEQL, STRAWBERRY):
            parsed = planes.json_rows(key, rows)
            table = pa.Table.from_pylist(parsed)
            if json_reference is None:
                json_reference = (key, parsed)
            elif parsed != json_reference[1]:
                differ = sum(1 for a, b in zip(parsed, json_reference[1], strict=False) if not same_row(a, b))
                if differ or len(parsed) != len(json_reference[1]):
                    raise AssertionError(f"{key}: {differ} rows differ from {json_reference[0]}'s")
                notes.add(TIMESTAMP_NOTE)
            del parsed
        else:
            table, _ = planes.fetch(key, rows)
        if table.num_rows != rows:
            raise AssertionError(f"{key}: expected {rows} rows, got {table.num_rows}")
        ids = sorted_ids(table)
        if reference_ids is None:
            reference_ids = ids
            if len(np.unique(ids)) != rows:
                raise AssertionError(f"{key}: duplicate ids")
        elif key == LIVE:  # a LIMIT without an order: any N rows (DuckDB streams its scan), checked below
            if len(np.unique(ids)) != rows:
                raise AssertionError(f"{key}: duplicate ids")
        elif not np.array_equal(ids, reference_ids):
            raise AssertionError(f"{key}: id set differs from {keys[0]}'s")
        if key == FLIGHT:
            flight_table = table
        elif key == LIVE:
            if (table.schema.metadata or {}).get(b"quiver:source") != b"live":
                raise AssertionError("the live server answered from PostgreSQL, not from its live dataset")
            if flight_table is not None and not without_freshness(table).schema.equals(flight_table.schema,
                                                                                         check_metadata=True):
                raise AssertionError("live Flight and Flight returned different schemas")
            ordered = f"{{ orders(orderBy: [{{id: ASC}}], limit: {int(rows)}) {{ {FIELDS} }} }}"
            live_ordered = planes.live.query(ordered)
            if not without_freshness(live_ordered).equals(planes.flight.query(ordered), check_metadata=True):
                raise AssertionError("live Flight and Flight returned different tables for the same ordered query")
            notes.add("live Flight and Flight returned equal tables (schema, metadata bar freshness, and values) "
                      "for the query ordered by id; unordered, the live answer is N distinct rows of the table, "
                      "not necessarily the N that PostgreSQL's scan meets first")
        elif key == ARROW_HTTP and flight_table is not None and not table.equals(flight_table, check_metadata=True):
            raise AssertionError("Arrow over HTTP and Flight returned different tables")
        if key == ADBC:
            adbc_values = _by_id(table)
        elif key in (FLIGHT_SQL, FLIGHT_SQL_PYARROW) and adbc_values is not None:
            if not _by_id(table).equals(adbc_values):
                raise AssertionError("Flight SQL and in-process ADBC returned different values")
            notes.add("Flight SQL and in-process ADBC returned equal values")
        del table
    gc.collect()
    if FLIGHT in keys and ARROW_HTTP in keys:
        notes.add("Flight and Arrow over HTTP returned equal tables (schema, metadata and values)")
    json_keys = [k for k in keys if k in (JSON_PLANE, FRAISEQL, STRAWBERRY)]
    if len(json_keys) > 1:
        notes.add(f"{', '.join(SHORT[k] for k in json_keys)} returned equal rows after parsing")
    return sorted(notes)


def without_freshness(table: pa.Table) -> pa.Table:
    """``table`` without the live answer's ``quiver:source`` and ``quiver:watermark`` metadata."""
    kept = {k: v for k, v in (table.schema.metadata or {}).items() if k not in (b"quiver:source", b"quiver:watermark")}
    return table.replace_schema_metadata(kept or None)


def _by_id(table: pa.Table) -> pa.Table:
    """``table`` sorted by id, its numeric column as text and without metadata, to compare values."""
    plain = pa.table({name: (column.cast(pa.string()) if name == "total" else column)
                      for name, column in zip(table.column_names, table.columns, strict=True)})
    return plain.sort_by("id")


def same_row(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal JSON rows, ``placedAt`` compared as an instant (``.95343`` and ``.953430`` are the same time)."""
    if a == b:
        return True
    if a.keys() != b.keys() or any(a[k] != b[k] for k in a if k != "placedAt"):
        return False
    return dt.datetime.fromisoformat(a["placedAt"]) == dt.datetime.fromisoformat(b["placedAt"])


def measure_size(planes: Planes, rows: int, rounds: int, skip_slow: bool = False, progress: bool = False) -> SizeResult:
    """Check once, then ``rounds`` rounds of every variant; the starting variant rotates each round."""
    keys, skipped = variants_for(rows, skip_slow)
    notes = check_size(planes, rows, keys)
    result = SizeResult(rows, rounds, {k: VariantTimes(k, rows) for k in keys}, skipped=skipped, notes=notes)
    for round_index in range(rounds):
        shift = round_index % len(keys)
        this_round: dict[str, Sample] = {}
        for key in keys[shift:] + keys[:shift]:
            sample = planes.sample(key, rows)
            result.variants[key].samples.append(sample)
            this_round[key] = sample
        for numerator, denominator, stage in RATIOS:
            if numerator in this_round and denominator in this_round:
                value = getattr(this_round[numerator], stage) / getattr(this_round[denominator], stage)
                result.ratios.setdefault(ratio_key(numerator, denominator, stage), []).append(value)
        if progress:
            line = ", ".join(f"{k} {fmt_seconds(s.table)}" for k, s in this_round.items())
            print(f"  {fmt_rows(rows)} round {round_index + 1}/{rounds}: {line}", file=sys.stderr, flush=True)
    for key, size in planes.body_bytes.items():
        if key in result.variants:
            result.variants[key].body_bytes = size
    planes.body_bytes.clear()
    return result


def package_versions() -> dict[str, str]:
    """Versions of the libraries on the measured paths."""
    out = {}
    for name in ("pyarrow", "adbc-driver-postgresql", "psycopg", "httpx", "orjson", "pandas", "polars",
                 "strawberry-graphql", "graphql-core", "uvicorn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "?"
    return out


def run(db_url: str, sizes: list[int], rounds: list[int] | None = None, *, skip_slow: bool = False,
        machine: str = "", database: str = "", command: str = "", progress: bool = False) -> BenchResult:
    """Start every server over ``db_url``, measure every size, stop the servers."""
    rounds = rounds or [default_rounds(rows) for rows in sizes]
    if len(rounds) != len(sizes):
        raise ValueError("one rounds count per size")
    began = time.perf_counter()
    load_before = os.getloadavg()
    with_strawberry = any(STRAWBERRY in variants_for(rows, skip_slow)[0] for rows in sizes)
    results = []
    with open_planes(db_url, with_strawberry) as planes:
        for rows, count in zip(sizes, rounds, strict=True):
            if progress:
                print(f"{fmt_rows(rows)} rows, {count} rounds...", file=sys.stderr, flush=True)
            results.append(measure_size(planes, rows, count, skip_slow, progress))
        servers = [planes.quiver, planes.baseline, planes.live_server] + (
            [planes.strawberry] if planes.strawberry else [])
        rss = {server.name: peak_rss_mb(server.pid) for server in servers}
        live_dataset = planes.live_dataset
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return BenchResult(results, rss, machine, database, today, command, (load_before, os.getloadavg()),
                       package_versions(), time.perf_counter() - began, live_dataset)


# --- report ---------------------------------------------------------------------------------------


def _ratio_cell(size: SizeResult, key: str) -> str:
    values = size.ratios.get(key)
    if not values:
        return "–"
    median = statistics.median(values)
    spread = f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else ""
    return f"{median:.2f}×{spread}"


def target_verdicts(result: BenchResult) -> list[tuple[Target, float | None, list[float]]]:
    """Each target with its measured median ratio (None: not measured in this run) and the per-round ratios."""
    out = []
    for target in TARGETS:
        size = next((s for s in result.sizes if s.rows == target.rows), None)
        values = size.ratios.get(target.key, []) if size else []
        out.append((target, statistics.median(values) if values else None, values))
    return out


def render_section(result: BenchResult) -> str:
    """The markdown section (``## ...`` to the end of this benchmark's text)."""
    load0, load1 = result.load_average
    versions = ", ".join(f"{name} {v}" for name, v in result.versions.items())
    lines = [
        SECTION_TITLE,
        "",
        "Time from one request to a table in the client, for `{ orders(limit: N) { "
        f"{FIELDS} }} }}` (8 columns of the demo `orders` table: int8, uuid, int8, enum, numeric(12,2), bool, "
        "timestamptz, jsonb), over each of Quiver's planes, against the PostgreSQL→Arrow limit and two Python "
        "baselines:",
        "",
        f"- **{LABELS[ADBC]}:** `adbc_driver_postgresql.dbapi`, `fetch_arrow_table()` of `{ADBC_SQL.format('N')}` "
        "(10 MB batch size hint), in the client's process: no server, no GraphQL.",
        f"- **{LABELS[FLIGHT]}:** `quiver.client.Client(url).query(graphql)` (ticket "
        "`{\"kind\":\"graphql\",\"query\":...}`, `do_get(...).read_all()`).",
        f"- **{LABELS[ARROW_HTTP]}:** httpx `POST /graphql` with `Accept: {ARROW_TYPE}`, the whole body, "
        "then `pa.ipc.open_stream(body).read_all()`.",
        f"- **{LABELS[JSON_PLANE]}:** httpx `POST /graphql`, `orjson.loads`, `pa.Table.from_pylist(rows)`.",
        f"- **{LABELS[FRAISEQL]}:** the `jsonb_build_object` view server of the section above "
        "(`benchmarks/baselines/fraiseql_v1.py`); httpx, `orjson.loads`, `pa.Table.from_pylist(rows)`.",
        f"- **{LABELS[STRAWBERRY]}:** a typical Python GraphQL stack (`benchmarks/baselines/strawberry_app.py`): "
        "Strawberry with an `Order` type (BigInt and Decimal scalars sent as strings, UUID, DateTime, JSON), an "
        "async root resolver running `SELECT id, uuid, customer_id, status, total, is_paid, placed_at, meta FROM "
        "orders LIMIT %s` with psycopg 3 (async pool, `class_row(Order)`), Strawberry's ASGI app under uvicorn, "
        "the response encoded with stdlib `json` (Strawberry's default); the client parses with stdlib "
        "`json.loads`, then `pa.Table.from_pylist(rows)`.",
        f"- **{LABELS[FLIGHT_SQL]}:** the SQL of (a) sent to Quiver's Flight port as Flight SQL by "
        "`adbc_driver_flightsql.dbapi` (`execute`, `fetch_arrow_table()`): GetFlightInfo (PostgreSQL describes the "
        "statement), then the DoGet that runs it read-only with ADBC's binary COPY in the server.",
        f"- **{LABELS[FLIGHT_SQL_PYARROW]}:** the same Flight SQL calls made with pyarrow's C++ Flight client "
        "(`get_flight_info` of a `CommandStatementQuery`, then `do_get(...).read_all()`): (g) without ADBC's "
        "Go-based client.",
        f"- **{LABELS[LIVE]}:** the client of (b) on a second Quiver server started with "
        "`QUIVER_LIVE_ENTITIES='[\"orders\"]'` (after `quiver events install` on the database): it loads "
        "`orders` into DuckDB from one snapshot, follows its event stream, and answers the same GraphQL ticket "
        "from memory (`docs/live.md`). The check asserts each answer says `quiver:source = live` and equals (b)'s "
        "table, schema and metadata included (bar the freshness keys).",
        "",
        f"- **Date:** {result.date}",
        f"- **Machine:** {result.machine}. The client, all three servers and PostgreSQL run on this one machine "
        "(loopback HTTP, gRPC and TCP).",
        f"- **Libraries:** {versions}.",
        "- **Reproduce:** `make bench` (runs `scripts/services start`, then the benchmarks, this one included, with "
        f"the services' environment). This run: `{result.command}` ({result.duration_s / 60:.0f} min).",
        f"- **Load:** load average (1, 5, 15 min) {load0[0]:.2f}, {load0[1]:.2f}, {load0[2]:.2f} at the start and "
        f"{load1[0]:.2f}, {load1[1]:.2f}, {load1[2]:.2f} at the end of the run (the benchmark's own processes "
        "included).",
        f"- **Method:** database {result.database}, `synchronize_seqscans = off` so every `LIMIT N` reads the same "
        "rows. Quiver (`python -m quiver.cli serve --port P --flight-port F`: HTTP and Flight in one process), the "
        "FraiseQL v1 server and the Strawberry server run at once as subprocesses on 127.0.0.1. Per size: one "
        "untimed call of every variant that checks N rows with equal id sets (and that Flight and Arrow over HTTP "
        "return equal tables, and the three JSON servers equal rows), then R rounds with the variants interleaved "
        "(the starting variant rotates each round). *pyarrow.Table* is request → table in the client. The pandas "
        "and polars columns are request → DataFrame (`to_pandas(types_mapper=pd.ArrowDtype)`, default "
        "`to_pandas()`, `pl.from_arrow`): for Flight, separate calls of `Client.to_pandas` / `Client.to_polars`; "
        "for the others, the table time plus the conversion of that table. Times are medians (min–max over the "
        "rounds); rows/s uses the table median; MB = 10⁶ bytes. Ratios are medians of per-round ratios "
        "(min–max in parentheses).",
        "",
        "| rows | variant | rounds | → pyarrow.Table | min–max | rows/s | → pandas (ArrowDtype) | → pandas (default) "
        "| → polars | body MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in result.sizes:
        for key in VARIANTS:
            variant = size.variants.get(key)
            if variant is None:
                reason = size.skipped.get(key, "not run")
                lines.append(f"| {fmt_rows(size.rows)} | {LABELS[key]} | 0 | {reason} | | | | | | |")
                continue
            table = variant.seconds("table")
            body = "" if variant.body_bytes is None else f"{variant.body_bytes / 1e6:.1f}"
            lines.append(
                f"| {fmt_rows(size.rows)} | {LABELS[key]} | {len(table)} | {fmt_seconds(variant.median())} | "
                f"{fmt_seconds(min(table))}–{fmt_seconds(max(table))} | {variant.rows_per_second:,.0f} | "
                f"{fmt_seconds(variant.median('pandas_arrow'))} | {fmt_seconds(variant.median('pandas'))} | "
                f"{fmt_seconds(variant.median('polars'))} | {body} |"
            )
    lines += ["", "Ratios (median of per-round ratios; min–max):", "",
              "| ratio | to | " + " | ".join(f"{fmt_rows(s.rows)} rows" for s in result.sizes) + " |",
              "|---|---|" + "---:|" * len(result.sizes)]
    for numerator, denominator, stage in RATIOS:
        key = ratio_key(numerator, denominator, stage)
        cells = " | ".join(_ratio_cell(size, key) for size in result.sizes)
        lines.append(f"| {SHORT[numerator]} / {SHORT[denominator]} | {STAGE_LABELS[stage]} | {cells} |")
    lines.append("")
    lines += ["Targets (time to `pyarrow.Table`):", ""]
    for target, value, values in target_verdicts(result):
        if value is None:
            lines.append(f"- {target.describe()}: not measured in this run.")
            continue
        verdict = "met" if target.met(value) else "**not met**"
        per_round = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"- {target.describe()}: measured **{value:.2f}×** (per round {per_round}): {verdict}.")
    lines.append("")
    rss = {k: v for k, v in result.peak_rss_mb.items() if v is not None}
    if rss:
        names = {QUIVER: "Quiver (HTTP + Flight)", BASELINE: "FraiseQL v1", STRAWBERRY: "Strawberry",
                 LIVE_SERVER: "Quiver with `orders` live (the whole table held)"}
        shown = ", ".join(f"{names.get(k, k)} {v:,.0f} MB" for k, v in rss.items())
        lines += [f"Server peak RSS (VmHWM) after the whole run: {shown}.", ""]
    lines += _live_memory(result)
    lines += _reading(result)
    notes = sorted({note for size in result.sizes for note in size.notes})
    lines += [
        "Notes: " + "; ".join([*notes, "the tables built from JSON are less typed than the Arrow ones (int8, "
                               "numeric, uuid and timestamps stay strings, `meta` becomes a struct), so their "
                               "pandas and polars times are flattering; the in-process ADBC table has no GraphQL, "
                               "no server and no network, and uses text for uuid, enum and jsonb like Quiver"]) + ".",
        "",
        "Single runs on shared vCPUs vary a lot: read the per-round ratios and spreads, not only the medians.",
        "",
    ]
    return "\n".join(lines)


def _live_memory(result: BenchResult) -> list[str]:
    """The live server's dataset: rows held, load time, and memory per million rows."""
    d = result.live_dataset
    rows = d.get("rows", 0.0)
    if not rows:
        return []
    per_million = 1e6 / rows / 2**20
    extra = d["rss_bytes"] - d["plain_rss_bytes"]
    return [f"Live dataset (i): {rows:,.0f} rows of `orders` loaded in {d['load_seconds']:.1f} s (server start to "
            f"`live`, the snapshot read through the Arrow plane included); DuckDB holds "
            f"{d['duckdb_bytes'] / 2**20:,.0f} MiB (`quiver_live_memory_bytes`), "
            f"**{d['duckdb_bytes'] * per_million:,.0f} MiB per million rows**; the live server's RSS after loading "
            f"was {d['rss_bytes'] / 2**20:,.0f} MiB, "
            f"{extra / 2**20:,.0f} MiB above server (b)'s at the same moment ({extra * per_million:,.0f} MiB per "
            "million rows).", ""]


def _reading(result: BenchResult) -> list[str]:
    """A paragraph on the largest size: the limit's own speed, and where each plane stands against it."""
    largest = max(result.sizes, key=lambda s: s.rows)
    limit, flight = largest.variants.get(ADBC), largest.variants.get(FLIGHT)
    if limit is None or flight is None:
        return []
    text = (f"Reading the numbers: at {fmt_rows(largest.rows)} rows the PostgreSQL→Arrow limit itself ran at "
            f"{limit.rows_per_second / 1e6:.2f} M rows/s (earlier scouting on this machine, when it was quiet, "
            f"measured about {QUIET_ADBC_ROWS_PER_S / 1e6:.1f} M rows/s for the same kind of query), so every time "
            "here includes the contention for the 2 vCPUs. Flight took "
            f"{fmt_seconds(max(flight.median() - limit.median(), 0.0))} more than the limit (median against "
            "median)")
    others = [(key, largest.variants[key]) for key in (JSON_PLANE, FRAISEQL, STRAWBERRY) if key in largest.variants]
    if others:
        text += "; the JSON paths took " + ", ".join(
            f"{fmt_seconds(v.median())} ({SHORT[k]}, {v.rows_per_second / 1e3:,.0f}k rows/s)" for k, v in others)
    return [text + ".", ""]


# --- command line ---------------------------------------------------------------------------------


def bench_database(orders: int) -> str:
    """``quiver_bench`` at the default size (shared with json_plane), else ``quiver_bench_<orders>``."""
    return DB_NAME if orders == BENCH_ORDERS else f"{DB_NAME}_{orders}"


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.query_planes",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("QUIVER_TEST_ADMIN_URL", DEFAULT_ADMIN_URL),
                        help="admin URL of the PostgreSQL server (the benchmark creates its own database)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="result sizes, comma-separated")
    parser.add_argument("--rounds", default=None,
                        help="rounds: one number for every size, or one per size (default 5 up to 100k rows, else 3)")
    parser.add_argument("--orders", type=int, default=BENCH_ORDERS,
                        help=f"orders in the bench database (default {BENCH_ORDERS:,}; 10,000,000 for 10M sizes)")
    parser.add_argument("--skip-slow", action="store_true", help="leave Strawberry out at 1M rows (quick runs)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT),
                        help="markdown file whose section is (re)written; '' to skip")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--machine-note", default=MACHINE_NOTE, help="free text added to the machine description")
    args = parser.parse_args(argv)
    sizes = _ints(args.sizes)
    if not sizes or any(not 0 < s <= args.orders for s in sizes):
        parser.error(f"--sizes must be between 1 and --orders ({args.orders:,})")
    rounds = None
    if args.rounds is not None:
        rounds = _ints(args.rounds)
        rounds = rounds * len(sizes) if len(rounds) == 1 else rounds
        if len(rounds) != len(sizes) or any(r < 1 for r in rounds):
            parser.error("--rounds: one number >= 1, or one per size")
    name = bench_database(args.orders)
    print(f"preparing {name} ({args.orders:,} orders)...", file=sys.stderr, flush=True)
    db_url = ensure_bench_database(args.database_url, name, args.orders)
    command = command_line("benchmarks.query_planes", argv)
    result = run(db_url, sizes, rounds, skip_slow=args.skip_slow,
                 machine=describe_machine(db_url, args.machine_note),
                 database=f"`{name}` with {args.orders:,} demo orders (seed 42)", command=command, progress=True)
    publish(render_section(result), SECTION_TITLE, args.output, result.as_json() if args.json else None)


if __name__ == "__main__":
    main()
