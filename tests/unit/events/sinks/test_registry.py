"""Sinks by name: the registry's table, the protocol every sink meets, the error for a name it lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from quiver.config import Settings
from quiver.events.sinks.base import Sink
from quiver.events.sinks.chdb import ChdbSink
from quiver.events.sinks.clickhouse import ClickHouseSink
from quiver.events.sinks.registry import FACTORIES, NAMES, UnknownSink, check_names, make_sink
from quiver.events.sinks.search import SearchSink


def settings(tmp_path: Path) -> Settings:
    return Settings(chdb_path=str(tmp_path / "chdb"), clickhouse_url="http://clickhouse.test:8123",
                    clickhouse_database="events_db", search_url="http://search.test:9200", events_namespace="Demo")


@pytest.mark.parametrize(("name", "kind"), [("chdb", ChdbSink), ("clickhouse", ClickHouseSink),
                                            ("search", SearchSink)])
def test_every_name_builds_its_sink_from_settings(tmp_path: Path, name: str, kind: type[Sink]) -> None:
    sink = make_sink(name, settings(tmp_path))
    assert isinstance(sink, kind) and isinstance(sink, Sink)
    assert sink.name == name
    assert not (tmp_path / "chdb").exists()  # building connects to nothing and creates nothing


def test_the_settings_reach_the_sinks(tmp_path: Path) -> None:
    chdb = make_sink("chdb", settings(tmp_path))
    assert isinstance(chdb, ChdbSink) and chdb.path == tmp_path / "chdb" and chdb.database == "quiver"
    clickhouse = make_sink("clickhouse", settings(tmp_path))
    assert isinstance(clickhouse, ClickHouseSink)
    assert (clickhouse.url, clickhouse.database) == ("http://clickhouse.test:8123", "events_db")
    search = make_sink("search", settings(tmp_path))
    assert isinstance(search, SearchSink)
    assert (search.url, search.prefix) == ("http://search.test:9200", "demo-events")  # from the namespace
    prefixed = make_sink("search", settings(tmp_path).model_copy(update={"search_index_prefix": "audit"}))
    assert isinstance(prefixed, SearchSink) and prefixed.prefix == "audit"


def test_the_registry_is_a_table_of_every_sink() -> None:
    assert NAMES == tuple(FACTORIES) == ("chdb", "clickhouse", "search")
    assert check_names(["search", "chdb"]) == ["search", "chdb"]


def test_an_unknown_name_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UnknownSink, match=r"unknown sink 'kafka'; choose from chdb, clickhouse, search"):
        make_sink("kafka", settings(tmp_path))
    with pytest.raises(ValueError, match="choose from chdb, clickhouse, search"):
        check_names(["chdb", "elastic"])
