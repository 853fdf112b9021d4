"""Smoke test of the subscriptions benchmark, against the real services, with tiny parameters.

A database, relay, server and client process of its own (all removed afterwards), 20 subscriptions and
200 updated rows/s for 5 s. Lag and CPU are the benchmark's business (``python -m benchmarks.subscriptions``)
and only printed; what is asserted is that every expected message arrived exactly once.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.subscriptions import SECTION_TITLE, render_section, run
from tests.benchmarks import doc_state
from tests.conftest import admin_url


def test_twenty_subscriptions_lose_nothing_and_duplicate_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    doc_before = doc_state()
    result = run(admin_url(), 20, 200, 5.0, connections=10, machine="smoke", command="pytest",
                 drain_timeout=30.0)
    with capsys.disabled():
        print(f"\nsubscriptions smoke: {result.delivered}/{result.expected} delivered, lag p50 "
              f"{result.lag_p50:.3f} s p99 {result.lag_p99:.3f} s, server CPU {result.server_cpu:.2f}")

    assert (result.subscriptions, result.connections) == (20, 10)
    assert result.committed > 0 and result.committed % result.batch == 0
    assert result.expected > 0 and result.drained
    assert result.lost == 0 and result.duplicated == 0 and result.unexpected == 0
    assert result.delivered == result.expected and result.clean
    assert result.client_errors == []
    assert math.isfinite(result.lag_p50) and 0 < result.lag_p50 <= result.lag_p99 <= result.lag_max
    assert result.server_cpu > 0 and result.rss_subscribed_mb > 0
    section = render_section(result)
    assert section.startswith(SECTION_TITLE) and "**clean**" in section
    assert json.loads(json.dumps(result.as_json(), default=float))["clean"] is True
    assert doc_state() == doc_before
