"""Run the relay and sink consumers in one process: as a command until a signal, or beside the demo (a thread).

Each stage of ``quiver events run`` (``events/supervisor.py``) is such a command in a child process of its
own (``quiver events relay``, ``quiver events consume --sink NAME``); ``quiver events run --in-process`` and
``BackgroundPipeline`` (the demo) run every stage here, unsupervised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from quiver.config import Settings
from quiver.events import bus
from quiver.events.consumer import ConsumerSettings, SinkConsumer
from quiver.events.dedup import RedisDedup
from quiver.events.metrics import EventMetrics
from quiver.events.relay import Relay, RelayConfig
from quiver.events.sinks.base import Sink

log = logging.getLogger("quiver.events")


async def run_pipeline(settings: Settings, *, relay: bool, sinks: list[Sink], stop: asyncio.Event,
                       metrics: EventMetrics | None = None) -> None:
    """Relay (optional) and one consumer per sink, until ``stop`` is set."""
    metrics = metrics or EventMetrics()
    topology = bus.Topology(settings.events_namespace)
    tasks = []
    connections = []
    if relay:
        config = RelayConfig(settings.database_url, settings.nats_url,
                             retention_seconds=settings.outbox_retention_seconds, topology=topology)
        tasks.append(asyncio.create_task(Relay(config, metrics).run(stop)))
    for sink in sinks:
        nc, js = await bus.connect(settings.nats_url, name=f"quiver-sink-{sink.name}")
        connections.append(nc)
        dedup = None
        if settings.redis_url:
            dedup = RedisDedup(settings.redis_url, sink.name, ttl_seconds=settings.dedup_ttl_seconds, metrics=metrics)
        consumer_settings = ConsumerSettings(batch_max=settings.consumer_batch_messages, topology=topology,
                                             max_deliveries=settings.consumer_max_deliveries,
                                             write_bytes=settings.consumer_write_bytes)
        consumer = SinkConsumer(js, sink, consumer_settings, metrics, dedup)
        tasks.append(asyncio.create_task(consume_forever(consumer, stop)))
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for nc in connections:
        await nc.close()
    for sink in sinks:
        await sink.close()


async def consume_forever(consumer: SinkConsumer, stop: asyncio.Event) -> None:
    """Run a consumer; if NATS or the sink's setup fails, retry (events wait in JetStream)."""
    delay = 0.2
    while not stop.is_set():
        try:
            await consumer.run(stop)
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - logged and retried
            log.warning("%s: %s: %s; restarting in %.1fs", consumer.sink.name, type(error).__name__, error, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 5.0)


class BackgroundPipeline:
    """The pipeline in a thread of its own (for ``quiver demo``)."""

    def __init__(self, settings: Settings, sinks: list[Sink]) -> None:
        self.settings = settings
        self.sinks = sinks
        self.metrics = EventMetrics()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="quiver-events", daemon=True)
        self._ready = threading.Event()

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await run_pipeline(self.settings, relay=True, sinks=self.sinks, stop=self._stop, metrics=self.metrics)

        asyncio.run(main())

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)

    def written(self, sink: str) -> Any:
        return self.metrics.written.labels(sink)._value.get()
