"""Shared fixtures: real PostgreSQL databases with demo data, and a real Quiver server.

The services come from ``scripts/services start``; its ``env`` command exports
QUIVER_TEST_ADMIN_URL. Without it the integration tests fail loudly (they are
never skipped).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from quiver.demo import generate

ROOT = Path(__file__).resolve().parent.parent
SMALL_ORDERS = 2_000
BIG_ORDERS = 1_000_000


def admin_url() -> str:
    url = os.environ.get("QUIVER_TEST_ADMIN_URL")
    if not url:
        pytest.fail("QUIVER_TEST_ADMIN_URL is not set: run the suite with `make test` (scripts/services env)")
    return url


def database_url(name: str) -> str:
    base = admin_url().rsplit("/", 1)[0]
    return f"{base}/{name}"


def ensure_demo_database(name: str, orders: int) -> str:
    """A database holding the demo schema with ``orders`` orders; reused when already right."""
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    with psycopg.connect(url) as conn:
        marker = conn.execute("SELECT obj_description(to_regclass('public.orders'), 'pg_class')").fetchone()
        wanted = f"quiver demo orders={orders} seed=42 schema=2"
        if marker is None or marker[0] != wanted:
            generate.install_schema(conn)
            generate.load(conn, orders)
            conn.execute(f"COMMENT ON TABLE orders IS '{wanted}'")
            conn.commit()
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A `quiver serve` subprocess on loopback."""

    url: str
    process: subprocess.Popen[bytes]
    flight_url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)  # type: ignore[arg-type]


def start_server(db_url: str, **env: str) -> Server:
    """`quiver serve` on free ports (HTTP and Flight); ``env`` adds QUIVER_* settings."""
    port = free_port()
    flight_port = env.get("QUIVER_FLIGHT_PORT") or str(free_port())
    environment = {**os.environ, "QUIVER_DATABASE_URL": db_url, "QUIVER_FLIGHT_PORT": flight_port, **env}
    scheme = "grpc+tls" if "QUIVER_TLS_CERT" in env else "grpc"
    process = subprocess.Popen(
        [sys.executable, "-m", "quiver.cli", "serve", "--port", str(port)], env=environment,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return Server(url, process, f"{scheme}://127.0.0.1:{flight_port}")
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not become healthy")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def demo_url() -> str:
    """The small demo database (2k orders): the correctness oracle's ground truth. Read-only for tests."""
    return ensure_demo_database("quiver_test_demo", SMALL_ORDERS)


@pytest.fixture(scope="session")
def big_url() -> str:
    """The 1M-order demo database for streaming and memory tests."""
    return ensure_demo_database("quiver_test_big", BIG_ORDERS)


@pytest.fixture(scope="session")
def server(demo_url: str) -> Iterator[Server]:
    """A real server over the small demo database."""
    running = start_server(demo_url)
    yield running
    stop_server(running)


@pytest.fixture()
def db(demo_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A psycopg connection to the small demo database, for oracle SQL."""
    with psycopg.connect(demo_url) as conn:
        yield conn


@pytest.fixture(scope="session")
def scratch_template() -> str:
    """A demo database (1,000 orders) nobody connects to, cloned for each scratch database."""
    url = ensure_demo_database("quiver_test_template", 1_000)
    return url.rsplit("/", 1)[1]


@pytest.fixture()
def scratch_url(scratch_template: str) -> Iterator[str]:
    """A fresh copy of the template database that a test may change; dropped afterwards."""
    name = f"quiver_scratch_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{scratch_template}"')
    yield database_url(name)
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
