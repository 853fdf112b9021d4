"""Smoke test of the query-planes benchmark: every variant end to end at 10k rows, one round.

It uses the small benchmark database of the JSON-plane smoke test (10,000 demo orders), never
``quiver_bench``, and never writes ``docs/benchmarks.md``.
"""

from __future__ import annotations

import statistics
from typing import cast

import pyarrow as pa
import pytest

from benchmarks import json_plane
from benchmarks import query_planes as bench
from benchmarks.common.database import ensure_bench_database
from tests.benchmarks import doc_state
from tests.conftest import admin_url

SMOKE_DB = "quiver_bench_smoke"
SMOKE_ORDERS = 10_000


def test_every_variant_runs_at_10k_rows() -> None:
    doc_before = doc_state()
    url = ensure_bench_database(admin_url(), SMOKE_DB, SMOKE_ORDERS)
    result = bench.run(url, [SMOKE_ORDERS], [1], machine="smoke", database=SMOKE_DB, command="pytest")

    [size] = result.sizes
    assert size.rows == SMOKE_ORDERS and size.rounds == 1 and not size.skipped
    assert set(size.variants) == set(bench.VARIANTS)
    for key, variant in size.variants.items():
        assert len(variant.samples) == 1, key
        for stage in bench.STAGES:
            assert all(s > 0 for s in variant.seconds(stage)), (key, stage)
        assert variant.rows_per_second > 0
    # The conversions come after the table (Flight's are separate calls, so only positive there).
    for key in set(bench.VARIANTS) - {bench.FLIGHT, bench.LIVE}:
        sample = size.variants[key].samples[0]
        assert sample.pandas_arrow > sample.table and sample.pandas > sample.table and sample.polars > sample.table
    for key in (bench.ARROW_HTTP, bench.JSON_PLANE, bench.FRAISEQL, bench.STRAWBERRY):
        body_bytes = size.variants[key].body_bytes
        assert body_bytes is not None and body_bytes > 500_000, key  # 10k rows of 8 fields, whatever the format
    assert size.variants[bench.ADBC].body_bytes is None

    # The check ran: equal id sets everywhere, equal Arrow tables, equal JSON rows.
    assert any("Flight and Arrow over HTTP returned equal tables" in note for note in size.notes)
    assert any("returned equal rows" in note for note in size.notes)
    assert "Flight SQL and in-process ADBC returned equal values" in size.notes

    for numerator, denominator, stage in bench.RATIOS:
        key = bench.ratio_key(numerator, denominator, stage)
        [ratio] = size.ratios[key]
        expected = (getattr(size.variants[numerator].samples[0], stage)
                    / getattr(size.variants[denominator].samples[0], stage))
        assert ratio == pytest.approx(expected) and ratio > 0
        assert size.median_ratio(key) == statistics.median([ratio])

    assert set(result.peak_rss_mb) == {json_plane.QUIVER, json_plane.BASELINE, bench.STRAWBERRY, bench.LIVE_SERVER}
    # The live variant answered from memory (the check asserts it) and its dataset held the whole table.
    assert any("live Flight and Flight returned equal tables" in note for note in size.notes)
    assert result.live_dataset["rows"] == SMOKE_ORDERS and result.live_dataset["duckdb_bytes"] > 0
    assert all(v is not None and v > 10 for v in result.peak_rss_mb.values())
    assert result.as_json()["sizes"][0]["rows"] == SMOKE_ORDERS

    section = bench.render_section(result)
    assert section.startswith(bench.SECTION_TITLE)
    for label in bench.LABELS.values():
        assert f"| 10k | {label} | 1 |" in section
    assert section.count("not measured in this run") == len(bench.TARGETS)  # targets are at 100k and 1M rows
    assert "MiB per million rows" in section
    assert doc_state() == doc_before


def test_check_rejects_a_short_result() -> None:
    """A variant returning other rows than the others fails the check."""

    class Fake:
        body_bytes: dict[str, int] = {}

        def __init__(self, broken: str) -> None:
            self.broken = broken

        def fetch(self, key: str, rows: int) -> tuple[object, None]:
            ids = list(range(rows - 1 if key == self.broken else rows))
            return pa.table({"id": ids}), None

    bench.check_size(cast(bench.Planes, Fake("nobody")), 5, [bench.ADBC, bench.FLIGHT])
    with pytest.raises(AssertionError, match="expected 5 rows"):
        bench.check_size(cast(bench.Planes, Fake(bench.FLIGHT)), 5, [bench.ADBC, bench.FLIGHT])


def test_variants_and_rounds() -> None:
    assert bench.variants_for(1_000_000, False)[0] == list(bench.VARIANTS)
    keys, skipped = bench.variants_for(1_000_000, True)
    assert bench.STRAWBERRY not in keys and bench.STRAWBERRY in skipped
    assert bench.variants_for(100_000, True)[0] == list(bench.VARIANTS)  # --skip-slow drops Strawberry at 1M only
    assert bench.STRAWBERRY not in bench.variants_for(10_000_000, False)[0]
    assert [json_plane.default_rounds(n) for n in (10_000, 100_000, 1_000_000)] == [5, 5, 3]
    assert bench.bench_database(1_000_000) == "quiver_bench"
    assert bench.bench_database(10_000_000) == "quiver_bench_10000000"

