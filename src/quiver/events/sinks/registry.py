"""Sinks by name, built from settings: one factory per sink in ``FACTORIES``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from quiver.config import Settings
from quiver.events.sinks.base import Sink

# Each factory imports its sink when called: a consumer of one sink loads only that one (chDB is heavy).


def _chdb(settings: Settings) -> Sink:
    from quiver.events.sinks.chdb import ChdbSink

    return ChdbSink(Path(settings.chdb_path))


def _clickhouse(settings: Settings) -> Sink:
    from quiver.events.sinks.clickhouse import ClickHouseSink

    return ClickHouseSink(settings.clickhouse_url, settings.clickhouse_database)


def _search(settings: Settings) -> Sink:
    from quiver.events.sinks.search import SearchSink

    prefix = settings.search_index_prefix or f"{settings.events_namespace.lower()}-events"
    return SearchSink(settings.search_url, prefix)


FACTORIES: dict[str, Callable[[Settings], Sink]] = {
    "chdb": _chdb,  # QUIVER_CHDB_PATH
    "clickhouse": _clickhouse,  # QUIVER_CLICKHOUSE_URL, QUIVER_CLICKHOUSE_DATABASE
    "search": _search,  # QUIVER_SEARCH_URL, QUIVER_SEARCH_INDEX_PREFIX (default "<namespace>-events")
}
NAMES = tuple(FACTORIES)


class UnknownSink(ValueError):
    """A sink name that is not in ``FACTORIES``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown sink {name!r}; choose from {', '.join(NAMES)}")
        self.sink = name


def check_names(names: list[str]) -> list[str]:
    """``names`` if every one is a sink, else ``UnknownSink`` for the first that is not."""
    for name in names:
        if name not in FACTORIES:
            raise UnknownSink(name)
    return names


def make_sink(name: str, settings: Settings) -> Sink:
    """The sink called ``name``, configured from ``settings``; ``UnknownSink`` (a ValueError) lists the choices."""
    try:
        factory = FACTORIES[name]
    except KeyError:
        raise UnknownSink(name) from None
    return factory(settings)
