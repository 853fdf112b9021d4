"""Commit-to-visible lag: each sink is polled the way a reader would read it, and an event's lag is the poll
that first saw it minus its ``occurred_at``; a sink *kept up* when that lag stayed small and did not grow."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import numpy as np
import orjson

from benchmarks.events.pipeline import BenchPipeline

POLL_INTERVAL = 0.15
SEARCH_PAGE = 10_000  # hits per visibility poll page (OpenSearch's default index.max_result_window)
# "Sustained": the pipeline keeps up with what was committed.
SUSTAINED_P99 = 3.0  # seconds, commit → visible
SUSTAINED_DRAIN = 3.0  # seconds from the end of the load until everything committed is visible
SUSTAINED_TREND = 0.05  # lag growth over the window's second half, seconds per second (delivered ≥ ~95% of committed)

Page = tuple[float, np.ndarray[Any, Any], np.ndarray[Any, Any]]  # (request sent at, seq, occurred_at µs)


class Visibility:
    """One sink's events past the contiguous watermark, each one's first sighting; subclasses ``fetch``.

    The watermark (every ``seq`` up to it seen) keeps each poll to what is new, whatever the sink.
    """

    sink = ""

    def __init__(self) -> None:
        self.seen = np.zeros(1 << 20, dtype=bool)
        self.seen[0] = True  # seq starts at 1
        self.watermark = 0  # every seq up to here has been seen
        self.max_seen = 0
        self.total = 0  # distinct events seen
        self.lags: list[np.ndarray[Any, Any]] = []  # seconds, events first seen since begin()
        self.occurred: list[np.ndarray[Any, Any]] = []  # their occurred_at, seconds since the epoch
        self.sightings: list[tuple[float, int]] = []  # (poll time, events first seen), since begin()
        self.poll_seconds: list[float] = []

    def fetch(self, after: int) -> Iterable[Page]:
        """The sink's events with ``seq > after``, one page per request; nothing if the sink has no table yet."""
        raise NotImplementedError

    def begin(self) -> None:
        self.lags, self.occurred, self.sightings, self.poll_seconds = [], [], [], []

    @property
    def since_begin(self) -> int:
        return sum(n for _, n in self.sightings)

    def poll(self) -> int:
        """One poll (all its pages); returns the number of events seen for the first time."""
        started = time.time()
        fresh, answered = 0, False
        for sent, seqs, micros in self.fetch(self.watermark):
            answered = True
            fresh += self._record(sent, seqs, micros)
        if answered:
            self.poll_seconds.append(time.time() - started)
        return fresh

    def _grow(self, seq: int) -> None:
        if seq + 2 > len(self.seen):
            grown = np.zeros(max(2 * len(self.seen), seq + 2), dtype=bool)
            grown[:len(self.seen)] = self.seen
            self.seen = grown

    def _record(self, sent: float, seqs: np.ndarray[Any, Any], micros: np.ndarray[Any, Any]) -> int:
        if len(seqs) == 0:
            self.sightings.append((sent, 0))
            return 0
        unique, first = np.unique(seqs, return_index=True)  # a repeated delivery is one event
        self._grow(int(unique[-1]))
        fresh = ~self.seen[unique]
        new_seqs = unique[fresh]
        self.seen[new_seqs] = True
        occurred = micros[first[fresh]] / 1e6
        self.occurred.append(occurred)
        self.lags.append(sent - occurred)
        self.sightings.append((sent, len(new_seqs)))
        self.total += len(new_seqs)
        self.max_seen = max(self.max_seen, int(unique[-1]))
        tail = self.seen[self.watermark + 1:self.max_seen + 2]  # ends with a seq not seen yet
        self.watermark += int(np.argmin(tail))  # the first seq not yet seen, minus one
        return len(new_seqs)

    def skip_to(self, seq: int) -> None:
        """Everything up to ``seq`` is accounted for (a drained step): stop asking for it."""
        self.watermark = max(self.watermark, seq)
        self.max_seen = max(self.max_seen, seq)
        self._grow(seq)
        self.seen[:seq + 1] = True

    def close(self) -> None:
        """Release the HTTP client (subclasses)."""


class ClickHouseVisibility(Visibility):
    """``{database}.events`` on the ClickHouse server: ``seq`` and ``occurred_at_us`` as RowBinary, one request."""

    sink = "clickhouse"

    def __init__(self, url: str, database: str) -> None:
        super().__init__()
        self.database = database
        self.client = httpx.Client(base_url=url, timeout=60)

    def fetch(self, after: int) -> Iterator[Page]:
        sent = time.time()
        query = f"SELECT seq, occurred_at_us FROM {self.database}.events WHERE seq > {after} FORMAT RowBinary"
        response = self.client.post("/", params={"query": query})
        if response.status_code != 200:
            if b"Code: 60" in response.content or b"Code: 81" in response.content:
                return  # the consumer has not created its database or table yet
            raise RuntimeError(f"ClickHouse poll failed: {response.text[:500]}")
        rows = np.frombuffer(response.content, dtype=[("seq", "<i8"), ("us", "<i8")])
        yield sent, rows["seq"], rows["us"]

    def close(self) -> None:
        self.client.close()


