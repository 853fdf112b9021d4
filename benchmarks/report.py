"""The one place the benchmarks write ``docs/benchmarks.md``: each owns one ``## `` section."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, section: str, title: str) -> None:
    """Replace the ``title`` section of ``path`` (up to the next ``## `` heading), or append it; every other byte
    of the file stays as it was."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    body = section.rstrip("\n") + "\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\r\n") == title), None)
    if start is None:
        if not text.endswith("\n"):
            text += "\n"
        out = text + ("" if text.endswith("\n\n") else "\n") + body
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        before, after = "".join(lines[:start]), "".join(lines[end:])
        out = before + body + ("\n" + after if after else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out, encoding="utf-8")
