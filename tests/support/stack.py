"""A disposable event stack for benchmarks and tests: a database cloned from a template, capture
installed, a relay of its own and one ``quiver serve`` on the same JetStream namespace, all removed
afterwards; and ``keep_log``, which drains a server's stderr into a file (a full pipe would block it)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.conftest import Server, database_url, start_server, stop_server
from tests.support.pipeline import Pipeline, nats_url


def keep_log(server: Server, path: Path) -> None:
    """The server's stderr into ``path``, from a thread (the log explains a failure)."""
    stderr = server.process.stderr

    def drain() -> None:
        if stderr is None:
            return
        with open(path, "ab") as out:
            while chunk := os.read(stderr.fileno(), 65536):
                out.write(chunk)
                out.flush()

    threading.Thread(target=drain, daemon=True).start()


@contextmanager
def event_stack(admin: str, workdir: Path, template: str, label: str,
                **server_env: str) -> Iterator[tuple[str, Server, Pipeline]]:
    """(database URL, server, pipeline) over a clone of database ``template``; ``label`` names the
    clone and the namespace; ``server_env`` adds QUIVER_* settings to the server."""
    name = f"quiver_{label}_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = database_url(name)
    pipeline = Pipeline(url, workdir, f"{label}{time.monotonic_ns() % 10**9}", sinks=())
    server = None
    try:
        pipeline.cli("install")
        pipeline.start("relay")
        server = start_server(url, QUIVER_NATS_URL=nats_url(), QUIVER_EVENTS_NAMESPACE=pipeline.namespace,
                              **server_env)
        keep_log(server, workdir / "server.log")
        yield url, server, pipeline
    finally:
        if server is not None:
            stop_server(server)
        pipeline.stop_all()
        try:
            pipeline.cleanup()
        except Exception as error:  # noqa: BLE001 - the namespace is disposable
            print(f"warning: pipeline cleanup: {error}", file=sys.stderr)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
