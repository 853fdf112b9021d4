"""Each sink's own ceiling and each stage's cost, on the run's newest events: the sinks' requests are encoded
once and only the requests timed (the server's rate for exactly what the sink sends), and the CPU stages
are timed alone on one thread, so a rate the pipeline missed can be traced to the part that limits it."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pyarrow as pa

from benchmarks.common import ROOT
from benchmarks.events.pipeline import SINKS
from quiver.arrow.events import encode_event, events_to_batch
from quiver.events.capture import OUTBOX
from quiver.events.sinks.clickhouse import COLUMNS, ClickHouseSink, native_body, table_ddl
from quiver.events.sinks.search import SearchSink, monthly_index

PROBE_EVENTS = 200_000
CONSUMER_BATCH = 20_000  # the consumer's largest write: 40 messages of up to 500 events
# The relay's read of the outbox (relay._FETCH without the "unpublished" filter): the rows the consumer gets.
EVENTS_SQL = f"""
SELECT seq, event_id::text, entity, entity_id, op,
       CAST(floor(extract(epoch FROM occurred_at) * 1000000) AS bigint), data::text, changed, actor, tenant_id
FROM (SELECT * FROM {OUTBOX} ORDER BY seq DESC LIMIT %s) AS newest ORDER BY seq
"""
EVENT_KEYS = ("seq", "event_id", "entity", "entity_id", "op", "occurred_at", "data", "changed", "actor", "tenant_id")


@dataclass
class Throughput:
    """A timed operation over ``events`` events (median over rounds)."""

    name: str
    events: int
    seconds: list[float]
    megabytes: float = 0.0
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def events_per_second(self) -> float:
        return self.events / self.median if self.median else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "median": self.median, "events_per_second": self.events_per_second}


def newest_events(url: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` outbox events, as the consumer decodes them from JetStream."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(EVENTS_SQL, (limit,)).fetchall()
    return [dict(zip(EVENT_KEYS, row, strict=True)) for row in rows]


def _time(work: Callable[[], object], rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return seconds


def stage_costs(events: list[dict[str, Any]], rounds: int = 3, sinks: Iterable[str] = SINKS) -> list[Throughput]:
    """Each CPU stage between the outbox row and each sink's request, on one thread."""
    n = len(events)
    messages = [b"[" + b",".join(encode_event(e) for e in events[i:i + 500]) + b"]" for i in range(0, n, 500)]
    decoded = [e for m in messages for e in orjson.loads(m)]
    batch = events_to_batch(decoded)

    def decode() -> None:
        delivered: dict[str, dict[str, Any]] = {}
        for message in messages:
            for event in orjson.loads(message):
                delivered.setdefault(event["event_id"], event)

    out = [
        Throughput("relay: event → JSON message (orjson)", n, _time(
            lambda: [b"[" + b",".join(encode_event(e) for e in events[i:i + 500]) + b"]" for i in range(0, n, 500)],
            rounds)),
        Throughput("consumer: JSON messages → deduplicated dicts", n, _time(decode, rounds)),
        Throughput("consumer: dicts → Arrow batch (events_to_batch)", n, _time(lambda: events_to_batch(decoded),
                                                                                 rounds)),
    ]
    if "clickhouse" in sinks:
        out.append(Throughput("ClickHouse sink: Arrow → Native body (native_body)", n,
                              _time(lambda: native_body(batch), rounds)))
    if "search" in sinks:
        encoder = SearchSink("http://127.0.0.1:9", "bench-encode")  # encoding only: no request is sent
        out.append(Throughput("search sink: Arrow → NDJSON bulk bodies (bulk_bodies)", n,
                              _time(lambda: encoder.bulk_bodies(batch), rounds)))
    return out


def redis_dedup_cost(url: str, events: list[dict[str, Any]], rounds: int = 3) -> Throughput:
    """The consumer's Redis dedup per batch (``seen`` then ``mark``, as the consumer calls them), in 20k batches."""
    from quiver.events.dedup import RedisDedup

    pairs = [(str(e["event_id"]), int(e["seq"])) for e in events]
    sink = f"bench-probe-{os.getpid()}-{time.time_ns() % 10**9}"  # keys of its own, removed afterwards

    async def timed() -> list[float]:
        seconds = []
        for round_index in range(rounds):
            dedup = RedisDedup(url, f"{sink}-{round_index}", ttl_seconds=600)
            try:
                started = time.perf_counter()
                for i in range(0, len(pairs), CONSUMER_BATCH):
                    chunk = pairs[i:i + CONSUMER_BATCH]
                    await dedup.seen(chunk)
                    await dedup.mark(chunk)
                seconds.append(time.perf_counter() - started)
                if dedup.down_since is not None:
                    raise RuntimeError(f"Redis at {url} did not answer")
            finally:
                async for key in dedup.redis.scan_iter(match=f"quiver:dedup:{sink}-{round_index}:*", count=1000):
                    await dedup.redis.delete(key)
                await dedup.close()
        return seconds

    return Throughput("consumer: Redis dedup (`seen` + `mark` per batch)", len(pairs), asyncio.run(timed()),
                      note=f"{CONSUMER_BATCH // 1000}k events per batch")


