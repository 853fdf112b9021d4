"""What the benchmarks share: their databases, their server subprocesses, the baseline servers' serving
code and the writing of ``docs/benchmarks.md``; kept here once so the benchmarks measure the same way."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repo root: subprocesses run here, so ``-m benchmarks...`` works
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:15433/postgres"
