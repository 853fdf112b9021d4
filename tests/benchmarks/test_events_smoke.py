"""Smoke test of the events benchmark: the whole run at 1,000 events/s for 3 s, against the real services.

It starts its own relay and ClickHouse consumer over a fresh database, JetStream namespace and
ClickHouse database (all removed afterwards), and never writes ``docs/benchmarks.md``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ROOT, admin_url

DOC = ROOT / "docs" / "benchmarks.md"


def _load_benchmark() -> ModuleType:
    """Import ``benchmarks/events.py`` by path (``benchmarks`` is not a package)."""
    name = "quiver_benchmark_events"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load_benchmark()


def _doc_state() -> tuple[bool, float, int]:
    return (DOC.exists(), DOC.stat().st_mtime, DOC.stat().st_size) if DOC.exists() else (False, 0.0, 0)


def test_one_low_rate_end_to_end(bench: ModuleType) -> None:
    doc_before = _doc_state()
    result = bench.run(admin_url(), [1_000], 3.0, machine="smoke", command="pytest", probe_events=2_000,
                       probe_rounds=1, warmup_seconds=1.0)

    [step] = result.steps
    assert step.target == 1_000 and step.rows_per_statement == 10
    assert step.committed > 0 and step.committed % 10 == 0  # K = 10 events per statement
    assert step.drained and step.visible == step.committed  # every committed event became visible
    assert step.delivered_in_window > 0 and step.commit_rate > 0
    for lag in (step.lag_p50, step.lag_p99, step.lag_max, step.relay_p50, step.relay_p99):
        assert math.isfinite(lag) and 0 < lag < 60
    assert step.lag_p50 <= step.lag_p99 <= step.lag_max
    assert step.relay_p50 <= step.lag_p99  # the relay is part of the whole way
    assert set(step.statement_ms) == set(bench.OPS)
    assert {"relay", "consumer", "postgres", "nats", "clickhouse"} <= set(step.cpu_cores)
    assert step.cpu_cores["relay"] > 0 and step.cpu_cores["consumer"] > 0
    assert step.messages > 0 and 1 <= step.events_per_message <= 500

    assert result.oracle.clean, result.oracle.problems
    assert result.probe_errors == []
    assert result.oracle.events == result.oracle.visible == step.committed + result.warmup_events
    names = [t.name for t in result.inserts]
    assert any("one Native request" in n for n in names) and any("chDB" in n for n in names)
    for timing in [*result.inserts, *result.stages]:
        assert timing.events == 2_000 and timing.events_per_second > 0
    assert any("Redis dedup" in t.name for t in result.stages) == bool(result.dedup)

    section = bench.render_section(result)
    assert section.startswith(bench.SECTION_TITLE)
    assert "| 1,000 | 10 × 100 (2) |" in section and "**clean**" in section
    assert "not measured in this run" in section  # the 5k/s lag target
    assert result.as_json()["oracle"]["problems"] == []
    again = bench.result_from_json(json.loads(json.dumps(result.as_json(), default=float)))
    assert bench.render_section(again) == section  # --from-json renders the same section
    assert _doc_state() == doc_before


def test_load_plan(bench: ModuleType) -> None:
    plan = bench.plan_load(30_000)
    assert (plan.rows, plan.workers) == (300, 12) and plan.nominal_rate == pytest.approx(30_000)
    assert bench.plan_load(2_000).workers == 2
    with pytest.raises(ValueError, match="exceed"):
        bench.plan_load(1_000_000)


def test_write_section_replaces_only_its_own_section(bench: ModuleType, tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    other = "# Benchmarks\n\n## JSON plane\n\nkept  \nbyte for byte\n"
    doc.write_text(other)
    bench.write_section(doc, bench.SECTION_TITLE + "\n\nfirst\n")
    assert doc.read_text() == other + f"\n{bench.SECTION_TITLE}\n\nfirst\n"
    doc.write_text(doc.read_text() + "\n## Later\n\nalso kept\n")
    bench.write_section(doc, bench.SECTION_TITLE + "\n\nsecond\n")
    assert doc.read_text() == other + f"\n{bench.SECTION_TITLE}\n\nsecond\n\n## Later\n\nalso kept\n"
