"""Every expected failure of ``quiver serve`` and ``quiver query`` is one clear line and a non-zero exit.

Each case runs the real command in a subprocess: a port already in use (HTTP and Flight), a
database that is unreachable, one that refuses (no such database), a URL that is not one; a
bad query, a server that is not there, an output folder that does not exist. None may print
a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Server, admin_url, free_port


def quiver(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "200", **env}
    return subprocess.run([sys.executable, "-m", "quiver.cli", *args], env=environment, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def one_clear_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode != 0, (done.stdout, done.stderr)
    text = done.stderr.strip()
    assert "Traceback" not in text and "File \"" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture()
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_serve_on_an_http_port_in_use(taken_port: int) -> None:
    done = quiver("serve", "--port", str(taken_port), "--flight-port", str(free_port()),
                  QUIVER_DATABASE_URL=admin_url())
    one_clear_line(done, "HTTP", f"127.0.0.1:{taken_port}", "in use")


def test_serve_on_a_flight_port_in_use(taken_port: int) -> None:
    done = quiver("serve", "--port", str(free_port()), "--flight-port", str(taken_port),
                  QUIVER_DATABASE_URL=admin_url())
    one_clear_line(done, "Flight", f"127.0.0.1:{taken_port}", "in use")


@pytest.mark.parametrize(("url", "words"), [
    ("postgresql://postgres@127.0.0.1:{closed}/quiver", ("cannot use the database at 127.0.0.1:{closed}",)),
    ("postgresql://postgres@127.0.0.1:15433/no_such_database", ("no_such_database", "does not exist")),
    ("postgresql://postgres@127.0.0.1:notaport/x", ("notaport",)),
    ("host=127.0.0.1 port=15433 = broken", ("not a PostgreSQL URL",)),
])
def test_serve_with_a_database_it_cannot_use(url: str, words: tuple[str, ...]) -> None:
    closed = str(free_port())
    done = quiver("serve", "--port", str(free_port()), "--no-flight",
                  QUIVER_DATABASE_URL=url.replace("{closed}", closed))
    one_clear_line(done, *(w.replace("{closed}", closed) for w in words))


def test_query_errors(server: Server, tmp_path: Path) -> None:
    flight = ["--url", server.flight_url]
    one_clear_line(quiver("query", "{ nope { id } }", *flight), "error", "nope")
    one_clear_line(quiver("query", "{ orders(limit: 1) { id } }", "--url", f"grpc://127.0.0.1:{free_port()}"),
                   "error")
    missing = tmp_path / "missing-dir" / "x.parquet"
    one_clear_line(quiver("query", "{ orders(limit: 1) { id } }", *flight, "-o", str(missing)),
                   "missing-dir", "does not exist")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    if os.geteuid() != 0:  # root writes anywhere: a folder it cannot write into is a file in its place
        target = read_only / "x.csv"
    else:
        (tmp_path / "blocker").write_text("")
        target = tmp_path / "blocker" / "x.csv"
    done = quiver("query", "{ orders(limit: 1) { id } }", *flight, "-o", str(target))
    one_clear_line(done, "x.csv")
    ok = quiver("query", "{ orders(limit: 3) { id } }", *flight, "-o", str(tmp_path / "ok.csv"))
    assert ok.returncode == 0, ok.stderr
    assert "wrote 3 rows" in ok.stderr and "rows/s" not in ok.stderr  # no progress display when not a terminal