class SearchVisibility(Visibility):
    """The search sink's alias ``<prefix>``: what a reader's ``_search`` sees now, never forcing a refresh.

    Doc values only (no ``_source``), sorted by ``seq``, paged with ``search_after``. A document is
    searchable after the index's next refresh, so this lag includes that wait, as a reader's would.
    """

    sink = "search"

    def __init__(self, url: str, prefix: str, page_size: int = SEARCH_PAGE) -> None:
        super().__init__()
        self.prefix = prefix
        self.page_size = page_size
        self.client = httpx.Client(base_url=url, timeout=60)

    def fetch(self, after: int) -> Iterator[Page]:
        search_after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": self.page_size, "query": {"range": {"seq": {"gt": after}}}, "_source": False,
                "docvalue_fields": ["seq", "occurred_at_us"], "sort": [{"seq": "asc"}], "track_total_hits": False}
            if search_after is not None:
                body["search_after"] = search_after
            sent = time.time()
            response = self.client.post(f"/{self.prefix}/_search", content=orjson.dumps(body),
                                        headers={"Content-Type": "application/json"},
                                        params={"filter_path": "_shards.failed,hits.hits.fields,hits.hits.sort"})
            if response.status_code == 404 or (response.status_code == 503 and search_after is None):
                # No index yet, or its shard not started yet (the sink creates indices without waiting for
                # it): nothing is visible to a reader at this moment.
                return
            if response.status_code != 200:
                raise RuntimeError(f"OpenSearch poll failed: {response.status_code} {response.text[:500]}")
            answer = orjson.loads(response.content)
            if answer["_shards"].get("failed"):
                raise RuntimeError(f"OpenSearch poll failed on some shards: {response.text[:500]}")
            hits = answer.get("hits", {}).get("hits", [])
            seqs = np.fromiter((h["fields"]["seq"][0] for h in hits), dtype=np.int64, count=len(hits))
            micros = np.fromiter((h["fields"]["occurred_at_us"][0] for h in hits), dtype=np.int64, count=len(hits))
            yield sent, seqs, micros
            if len(hits) < self.page_size:
                return
            search_after = hits[-1]["sort"]

    def close(self) -> None:
        self.client.close()


def visibility_for(pipeline: BenchPipeline, sink: str) -> Visibility:
    """The poller of ``sink`` as the pipeline configured it."""
    if sink == "clickhouse":
        return ClickHouseVisibility(pipeline.clickhouse, pipeline.namespace)
    if sink == "search":
        assert pipeline.opensearch is not None
        return SearchVisibility(pipeline.opensearch, pipeline.search_prefix)
    raise ValueError(f"no visibility poller for sink {sink!r}")


@dataclass
class SinkStep:
    """One sink at one rate: what became visible, how late, and whether it kept up."""

    sink: str
    window: float = 0.0  # the load window, seconds (as in StepResult)
    visible: int = 0
    delivered_in_window: int = 0
    lag_p50: float = math.nan
    lag_p99: float = math.nan
    lag_max: float = math.nan
    drain_seconds: float = math.nan
    drained: bool = False
    backlog_end: int = 0  # committed − visible at the end of the window
    backlog_growth: float = 0.0  # events/s, slope of committed − visible over the second half of the window
    lag_trend: float = 0.0  # seconds of lag per second: slope of lag against commit time, second half
    jetstream_pending_max: int = 0  # messages its consumer had not acknowledged
    jetstream_pending_end: int = 0
    poll_ms: float = 0.0

    @property
    def delivered_rate(self) -> float:
        return self.delivered_in_window / self.window if self.window else 0.0

    @property
    def catch_up_rate(self) -> float:
        """Events/s delivered after the load stopped (the backlog at the end over the drain time)."""
        return self.backlog_end / self.drain_seconds if self.drain_seconds > 0.5 and self.drained else math.nan

    @property
    def kept_up(self) -> bool:
        """This sink got what was committed: bounded backlog, p99 and catch-up time small."""
        return (self.drained and self.lag_p99 <= SUSTAINED_P99 and self.drain_seconds <= SUSTAINED_DRAIN
                and self.lag_trend <= SUSTAINED_TREND)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "delivered_rate": self.delivered_rate, "catch_up_rate": self.catch_up_rate,
                "kept_up": self.kept_up}


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    if np.ptp(xs) == 0:
        return 0.0
    return float(np.polyfit(xs - xs[0], ys, 1)[0])


def summarise_sink(visibility: Visibility, committed: int, start_at: float, stop_at: float,
                   backlog: list[tuple[float, float]], pending: list[int], pending_end: int) -> SinkStep:
    """One sink's lag, delivery and drain over a step, from its poller's sightings."""
    window = stop_at - start_at
    result = SinkStep(visibility.sink, window, jetstream_pending_end=pending_end,
                      jetstream_pending_max=max([*pending, pending_end]))
    result.drained = visibility.since_begin >= committed
    last_seen = max((t for t, n in visibility.sightings if n), default=stop_at)
    result.drain_seconds = max(0.0, last_seen - stop_at)
    result.visible = visibility.since_begin
    result.delivered_in_window = sum(n for t, n in visibility.sightings if start_at <= t <= stop_at)
    result.backlog_end = committed - sum(n for t, n in visibility.sightings if t <= stop_at)
    lags = np.concatenate(visibility.lags) if visibility.lags else np.zeros(0)
    occurred = np.concatenate(visibility.occurred) if visibility.occurred else np.zeros(0)
    half = start_at + window / 2
    if len(lags):
        result.lag_p50, result.lag_p99 = (float(x) for x in np.quantile(lags, [0.5, 0.99]))
        result.lag_max = float(lags.max())
        late = occurred >= half
        if late.sum() > 2 and np.ptp(occurred[late]) > 0:
            result.lag_trend = float(np.polyfit(occurred[late] - half, lags[late], 1)[0])
    result.backlog_growth = _slope([p for p in backlog if p[0] >= half])
    result.poll_ms = statistics.median(visibility.poll_seconds) * 1000 if visibility.poll_seconds else 0.0
    return result