def clickhouse_insert(url: str, database: str, events: list[dict[str, Any]], rounds: int = 3) -> list[Throughput]:
    """POST the events, encoded once, into a fresh table (same DDL) per round: one request, then 20k-event requests."""
    batch = events_to_batch(events)
    sink = ClickHouseSink(url, database)

    async def setup() -> None:
        try:
            await sink.setup()
        finally:
            await sink.close()

    asyncio.run(setup())
    info = sink.info
    assert info is not None
    body = native_body(batch, datetime64=info.datetime64)
    chunks = [native_body(batch.slice(i, CONSUMER_BATCH), datetime64=info.datetime64)
              for i in range(0, batch.num_rows, CONSUMER_BATCH)]
    insert = f"INSERT INTO {database}.events ({', '.join(COLUMNS)}) FORMAT Native"
    out = []
    with httpx.Client(base_url=url, timeout=600) as client:

        def run_sql(statement: str) -> str:
            response = client.post("/", content=statement.encode())
            if response.status_code != 200:
                raise RuntimeError(f"ClickHouse: {response.text[:500]}")
            return response.text

        def fresh_table() -> None:
            run_sql(f"DROP TABLE IF EXISTS {database}.events")
            run_sql(table_ddl(database, info))

        try:
            for label, bodies in ((f"ClickHouse {info.version}: one Native request", [body]),
                                  (f"ClickHouse {info.version}: {CONSUMER_BATCH // 1000}k-event Native requests",
                                   chunks)):
                seconds = []
                for _ in range(rounds):
                    fresh_table()
                    started = time.perf_counter()
                    for part in bodies:
                        response = client.post("/", params={"query": insert}, content=part)
                        if response.status_code != 200:
                            raise RuntimeError(f"ClickHouse insert: {response.text[:500]}")
                    seconds.append(time.perf_counter() - started)
                    stored = int(run_sql(f"SELECT count() FROM {database}.events FORMAT TSV").strip())
                    if stored != len(events):
                        raise AssertionError(f"{label}: {stored} rows stored, {len(events)} sent")
                out.append(Throughput(label, len(events), seconds, sum(map(len, bodies)) / 1e6,
                                      f"{len(bodies)} request(s)"))
        finally:
            run_sql(f"DROP DATABASE IF EXISTS {database}")
    return out


