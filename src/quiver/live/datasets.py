"""The live datasets of one server: which entities, their loops, and answering a query from them.

``answer`` is what the Arrow planes call (from worker threads) before going to PostgreSQL:
a live answer when the entity is live and the compiler can keep PostgreSQL's meaning
(``sql/live.py``), else None and the request goes to PostgreSQL as always. A ``fresh``
read first waits (``fresh``) until the dataset applied every change committed before
the request: every outbox row then visible is published, and the dataset applied the
entity's stream up to its last message after that. Past ``QUIVER_LIVE_FRESH_TIMEOUT_MS``
it falls back to PostgreSQL, or refuses with ``NOT_FRESH``, as configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Generator, Iterator
from typing import Any

import nats
import pyarrow as pa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from quiver.config import Settings
from quiver.db import AdbcPool
from quiver.errors import NotFresh
from quiver.events import bus
from quiver.events.reading import StreamReader
from quiver.execute.arrow_plane import ArrowQuery
from quiver.live.dataset import Dataset, State, last_message, newest_seq, unpublished
from quiver.live.store import Store, to_answer
from quiver.plan import nodes
from quiver.schema.model import Entity, Model
from quiver.sql.live import NotLive, binary_collation, compile_live

log = logging.getLogger("quiver.live")
CONSISTENCIES = ("fresh", "any")  # the `consistency` a read may ask for (Flight tickets spell it as a Literal)
Batches = Generator[pa.RecordBatch, None, None]
SOURCE = b"quiver:source"
WATERMARK = b"quiver:watermark"
_COLLATIONS = """
SELECT a.attname, CASE WHEN co.collname = 'default' THEN d.datcollate ELSE co.collname END
FROM pg_attribute AS a JOIN pg_collation AS co ON co.oid = a.attcollation
JOIN pg_database AS d ON d.datname = current_database()
WHERE a.attrelid = CAST($1 AS regclass) AND a.attnum > 0 AND NOT a.attisdropped
"""


def root_entity(root: nodes.Root) -> Entity | None:
    if isinstance(root, nodes.ListRoot):
        return root.query.entity
    if isinstance(root, nodes.OneRoot | nodes.AggregateRoot):
        return root.entity
    return None


class LiveDatasets:
    def __init__(self, settings: Settings, model: Model, adbc: AdbcPool) -> None:
        self.settings = settings
        self.adbc = adbc
        self.memory_bytes = settings.live_memory_mb * 2**20
        self.store = Store(settings.live_memory_mb)
        self.topology = bus.Topology(settings.events_namespace)
        self.datasets: dict[str, Dataset] = {}
        self.answers: dict[tuple[str, str], int] = {}  # (entity, "live" or the fallback's reason) -> count
        for wanted in settings.live_entities:
            entity = _find(model, wanted)
            if entity is None:
                raise ValueError(f"QUIVER_LIVE_ENTITIES names {wanted!r}: no such table or view")
            dataset = Dataset(entity, self.store, settings, adbc)
            if not entity.primary_key:
                dataset.state, dataset.reason = State.NOT_CACHED, "no primary key: changes cannot be applied by key"
            self.datasets[entity.qualified] = dataset
        self.loop: asyncio.AbstractEventLoop | None = None
        self.nc: Any = None
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect to NATS and start every dataset's loop (loading runs in the background)."""
        if not self.datasets:
            return
        self.loop = asyncio.get_running_loop()
        self.nc = await nats.connect(self.settings.nats_url, name="quiver-live", max_reconnect_attempts=-1,
                                     reconnect_time_wait=0.5, connect_timeout=2)
        js = self.nc.jetstream(timeout=5)
        with contextlib.suppress(Exception):  # as the relay does: the stream may not exist yet
            await bus.ensure_streams(js, self.topology)
        for dataset in self.datasets.values():
            if dataset.state is State.NOT_CACHED:
                continue
            dataset.binary_text = await asyncio.to_thread(self._binary_text, dataset.entity)
            reader = StreamReader(js, self.topology, dataset.entity.event_name, batch=50)
            self.tasks.append(asyncio.create_task(dataset.run(reader, self.memory_bytes)))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    def _binary_text(self, entity: Entity) -> frozenset[str]:
        conn = self.adbc.acquire()
        ok = False
        try:
            cursor = conn.cursor()
            cursor.execute(_COLLATIONS, (entity.qualified,))
            collations = {str(name): str(collation) for name, collation in cursor.fetchall()}
            cursor.close()
            conn.rollback()
            ok = True
        finally:
            self.adbc.release(conn, ok)
        return binary_collation(collations)

    # -- answering --------------------------------------------------------------------------------

    def answer(self, query: ArrowQuery, consistency: str | None) -> tuple[pa.Schema, Batches] | None:
        """The query answered from its live dataset, or None (PostgreSQL answers). Blocking; not on the loop."""
        entity = root_entity(query.root)
        dataset = self.datasets.get(entity.qualified) if entity is not None else None
        if dataset is None:
            return None
        if dataset.state is not State.LIVE:
            self._count(dataset, dataset.state.value)
            return None
        try:
            sql, params = compile_live(query.root, dataset.table)
        except NotLive as reason:
            self._count(dataset, f"not answerable: {reason}")
            return None
        if consistency == "fresh" and not self._wait_fresh(dataset):
            if self.settings.live_fresh_fallback == "error":
                raise NotFresh(f"the live dataset {dataset.name} did not apply every committed change within "
                               f"{self.settings.live_fresh_timeout_ms} ms")
            self._count(dataset, "not fresh in time")
            return None
        watermark, batches = self.store.read(dataset.name, sql, params, 65_536)
        metadata = {**(query.schema.metadata or {}), SOURCE: b"live", WATERMARK: str(watermark).encode()}
        schema = query.schema.with_metadata(metadata)
        labels = [c.labels for c in query.plan] if len(query.plan) == len(schema) else [None] * len(schema)
        self._count(dataset, "live")
        return schema, (to_answer(b, schema, labels) for b in batches if b.num_rows)

    def _count(self, dataset: Dataset, outcome: str) -> None:
        key = (dataset.name, outcome)
        self.answers[key] = self.answers.get(key, 0) + 1

    def _wait_fresh(self, dataset: Dataset) -> bool:
        assert self.loop is not None
        timeout = self.settings.live_fresh_timeout_ms / 1000
        future = asyncio.run_coroutine_threadsafe(self.fresh(dataset, time.monotonic() + timeout), self.loop)
        try:
            return future.result(timeout + 5)
        except Exception as error:  # noqa: BLE001 - NATS or PostgreSQL away: not fresh
            log.info("fresh wait for %s failed: %s", dataset.name, error)
            return False

    async def fresh(self, dataset: Dataset, deadline: float) -> bool:
        """Wait until ``dataset`` applied every change committed now; False at ``deadline``."""
        newest = await asyncio.to_thread(newest_seq, self.adbc)
        while await asyncio.to_thread(unpublished, self.adbc, newest):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        js = self.nc.jetstream(timeout=max(0.1, deadline - time.monotonic()))
        last = await last_message(js, self.topology.stream, self.topology.subject(dataset.entity.event_name))
        return await dataset.wait_applied(last, deadline)

    # -- reporting --------------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One line per dataset, for /metrics and ``quiver events status``."""
        return [{"entity": d.name, "state": d.state.value, "reason": d.reason, "rows": d.rows, "seq": d.seq,
                 "stream_seq": d.stream_seq} for d in self.datasets.values()]


