"""Smoke tests of the benchmarks: each runs its benchmark small against the real services."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.conftest import ROOT


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` by path (``benchmarks`` is not a package), once per session."""
    module_name = f"quiver_benchmark_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module
