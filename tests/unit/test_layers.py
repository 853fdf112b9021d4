"""The layout holds: imports run from higher layers to lower ones only, modules stay small, sinks share a shape.

Read from the source with ``ast`` (nothing is imported), so a violation names the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "quiver"
MAX_LINES = 400

# Bottom to top. A module may import its own part and any part in a lower layer; parts in
# the same layer are peers and do not import each other.
LAYERS: list[set[str]] = [
    {"config", "errors"},
    {"auth", "db", "schema", "embedded"},
    {"plan"},
    {"sql"},
    {"arrow"},
    {"execute", "events"},
    {"subscriptions", "live"},
    {"flight", "http"},
    {"server", "client"},
    {"demo"},
    {"cli"},
]
# Modules of one part that must not import each other either (one concept each).
APART = [("flight.tickets", "flight.events")]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _part(module: str) -> str:
    return module.split(".")[0]


def _rank(part: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if part in layer:
            return rank
    raise AssertionError(f"quiver.{part} is in no layer of tests/unit/test_layers.py: add it where it belongs")


def _imports(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, module below ``quiver``) of every import of a quiver module, type-only ones included."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        out += [(node.lineno, n.removeprefix("quiver.")) for n in names if n.startswith("quiver.")]
    return out


def test_every_part_has_a_layer() -> None:
    for module in _modules():
        if module:
            _rank(_part(module))


def test_imports_run_downwards_only() -> None:
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        if not module:
            continue  # quiver/__init__.py is the public API: it sits above every layer
        for line, target in _imports(path.read_text(), str(path)):
            if target not in modules and target.rsplit(".", 1)[0] in modules:
                target = target.rsplit(".", 1)[0]  # `from quiver.x import name`
            if target not in modules:
                continue
            mine, theirs = _part(module), _part(target)
            if mine != theirs and _rank(theirs) >= _rank(mine):
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} quiver.{module} imports quiver.{target}")
            for a, b in APART:
                if {module, target} == {a, b}:
                    wrong.append(f"{path.relative_to(PACKAGE)}:{line} quiver.{module} imports quiver.{target}")
    assert not wrong, "imports from a lower layer to a higher one (or between peers):\n" + "\n".join(wrong)


def test_the_layer_check_sees_a_violation() -> None:
    """Negative control: the check reads imports, including ones under TYPE_CHECKING."""
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from quiver.server import create_app\n"
    assert [t for _, t in _imports(source)] == ["server", "server.create_app"]
    assert _rank("server") > _rank("config")


def test_no_module_over_the_size_limit() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_every_sink_folder_has_the_same_files() -> None:
    folders = [p for p in (PACKAGE / "events" / "sinks").iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert len(folders) >= 3, folders
    shapes = {p.name: sorted(f.name for f in p.glob("*.py")) for p in folders}
    assert len({tuple(files) for files in shapes.values()}) == 1, shapes
