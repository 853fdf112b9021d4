"""`make demo` as a newcomer runs it: embedded PostgreSQL, data, server, tour, clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from quiver.embedded.postgres import EmbeddedPostgres
from tests.conftest import ROOT, free_port


def demo_command(tmp_path: Path, *extra: str) -> tuple[list[str], int, int]:
    port, pg_port = free_port(), free_port()
    command = [sys.executable, "-m", "quiver.cli", "demo", "--orders", "1000", "--port", str(port),
               "--flight-port", str(free_port()), "--pg-port", str(pg_port), "--nats-port", str(free_port()),
               "--data-dir", str(tmp_path / "demo"),
               *extra]
    return command, port, pg_port


def test_make_demo_runs_the_tour_and_exits(service_tmp_path: Path) -> None:
    tmp_path = service_tmp_path  # embedded PostgreSQL runs as a service user: not under pytest's basetemp
    command, port, pg_port = demo_command(tmp_path, "--exit-after-tour")
    make = ["make", "--no-print-directory", "demo", "DEMO_ARGS=" + " ".join(command[4:])]
    result = subprocess.run(make, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    for step in ("starting embedded PostgreSQL", "loading 1,000 demo orders", "a tour of example queries",
                 "insertOrder", "MB of JSON", "Arrow Flight", "captured events are in chDB", f"GraphiQL: http://127.0.0.1:{port}/graphql"):
        assert step in out, step
    counted = re.search(r"([\d,]+) of ([\d,]+) captured events are in chDB", out)
    assert counted is not None, out[-2000:]
    seen, wanted = counted.groups()
    assert seen == wanted and int(wanted.replace(",", "")) > 0  # every change arrived
    assert EmbeddedPostgres(tmp_path / "demo" / "postgres", pg_port).pid() is None  # stopped cleanly

    # A second run reuses the data instead of loading it again.
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already loaded" in again.stdout


def test_ctrl_c_stops_everything(service_tmp_path: Path) -> None:
    tmp_path = service_tmp_path  # embedded PostgreSQL runs as a service user: not under pytest's basetemp
    command, port, pg_port = demo_command(tmp_path)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 300
    for line in process.stdout:
        lines.append(line)
        if "press Ctrl-C" in line or time.monotonic() > deadline:
            break
    assert any("press Ctrl-C" in line for line in lines), "".join(lines)[-2000:]
    pg = EmbeddedPostgres(tmp_path / "demo" / "postgres", pg_port)
    assert pg.pid() is not None
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=60)[0]
    assert process.returncode == 0, rest
    assert "stopping embedded NATS and PostgreSQL" in rest
    assert pg.pid() is None
