"""Smoke tests of the benchmarks: each runs its benchmark small against the real services.

They import the benchmarks as the package they are (``benchmarks`` at the repo root, like ``tests``)."""

from __future__ import annotations

from tests.conftest import ROOT

DOC = ROOT / "docs" / "benchmarks.md"


def doc_state() -> tuple[bool, float, int]:
    """Whether ``docs/benchmarks.md`` exists, its mtime and size: a smoke run must leave it untouched."""
    return (DOC.exists(), DOC.stat().st_mtime, DOC.stat().st_size) if DOC.exists() else (False, 0.0, 0)
