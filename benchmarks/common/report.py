"""The one place the benchmarks write ``docs/benchmarks.md`` (each owns one ``## `` section and leaves every
other byte alone) and print their results, so every benchmark's output and reproduce line look alike."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
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


def publish(section: str, title: str, output: str, raw: Mapping[str, object] | None = None) -> None:
    """A benchmark's results: ``raw`` as JSON on stdout when given, the section written into ``output`` (unless
    ``''``), and the section on stdout when no JSON went there."""
    if raw is not None:
        print(json.dumps(raw, indent=2, default=float))
    if output:
        write_section(Path(output), section, title)
        print(f"wrote {output}", file=sys.stderr)
    if raw is None:
        print(section)


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """How this run was started (``python -m <module> ARGS``), for the section's reproduce line."""
    return shlex.join(["python", "-m", module, *(argv if argv is not None else sys.argv[1:])])


def os_name() -> str:
    """The distribution's name (``PRETTY_NAME`` of ``/etc/os-release``), else the platform string."""
    name = platform.platform()
    release = Path("/etc/os-release")
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip('"')
    return name


def machine_parts(cpus: str = "vCPUs") -> list[str]:
    """CPUs, memory (GiB of ``MemTotal``) and OS: how each benchmark's machine line begins."""
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return [f"{os.cpu_count()} {cpus}", f"{mem_kb / 1024 / 1024:.0f} GB RAM", os_name()]