class LiveCollector(Collector):
    """The datasets' state in Prometheus form: rows, watermark, whether cached, memory, answers by source."""

    def __init__(self, live: LiveDatasets) -> None:
        self.live = live

    def collect(self) -> Iterator[Any]:
        rows = GaugeMetricFamily("quiver_live_rows", "Rows held by each live dataset.", labels=["entity"])
        seq = GaugeMetricFamily("quiver_live_watermark_seq", "The highest outbox seq each live dataset applied.",
                                labels=["entity"])
        state = GaugeMetricFamily("quiver_live_state", "1 for the state each live dataset is in (not cached: "
                                  "with its reason).", labels=["entity", "state", "reason"])
        for line in self.live.status():
            rows.add_metric([line["entity"]], line["rows"])
            seq.add_metric([line["entity"]], line["seq"])
            state.add_metric([line["entity"], line["state"], line["reason"]], 1)
        memory = GaugeMetricFamily("quiver_live_memory_bytes", "Memory DuckDB holds for the live datasets.",
                                   value=self.live.store.memory_bytes())
        answers = CounterMetricFamily("quiver_live_answers", "Arrow queries on live entities, by who answered "
                                      "(live, or PostgreSQL and why).", labels=["entity", "outcome"])
        for (entity, outcome), count in sorted(self.live.answers.items()):
            answers.add_metric([entity, outcome], count)
        yield from (rows, seq, state, memory, answers)


def _find(model: Model, name: str) -> Entity | None:
    for key in ("list_field", "name", "type_name"):
        for entity in model.entities.values():
            if getattr(entity, key) == name:
                return entity
    return None
