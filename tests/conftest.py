"""Shared fixtures: real PostgreSQL databases with demo data, and a real Quiver server.

The services come from ``scripts/services start``; its ``env`` command exports
QUIVER_TEST_ADMIN_URL. Without it the integration tests fail loudly (they are
never skipped).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from quiver.demo import generate
from tests.support.changes import mixed_changes

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


@contextlib.contextmanager
def outside_basetemp(prefix: str) -> Iterator[Path]:
    """A scratch directory for servers that run as a non-root service user (OpenSearch, embedded PostgreSQL).

    Not under pytest's basetemp: every pytest session that starts on this machine resets
    /tmp/pytest-of-<user> to mode 0700, which locks such a server out of its own files in the
    middle of another session's run (seen: OpenSearch failing on ``node.lock`` with
    AccessDeniedException, then refusing every write, when a second session started).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for(condition: Callable[[], bool], timeout: float, failure: str | Callable[[], str],
             interval: float = 0.2) -> float:
    """Poll ``condition`` until it holds; returns the seconds that took.

    After ``timeout`` seconds without it, the test fails with ``failure`` (a message, or a
    function giving one, called then so that it can report the state at that moment).
    ``condition`` is tried once more at the deadline, so a slow probe still gets its last chance.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            message = failure() if callable(failure) else failure
            raise AssertionError(f"{message} (waited {time.monotonic() - started:.1f}s)")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


class Changes:
    """A steady stream of changes, for faults that must strike mid-stream: ``mixed_changes`` rounds in a
    thread, one after another, until stopped.

    One round (``per_round`` rows inserted by INSERT and by COPY, updated and deleted: ~3.7 events
    per ``per_round``) takes a fraction of a second, so a fixed number of rounds is over before a
    fault can be injected; this keeps committing while the test injects it. ``pace`` seconds between
    rounds hold the rate where this machine's sinks can follow. Use it as a context manager (the
    thread never outlives the test) and ``stop()`` it to get the workload's own failure, if any.
    """

    def __init__(self, url: str, *, seed: int, per_round: int = 200, pace: float = 0.5) -> None:
        self.url = url
        self.seed = seed
        self.per_round = per_round
        self.pace = pace
        self.rounds = 0  # rounds committed so far
        self.error: Exception | None = None
        self._minimum = 0
        self._finish = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"changes-{seed}", daemon=True)

    def _run(self) -> None:
        try:
            while not (self._finish.is_set() and self.rounds >= self._minimum):
                # A seed per round: each round's rows get their own tag (emails, deletes) and updates.
                mixed_changes(self.url, 1, seed=self.seed * 10_000 + self.rounds, per_round=self.per_round)
                self.rounds += 1
                self._finish.wait(self.pace)  # the pace of the workload, not a wait for anything
        except Exception as error:  # noqa: BLE001 - reported by stop()
            self.error = error

    def __enter__(self) -> Changes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish.set()
        self._thread.join(timeout=300)

    def stop(self, at_least: int = 0, timeout: float = 120) -> int:
        """Finish once ``at_least`` rounds are committed in all; returns the rounds committed."""
        self._minimum = at_least
        self._finish.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the workload did not finish {at_least} rounds in {timeout}s"
        if self.error is not None:
            raise AssertionError(f"the workload failed after {self.rounds} rounds: {self.error!r}") from self.error
        return self.rounds


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

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on this server; ``kwargs`` go to ``httpx.Client`` as they are."""
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)


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
def service_tmp_path() -> Iterator[Path]:
    """Like ``tmp_path``, for servers that run as a service user (see ``outside_basetemp``)."""
    with outside_basetemp("quiver-test-") as path:
        yield path


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