def search_bulk(url: str, prefix: str, events: list[dict[str, Any]], rounds: int = 3,
                write_rounds: int = 1) -> list[Throughput]:
    """OpenSearch's own ``_bulk`` rate for the search sink's exact requests, then the sink's ``write()`` itself.

    The events go in consumer-sized batches; each batch's NDJSON bodies come from the sink's own
    ``bulk_bodies`` (cut at its ``max_bulk_bytes``), encoded once, and only the POSTs are timed, into
    freshly created indices of the sink's template each round. ``write()`` adds the sink's encoding and
    its reading of every item's result; it takes as long as the requests, hence fewer rounds by default.
    Everything under ``prefix`` is deleted afterwards.
    """
    sink = SearchSink(url, prefix)
    batches = [events_to_batch(events[i:i + CONSUMER_BATCH]) for i in range(0, len(events), CONSUMER_BATCH)]
    bodies: list[bytes] = []
    for batch in batches:
        encoded, refused = sink.bulk_bodies(batch)
        if refused:
            raise AssertionError(f"the search sink refuses {len(refused)} probe events: {list(refused.items())[:3]}")
        bodies += encoded
    indices = sorted({monthly_index(prefix, int(e["occurred_at"])) for e in events})
    out = []
    with httpx.Client(base_url=url, timeout=600) as client:

        def call(method: str, path: str, **kwargs: Any) -> Any:
            response = client.request(method, path, **kwargs)
            if response.status_code >= 300:
                raise RuntimeError(f"OpenSearch {method} {path}: {response.status_code} {response.text[:500]}")
            return orjson.loads(response.content)

        def fresh_indices() -> None:
            """Empty indices from the sink's template (``PUT`` waits for the primary shard)."""
            for index in indices:
                if client.delete(f"/{index}").status_code not in (200, 404):
                    raise RuntimeError(f"OpenSearch: cannot delete {index}")
                call("PUT", f"/{index}")

        def check_stored(label: str) -> None:
            call("POST", f"/{prefix}/_refresh")
            stored = int(call("GET", f"/{prefix}/_count")["count"])
            if stored != len(events):
                raise AssertionError(f"{label}: {stored} documents stored, {len(events)} sent")

        async def sink_writes() -> float:
            writer = SearchSink(url, prefix)
            try:
                await writer.setup()
                started = time.perf_counter()
                for batch in batches:
                    await writer.write(batch)
                return time.perf_counter() - started
            finally:
                await writer.close()

        try:
            asyncio.run(_setup_search(sink))  # installs the template the indices are created from
            server = call("GET", "/")["version"]
            version = f"{'OpenSearch' if server.get('distribution') == 'opensearch' else 'Elasticsearch'} " \
                      f"{server['number']}"
            label = f"{version}: the search sink's `_bulk` requests"
            seconds = []
            for _ in range(rounds):
                fresh_indices()
                started = time.perf_counter()
                for body in bodies:
                    answer = call("POST", "/_bulk", params=sink.bulk_params(), content=body,
                                  headers={"Content-Type": "application/x-ndjson"})
                    if answer.get("errors"):
                        raise RuntimeError(f"{label}: some items failed: {str(answer)[:500]}")
                seconds.append(time.perf_counter() - started)
                check_stored(label)
            out.append(Throughput(label, len(events), seconds, sum(map(len, bodies)) / 1e6,
                                  f"{len(bodies)} request(s) ≤ {sink.max_bulk_bytes / 2**20:g} MiB from "
                                  f"{len(batches)} batch(es) of ≤ {CONSUMER_BATCH // 1000}k events"))
            label = f"{version}: the search sink's `write()`"
            seconds = []
            for _ in range(write_rounds):
                fresh_indices()
                seconds.append(asyncio.run(sink_writes()))
                check_stored(label)
            out.append(Throughput(label, len(events), seconds, sum(map(len, bodies)) / 1e6,
                                  f"{len(batches)} write(s), encoding and result checks included; "
                                  f"{write_rounds} round(s)"))
        finally:
            with suppress(httpx.HTTPError):
                client.delete(f"/{prefix}-*")
                client.delete(f"/_index_template/{prefix}")
    return out


async def _setup_search(sink: SearchSink) -> None:
    try:
        await sink.setup()
    finally:
        await sink.close()


def chdb_insert(events: list[dict[str, Any]], workdir: Path, rounds: int = 3) -> Throughput:
    """``INSERT INTO quiver.events SELECT * FROM Python(table)`` in a child process (chDB: one path per process)."""
    batch = events_to_batch(events)
    arrow_path = workdir / "probe.arrow"
    with pa.OSFile(str(arrow_path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)
    result = subprocess.run([sys.executable, "-m", "benchmarks.events", "--chdb-probe", str(arrow_path),
                             "--chdb-path", str(workdir / "chdb-probe"), "--rounds", str(rounds)],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    if result.returncode:
        raise RuntimeError(f"chDB probe failed: {result.stderr[-2000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return Throughput(f"chDB {answer['version']}: INSERT ... SELECT * FROM Python(table)", len(events),
                      answer["seconds"], batch.nbytes / 1e6, "Arrow in memory")


def chdb_probe(arrow_path: Path, path: Path, rounds: int) -> None:
    """The child side of ``chdb_insert`` (``--chdb-probe``): prints {"version", "seconds"} as JSON."""
    from quiver.events.sinks.chdb import ChdbSink

    with pa.memory_map(str(arrow_path)) as source:
        batch = pa.ipc.open_file(source).get_batch(0)
    sink = ChdbSink(path)
    seconds = []
    for _ in range(rounds):
        sink.query_arrow("DROP TABLE IF EXISTS quiver.events")
        asyncio.run(sink.setup())
        started = time.perf_counter()
        asyncio.run(sink.write(batch))
        seconds.append(time.perf_counter() - started)
        stored = sink.query_arrow("SELECT count() AS n FROM quiver.events").column("n")[0].as_py()
        if stored != batch.num_rows:
            raise AssertionError(f"chDB stored {stored} of {batch.num_rows}")
    version = sink.query_arrow("SELECT version() AS v").column("v")[0].as_py()
    print(json.dumps({"version": version, "seconds": seconds}))
