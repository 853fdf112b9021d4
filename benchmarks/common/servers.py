"""The servers a benchmark times, as subprocesses on loopback: started, waited for until ``/health``
answers (nothing is timed before a server is up), measured for peak memory, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import ROOT


@dataclass
class Server:
    """A server subprocess on loopback."""

    name: str
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(name: str, command: list[str], env: dict[str, str], port: int) -> Server:
    """Start ``command`` (in the repo root) and wait until ``/health`` answers 200."""
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"{name} server exited: {err}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return Server(name, url, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"{name} server did not become healthy")


def start_baseline(name: str, module: str, db_url: str) -> Server:
    """A baseline server (``python -m <module> --database-url URL --port P``, see ``baselines/``) over ``db_url``."""
    port = free_port()
    command = [sys.executable, "-m", module, "--database-url", db_url, "--port", str(port)]
    return start_server(name, command, dict(os.environ), port)


def stop_server(server: Server) -> None:
    """Terminate the subprocess (kill it if it lingers)."""
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process in MB, None if unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None
