"""Per-stage counters and lags of the event pipeline (Prometheus)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class EventMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.outbox_backlog = Gauge("quiver_outbox_backlog", "Outbox rows not yet published.", registry=r)
        self.published = Counter("quiver_events_published", "Events published to JetStream.", registry=r)
        self.republished = Counter("quiver_events_republished",
                                   "Publishes JetStream dropped as duplicates (after a relay restart).", registry=r)
        self.relay_errors = Counter("quiver_relay_errors", "Relay failures (each retried).", registry=r)
        self.written = Counter("quiver_sink_written", "Events written by a sink.", ["sink"], registry=r)
        self.retried = Counter("quiver_sink_retries", "Sink writes retried after a retryable error.", ["sink"],
                               registry=r)
        self.dead_lettered = Counter("quiver_sink_dead_lettered", "Events sent to the dead-letter stream.",
                                     ["sink"], registry=r)
        self.pending = Gauge("quiver_consumer_pending",
                             "Messages (up to 1,000 events each) in JetStream not yet delivered to the sink.",
                             ["sink"], registry=r)
        self.breaker = Gauge("quiver_sink_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.",
                             ["sink"], registry=r)
        self.dedup_up = Gauge("quiver_dedup_up", "1 while Redis dedup works for the sink, 0 while it is off.",
                              ["sink"], registry=r)
        self.dedup_skipped = Counter("quiver_dedup_skipped", "Events not rewritten because Redis knew them.",
                                     ["sink"], registry=r)
        self.lag = Histogram("quiver_sink_lag_seconds", "From the change (occurred_at) to the sink's write.",
                             ["sink"], registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
