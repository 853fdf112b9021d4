"""The benchmarks' shared report writing: each benchmark (re)writes only its own section of the doc."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import events, json_plane, query_planes
from benchmarks.common.report import command_line, publish, write_section

TITLES = [json_plane.SECTION_TITLE, query_planes.SECTION_TITLE, events.SECTION_TITLE]


@pytest.mark.parametrize("title", TITLES)
def test_write_section_starts_a_missing_file(title: str, tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    write_section(doc, title + "\n\nfirst\n", title)
    assert doc.read_text() == f"# Benchmarks\n\n{title}\n\nfirst\n"
    doc.write_text(doc.read_text() + "\n## Arrow plane\n\nkept\n")
    write_section(doc, title + "\n\nsecond\n", title)
    assert doc.read_text() == f"# Benchmarks\n\n{title}\n\nsecond\n\n## Arrow plane\n\nkept\n"


@pytest.mark.parametrize("title", TITLES)
def test_write_section_keeps_every_other_byte(title: str, tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    head = "# Benchmarks\n\n## Another benchmark\n\nkept  \nbyte for byte\n\n| a |\n"
    doc.write_text(head)
    write_section(doc, title + "\n\nfirst\n", title)
    assert doc.read_text() == f"{head}\n{title}\n\nfirst\n"
    doc.write_text(doc.read_text() + "\n## Later\n\nalso kept\n")
    write_section(doc, title + "\n\nsecond\n", title)
    assert doc.read_text() == f"{head}\n{title}\n\nsecond\n\n## Later\n\nalso kept\n"


def test_publish_prints_json_or_the_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "benchmarks.md"
    publish("## T\n\nbody\n", "## T", str(doc), {"rate": 1.5})
    out, err = capsys.readouterr()
    assert out == '{\n  "rate": 1.5\n}\n' and err == f"wrote {doc}\n" and "body" in doc.read_text()
    publish("## T\n\nbody\n", "## T", "")
    assert capsys.readouterr() == ("## T\n\nbody\n\n", "")


def test_the_reproduce_line_is_the_module_form() -> None:
    assert command_line("benchmarks.events", ["--rates", "2000", "--machine-note", "a b"]) == (
        "python -m benchmarks.events --rates 2000 --machine-note 'a b'")
