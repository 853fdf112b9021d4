"""The one chDB data path of this test process, shared by every chDB sink of the sink tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quiver.events.sinks.chdb.sink import session


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """chDB opens one data path per process: every chDB sink of this test process lives here (a database each)."""
    path = tmp_path_factory.mktemp("chdb")
    session(path)  # opened now: a sink pointed anywhere else in this process cannot open
    yield path
