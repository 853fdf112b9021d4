"""Smoke test of the JSON plane benchmark: its functions run end to end at a tiny size.

It uses its own small database (10,000 demo orders), never ``quiver_bench``, and never
writes ``docs/benchmarks.md``.
"""

from __future__ import annotations

import orjson
import pytest

from benchmarks import json_plane as bench
from benchmarks.common.database import ensure_bench_database
from tests.benchmarks import doc_state
from tests.conftest import admin_url

SMOKE_DB = "quiver_bench_smoke"
SMOKE_ORDERS = 10_000


def test_benchmark_runs_both_variants_at_a_small_size() -> None:
    doc_before = doc_state()
    url = ensure_bench_database(admin_url(), SMOKE_DB, SMOKE_ORDERS)
    result = bench.run(url, [SMOKE_ORDERS], rounds=1, machine="smoke", database=SMOKE_DB, command="pytest")

    [size] = result.sizes
    assert size.rows == SMOKE_ORDERS
    for variant in (size.quiver, size.baseline):
        assert len(variant.seconds) == 1
        assert all(s > 0 for s in variant.seconds)
        assert variant.rows_per_second > 0 and variant.mb_per_second > 0
        assert variant.database_seconds is not None and variant.database_seconds > 0
        # 10,000 rows of 8 fields are well over a megabyte of JSON, whatever the spacing.
        assert variant.body_bytes > 1_000_000
    assert size.quiver.name == bench.QUIVER and size.baseline.name == bench.BASELINE
    assert len(size.ratios) == 1
    assert size.median_ratio == pytest.approx(size.baseline.seconds[0] / size.quiver.seconds[0])
    # jsonb::text spaces ": " and ", " where Quiver's row_to_json text does not: the baseline body is larger.
    assert size.baseline.body_bytes > size.quiver.body_bytes
    assert set(result.peak_rss_mb) == {bench.QUIVER, bench.BASELINE}
    assert all(v is not None and v > 10 for v in result.peak_rss_mb.values())

    raw = result.as_json()
    assert raw["sizes"][0]["median_ratio"] == size.median_ratio
    section = bench.render_section(result)
    assert section.startswith(bench.SECTION_TITLE)
    assert "| 10k | 1 | Quiver JSON plane |" in section and "| 10k | 1 | FraiseQL v1 technique |" in section
    assert "not measured in this run" in section  # the 2x target is about 1M rows
    assert doc_state() == doc_before


def test_bodies_are_checked_row_for_row() -> None:
    row = {"id": "1", "uuid": "u", "customerId": "2", "status": "paid", "total": "1.00", "isPaid": True,
           "placedAt": "2024-05-01T10:00:00.123456+00:00", "meta": {"gift": False}}
    quiver_body = b'{"data":{"orders":[' + orjson.dumps(row) + b"]}}"
    same = b'{"data":{"orders":[' + orjson.dumps(dict(reversed(row.items()))) + b"]}}"
    assert bench.check_bodies(quiver_body, same, 1)  # equal values; the key-order note is returned
    with pytest.raises(AssertionError, match="first rows differ"):
        bench.check_bodies(quiver_body, quiver_body.replace(b'"1.00"', b"1.0"), 1)
    with pytest.raises(AssertionError, match="expected 2 rows"):
        bench.check_bodies(quiver_body, quiver_body, 2)

