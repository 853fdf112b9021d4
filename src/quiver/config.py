"""Settings: one typed object, from QUIVER_* environment variables or keyword arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class Limits:
    """Bounds on one request, each answered with a GraphQL error when exceeded."""

    max_depth: int = 10
    max_nodes: int = 500
    max_limit: int | None = 10_000_000
    max_tokens: int = 20_000


class Settings(BaseSettings):
    """Everything a Quiver server can be told."""

    model_config = SettingsConfigDict(env_prefix="QUIVER_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:15433/quiver"
    schemas: list[str] = Field(default_factory=lambda: ["public"])
    exclude_tables: list[str] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8000

    max_depth: int = 10
    max_nodes: int = 500
    max_limit: int | None = 10_000_000
    max_tokens: int = 20_000
    max_body_bytes: int = 1 << 20
    statement_timeout_ms: int = 30_000
    pool_size: int = 8
    pool_timeout_seconds: float = 5.0  # waiting longer for a free connection answers 503 / UNAVAILABLE
    batch_bytes: int = 4 << 20  # target size of one streamed JSON chunk
    arrow_batch_bytes: int = 10 << 20  # target size of one Arrow record batch (~65k rows of 8 columns)

    flight_port: int | None = 8815  # Arrow Flight beside HTTP; None disables it
    flight_partitions: int = 4  # endpoints GetFlightInfo returns for a whole-entity read
    tokens: list[str] = Field(default_factory=list)  # bearer tokens; empty = no authentication
    # Tokens whose subscriptions see one tenant's events only (outbox tenant_id): {"<token>": "<tenant>"}.
    token_tenants: dict[str, str] = Field(default_factory=dict)
    subscription_buffer: int = 10_000  # messages waiting for one connection before it is cut off as too slow
    metrics_public: bool = False  # with tokens set, /metrics needs one too unless this is true
    # Signs Flight SQL statement handles (stateless: any replica with the same secret runs them).
    # Empty: a random secret per process (handles then work only on the server that made them).
    flightsql_secret: str = ""
    tls_cert: str | None = None  # PEM files: serve Flight over grpc+tls
    tls_key: str | None = None
    # -- live datasets (docs/live.md) ---------------------------------------------------
    live_entities: list[str] = Field(default_factory=list)  # tables kept in memory (list field or table name)
    live_memory_mb: int = 1024  # what the live datasets may hold together; an entity over it is not cached
    live_fresh_timeout_ms: int = 5_000  # how long a `consistency: "fresh"` read waits for the dataset
    live_fresh_fallback: Literal["postgres", "error"] = "postgres"  # after that wait: read PostgreSQL, or refuse

    # -- events ------------------------------------------------------------------------
    nats_url: str = "nats://127.0.0.1:14222"
    clickhouse_url: str = "http://127.0.0.1:18123"
    clickhouse_database: str = "quiver"
    chdb_path: str = ".quiver-chdb"
    sinks: list[str] = Field(default_factory=lambda: ["chdb"])  # chdb, clickhouse
    capture_tables: list[str] = Field(default_factory=list)  # empty: every table of `schemas`
    events_metrics_port: int | None = None  # Prometheus endpoint of `quiver events run|relay|consume`
    outbox_retention_seconds: float = 3600.0
    search_url: str = "http://127.0.0.1:19200"  # OpenSearch 2 / Elasticsearch 8
    search_index_prefix: str | None = None  # default: "<events_namespace>-events"
    redis_url: str | None = None  # Redis dedup in front of each sink; None = off (sinks are idempotent anyway)
    dedup_ttl_seconds: int = 86_400
    consumer_batch_messages: int = 40  # JetStream messages per sink write (each up to 1,000 events)
    consumer_max_deliveries: int = 5  # deliveries of an event failing unexpectedly before it is dead-lettered
    consumer_write_bytes: int = 64 << 20  # event bytes per sink write (large events resolved)
    # `quiver events status` warns when a writing transaction is older (it holds the relay back, cluster-wide)
    events_xmin_warn_seconds: float = 60.0
    events_namespace: str = "quiver"  # JetStream stream QUIVER_EVENTS, subjects quiver.events.<entity>

    def limits(self) -> Limits:
        return Limits(self.max_depth, self.max_nodes, self.max_limit, self.max_tokens)
