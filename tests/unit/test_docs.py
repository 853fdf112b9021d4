"""The docs describe the code as it is: every module is in the architecture table, every metric in the docs.

Read from the source and the Markdown only, so a failure names what is missing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from quiver.errors import STATUSES
from quiver.events.metrics import EventMetrics

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "quiver"
METRIC_METHODS = {"inc", "dec", "set", "observe", "labels", "set_function", "time", "track_inprogress"}


def _documented_paths(markdown: str) -> list[re.Pattern[str]]:
    """Backticked paths of the doc as patterns; ``<name>`` stands for any one folder or file name."""
    patterns = []
    for text in re.findall(r"`([^`\s]+\.py)`", markdown):
        escaped = re.escape(text).replace(re.escape("<name>"), r"[^/]+")
        patterns.append(re.compile(escaped + "$"))
    return patterns


def test_architecture_names_every_module() -> None:
    patterns = _documented_paths((ROOT / "docs" / "architecture.md").read_text())
    modules = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if p.name != "__init__.py" or p.parent == PACKAGE)
    missing = [m for m in modules if not any(p.fullmatch(m) for p in patterns)]
    assert not missing, f"docs/architecture.md's module tables miss: {missing}"


def test_the_module_check_matches_placeholders() -> None:
    patterns = _documented_paths("`events/sinks/<name>/encode.py` and `server.py`")
    assert any(p.fullmatch("events/sinks/search/encode.py") for p in patterns)
    assert not any(p.fullmatch("events/sinks/search/sink.py") for p in patterns)


def _registered() -> dict[str, str]:
    """Attribute name → exposed metric name of every metric EventMetrics registers."""
    metrics = EventMetrics(CollectorRegistry())
    out = {}
    for attribute, value in vars(metrics).items():
        name = getattr(value, "_name", None)
        if isinstance(name, str):
            kind = getattr(value, "_type", "")
            out[attribute] = f"{name}_total" if kind == "counter" else name
    return out


def test_events_doc_lists_every_metric() -> None:
    registered = _registered()
    assert len(registered) >= 10, registered
    doc = (ROOT / "docs" / "events.md").read_text()
    missing = [name for name in registered.values() if f"`{name}`" not in doc]
    assert not missing, f"docs/events.md does not document {missing}"


def _metric_uses(source: str) -> set[str]:
    """Attributes used as ``<x>.<attribute>.<inc|set|labels|...>`` anywhere in ``source``."""
    used = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in METRIC_METHODS \
                and isinstance(node.value, ast.Attribute):
            used.add(node.value.attr)
    return used


def test_every_registered_metric_is_set_somewhere() -> None:
    used: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path != PACKAGE / "events" / "metrics.py":
            used |= _metric_uses(path.read_text())
    never = sorted(set(_registered()) - used)
    assert not never, f"metrics registered in events/metrics.py but never set: {never}"


def test_the_use_check_sees_a_use() -> None:
    assert _metric_uses("self.metrics.pending.labels('x').set(1)\nm.lag.observe(2)") == {"pending", "lag"}
    assert _metric_uses("self.metrics.pending = 3") == set()


def test_the_error_code_table_is_the_code() -> None:
    text = (ROOT / "docs" / "graphql.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \| [^|]+ \| (\d{3}) \| ([A-Z_]+) \|$", text, flags=re.MULTILINE)
    documented = {code: (int(http), flight) for code, http, flight in rows}
    assert documented == {code: (s.http, s.flight) for code, s in STATUSES.items()}
