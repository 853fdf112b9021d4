"""Sinks by name, built from settings."""

from __future__ import annotations

from pathlib import Path

from quiver.config import Settings
from quiver.events.sinks.base import Sink

NAMES = ("chdb", "clickhouse", "search")


def make_sink(name: str, settings: Settings) -> Sink:
    if name == "chdb":
        from quiver.events.sinks.chdb import ChdbSink

        return ChdbSink(Path(settings.chdb_path))
    if name == "clickhouse":
        from quiver.events.sinks.clickhouse import ClickHouseSink

        return ClickHouseSink(settings.clickhouse_url, settings.clickhouse_database)
    if name == "search":
        from quiver.events.sinks.search import SearchSink

        prefix = settings.search_index_prefix or f"{settings.events_namespace.lower()}-events"
        return SearchSink(settings.search_url, prefix)
    raise ValueError(f"unknown sink {name!r}; choose from {', '.join(NAMES)}")
