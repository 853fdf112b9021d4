"""Smoke test of the live-dataset lag benchmark, against the real services, with tiny parameters.

A database, relay and live server of its own (all removed afterwards), 200 updated rows/s for 3 s.
Lag and CPU are the benchmark's business (``python -m benchmarks.live_lag``) and only printed; what is
asserted is that every transaction became visible and the dataset equals the table at the end.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.live_lag import SMALL_ORDERS, render_section, run, section_title
from tests.benchmarks import doc_state
from tests.conftest import admin_url


def test_every_transaction_becomes_visible_and_the_dataset_equals_the_table(
        capsys: pytest.CaptureFixture[str]) -> None:
    doc_before = doc_state()
    result = run(admin_url(), 200, 3.0, batch=10, machine="smoke", command="pytest")
    with capsys.disabled():
        print(f"\nlive lag smoke: {result.seen}/{result.transactions} seen, lag p50 {result.lag_p50:.3f} s "
              f"p99 {result.lag_p99:.3f} s")
    assert result.orders == SMALL_ORDERS and result.transactions > 0
    assert result.seen == result.transactions and result.equal_at_end and result.clean
    assert math.isfinite(result.lag_p99) and result.lag_p50 <= result.lag_p99 <= result.lag_max
    section = render_section(result)
    assert section.startswith(section_title(SMALL_ORDERS)) and "| yes |" in section
    assert json.loads(json.dumps(result.as_json(), default=float))["seen"] == result.transactions
    assert doc_state() == doc_before
