"""Real servers on loopback for development and tests: start, stop, status, env.

Each service keeps its data under the git-ignored ``.services/`` folder, listens on
127.0.0.1 on a non-default port, is waited for until ready, and is stopped by pid.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from quiver.embedded.nats import EmbeddedNats
from quiver.embedded.postgres import EmbeddedPostgres
from tests.support.servers.clickhouse import ClickHouseServer
from tests.support.servers.opensearch import EmbeddedOpenSearch
from tests.support.servers.redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]

STATE = ROOT / ".services"
# Every port can be overridden to run two checkouts side by side.
POSTGRES_PORT = int(os.environ.get("QUIVER_PG_PORT", "15433"))
NATS_PORT = int(os.environ.get("QUIVER_NATS_PORT", "14222"))
NATS_MONITOR_PORT = int(os.environ.get("QUIVER_NATS_MONITOR_PORT", "18222"))
CLICKHOUSE_HTTP_PORT = int(os.environ.get("QUIVER_CLICKHOUSE_HTTP_PORT", "18123"))
CLICKHOUSE_TCP_PORT = int(os.environ.get("QUIVER_CLICKHOUSE_TCP_PORT", "19000"))
REDIS_PORT = int(os.environ.get("QUIVER_REDIS_PORT", "16379"))
OPENSEARCH_PORT = int(os.environ.get("QUIVER_OPENSEARCH_PORT", "19200"))
OPENSEARCH_TRANSPORT_PORT = int(os.environ.get("QUIVER_OPENSEARCH_TRANSPORT_PORT", "19300"))
TEST_DATABASE = "quiver"


def postgres() -> EmbeddedPostgres:
    return EmbeddedPostgres(STATE / "postgres", POSTGRES_PORT)


def nats() -> EmbeddedNats:
    return EmbeddedNats(STATE / "nats", NATS_PORT, NATS_MONITOR_PORT)


def clickhouse() -> ClickHouseServer:
    return ClickHouseServer(STATE / "clickhouse", CLICKHOUSE_HTTP_PORT, CLICKHOUSE_TCP_PORT)


def redis() -> EmbeddedRedis:
    return EmbeddedRedis(STATE / "redis", REDIS_PORT)


def opensearch() -> EmbeddedOpenSearch:
    return EmbeddedOpenSearch(STATE / "opensearch", OPENSEARCH_PORT, OPENSEARCH_TRANSPORT_PORT)


def _started(name: str, address: str, pid: int | None, began: float, was_running: bool) -> None:
    how = "already running" if was_running else f"in {time.monotonic() - began:.2f}s"
    print(f"{name:<10} ready on {address} (pid {pid}) {how}")


def start() -> None:
    pg = postgres()
    began = time.monotonic()
    was_running = pg.pid() is not None
    pg.start()
    deadline = time.monotonic() + 60
    while not pg.ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"postgres did not become ready; see {pg.log_file}")
        time.sleep(0.1)
    pg.create_database(TEST_DATABASE)
    _started("postgres", f"127.0.0.1:{POSTGRES_PORT}", pg.pid(), began, was_running)

    search = opensearch()
    if not search.installed():
        print(f"{'opensearch':<10} fetching OpenSearch from Maven Central into {search.home.parent} ...", flush=True)
        began = time.monotonic()
        try:
            search.install()
        except RuntimeError as error:
            raise SystemExit(f"opensearch could not be installed: {error}") from error
        print(f"{'opensearch':<10} installed in {time.monotonic() - began:.1f}s")

    servers = (
        ("nats", nats(), f"127.0.0.1:{NATS_PORT} (monitor :{NATS_MONITOR_PORT})"),
        ("clickhouse", clickhouse(), f"127.0.0.1:{CLICKHOUSE_HTTP_PORT} (tcp :{CLICKHOUSE_TCP_PORT})"),
        ("redis", redis(), f"127.0.0.1:{REDIS_PORT}"),
        ("opensearch", search, f"127.0.0.1:{OPENSEARCH_PORT} (transport :{OPENSEARCH_TRANSPORT_PORT})"),
    )
    for name, server, address in servers:
        began = time.monotonic()
        was_running = server.pid() is not None
        try:
            server.start()  # waits until ready
        except RuntimeError as error:
            raise SystemExit(f"{name} did not start: {error}") from error
        if not server.ready():  # running, but not as configured now (e.g. another port)
            raise SystemExit(f"{name} runs (pid {server.pid()}) but is not ready on {address}; stop it first")
        _started(name, address, server.pid(), began, was_running)


def stop() -> None:
    for name, server in (("opensearch", opensearch()), ("redis", redis()), ("clickhouse", clickhouse()),
                         ("nats", nats())):
        pid = server.pid()
        server.stop()
        print(f"{name:<10} stopped (was pid {pid})" if pid else f"{name:<10} not running")
    pg = postgres()
    pid = pg.pid()
    pg.stop()
    print(f"{'postgres':<10} stopped (was pid {pid})" if pid else f"{'postgres':<10} not running")


def status() -> int:
    down = 0
    pg = postgres()
    pid = pg.pid()
    ready = pid is not None and pg.ready()
    down += not ready
    print(f"{'postgres':<10} {'ready' if ready else 'down'}  127.0.0.1:{POSTGRES_PORT}  pid={pid}  data={pg.data_dir}")
    nats_server = nats()
    pid = nats_server.pid()
    ready = pid is not None and nats_server.ready()
    down += not ready
    print(f"{'nats':<10} {'ready' if ready else 'down'}  {nats_server.url}  pid={pid}  data={nats_server.root}")
    ch = clickhouse()
    pid = ch.pid()
    ready = pid is not None and ch.ready()
    down += not ready
    print(f"{'clickhouse':<10} {'ready' if ready else 'down'}  {ch.url}  pid={pid}  data={ch.root}")
    cache = redis()
    pid = cache.pid()
    ready = pid is not None and cache.ready()
    down += not ready
    print(f"{'redis':<10} {'ready' if ready else 'down'}  {cache.url}  pid={pid}  data={cache.root}")
    search = opensearch()
    pid = search.pid()
    ready = pid is not None and search.ready()
    down += not ready
    print(f"{'opensearch':<10} {'ready' if ready else 'down'}  {search.url}  pid={pid}  data={search.root}")
    return 1 if down else 0


def env() -> None:
    pg = postgres()
    print(f"export QUIVER_DATABASE_URL={pg.url(TEST_DATABASE)}")
    print(f"export QUIVER_TEST_ADMIN_URL={pg.url('postgres')}")
    print(f"export QUIVER_TEST_DATABASE_URL={pg.url('postgres')}")
    print(f"export QUIVER_NATS_URL={nats().url}")
    print(f"export QUIVER_NATS_MONITOR_URL={nats().monitor_url}")
    print(f"export QUIVER_CLICKHOUSE_URL={clickhouse().url}")
    print(f"export QUIVER_OPENSEARCH_URL={opensearch().url}")
    print(f"export QUIVER_SEARCH_URL={opensearch().url}")
    print(f"export QUIVER_REDIS_URL={redis().url}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/services", description=__doc__)
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    command = parser.parse_args().command
    if command == "start":
        start()
    elif command == "stop":
        stop()
    elif command == "status":
        return status()
    else:
        env()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
